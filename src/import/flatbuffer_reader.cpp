#include "flatbuffer_reader.h"

#include "firesight/common/error.h"

namespace firesight::flatbuf {

Reader::Reader(const std::uint8_t* data, std::size_t size, std::string name)
    : data_(data), size_(size), name_(std::move(name)) {}

void Reader::fail(const std::string& context, const std::string& msg) const {
    throw Error(name_ + ": " + context + ": " + msg);
}

void Reader::check(std::size_t pos, std::uint64_t len, const std::string& context) const {
    if (pos > size_ || len > size_ - pos)
        fail(context, "offset " + std::to_string(pos) + " + length " + std::to_string(len) +
                          " is past the end of the file (" + std::to_string(size_) +
                          " bytes; truncated or corrupt)");
}

std::size_t Reader::indirect(std::size_t pos, const std::string& context) const {
    const auto off = read<std::uint32_t>(pos, context);
    const std::uint64_t target = static_cast<std::uint64_t>(pos) + off;
    if (target >= size_)
        fail(context, "offset " + std::to_string(target) + " points past the end of the file (" +
                          std::to_string(size_) + " bytes; truncated or corrupt)");
    return static_cast<std::size_t>(target);
}

std::uint32_t Reader::vector_length(std::size_t pos, std::size_t elem_size, const std::string& context) const {
    const auto n = read<std::uint32_t>(pos, context + " (vector length)");
    check(pos + 4, static_cast<std::uint64_t>(n) * elem_size, context + " (vector of " + std::to_string(n) + ")");
    return n;
}

Table Reader::root(const char* what) const {
    return table_at(indirect(0, std::string(what) + " root offset"), what);
}

Table Reader::table_at(std::size_t pos, const std::string& context) const {
    Table t;
    t.reader_ = this;
    t.pos_ = pos;
    t.context_ = context;
    const auto soff = read<std::int32_t>(pos, context + " (vtable offset)");
    const std::int64_t vt = static_cast<std::int64_t>(pos) - soff;
    if (vt < 0 || static_cast<std::uint64_t>(vt) + 4 > size_)
        fail(context, "vtable offset " + std::to_string(vt) + " is outside the file");
    t.vtable_ = static_cast<std::size_t>(vt);
    t.vtable_size_ = read<std::uint16_t>(t.vtable_, context + " (vtable size)");
    t.table_size_ = read<std::uint16_t>(t.vtable_ + 2, context + " (table size)");
    if (t.vtable_size_ < 4 || t.vtable_size_ % 2)
        fail(context, "vtable size " + std::to_string(t.vtable_size_) + " is invalid");
    check(t.vtable_, t.vtable_size_, context + " (vtable)");
    if (t.table_size_ < 4) fail(context, "table size " + std::to_string(t.table_size_) + " is invalid");
    check(pos, t.table_size_, context + " (table)");
    return t;
}

std::size_t Table::field_pos(int index, const char* what) const {
    if (!reader_) return 0;
    const std::size_t slot = 4 + 2 * static_cast<std::size_t>(index);
    if (slot + 2 > vtable_size_) return 0;
    const auto off = reader_->read<std::uint16_t>(vtable_ + slot, context_ + "." + what);
    if (!off) return 0;
    if (off >= table_size_)
        reader_->fail(context_ + "." + what, "field offset " + std::to_string(off) +
                                                 " is outside its table (size " + std::to_string(table_size_) + ")");
    return pos_ + off;
}

bool Table::has(int index) const {
    if (!reader_) return false;
    const std::size_t slot = 4 + 2 * static_cast<std::size_t>(index);
    if (slot + 2 > vtable_size_) return false;
    return reader_->read<std::uint16_t>(vtable_ + slot, context_) != 0;
}

Table Table::table(int index, const char* what) const {
    const std::size_t p = field_pos(index, what);
    if (!p) return {};
    const std::string ctx = context_ + "." + what;
    return reader_->table_at(reader_->indirect(p, ctx), ctx);
}

std::string Table::string(int index, const char* what) const {
    std::size_t pos = 0, len = 0;
    if (!byte_vector(index, what, pos, len)) return {};
    return std::string(reinterpret_cast<const char*>(reader_->data() + pos), len);
}

bool Table::byte_vector(int index, const char* what, std::size_t& pos, std::size_t& len) const {
    const std::size_t p = field_pos(index, what);
    if (!p) return false;
    const std::string ctx = context_ + "." + what;
    const std::size_t v = reader_->indirect(p, ctx);
    len = reader_->vector_length(v, 1, ctx);
    pos = v + 4;
    return true;
}

std::vector<Table> Table::table_vector(int index, const char* what) const {
    std::vector<Table> out;
    const std::size_t p = field_pos(index, what);
    if (!p) return out;
    const std::string ctx = context_ + "." + what;
    const std::size_t v = reader_->indirect(p, ctx);
    const std::uint32_t n = reader_->vector_length(v, 4, ctx);
    out.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        const std::size_t elem = v + 4 + 4 * static_cast<std::size_t>(i);
        const std::string ectx = ctx + "[" + std::to_string(i) + "]";
        out.push_back(reader_->table_at(reader_->indirect(elem, ectx), ectx));
    }
    return out;
}

}  // namespace firesight::flatbuf
