// A bounds-checked reader of FlatBuffer binaries, without generated code: tables, vtables,
// vectors and strings are located through offsets that are each checked against the buffer
// before use. Errors carry a context string (which field of which object) for the message.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace firesight::flatbuf {

class Reader;

// A table inside the buffer: its position and its vtable.
class Table {
public:
    Table() = default;
    bool valid() const { return reader_ != nullptr; }
    // Position of field `index` (0-based in schema order), or 0 when the field is absent.
    std::size_t field_pos(int index, const char* what) const;
    bool has(int index) const;

    template <typename T>
    T scalar(int index, T default_value, const char* what) const;
    Table table(int index, const char* what) const;  // invalid Table when absent
    std::string string(int index, const char* what) const;
    // Vector of scalars; empty when absent.
    template <typename T>
    std::vector<T> vector(int index, const char* what) const;
    // Vector of tables; empty when absent.
    std::vector<Table> table_vector(int index, const char* what) const;
    // Vector of bytes: position and length, for large payloads that should not be copied twice.
    bool byte_vector(int index, const char* what, std::size_t& pos, std::size_t& len) const;

private:
    friend class Reader;
    const Reader* reader_ = nullptr;
    std::size_t pos_ = 0, vtable_ = 0;
    std::uint16_t vtable_size_ = 0, table_size_ = 0;
    std::string context_;
};

class Reader {
public:
    Reader(const std::uint8_t* data, std::size_t size, std::string name);
    std::size_t size() const { return size_; }
    const std::uint8_t* data() const { return data_; }
    Table root(const char* what) const;
    Table table_at(std::size_t pos, const std::string& context) const;
    // Follows a uoffset stored at `pos` and returns the target position.
    std::size_t indirect(std::size_t pos, const std::string& context) const;
    // Checks that [pos, pos+len) lies inside the buffer.
    void check(std::size_t pos, std::uint64_t len, const std::string& context) const;
    template <typename T>
    T read(std::size_t pos, const std::string& context) const {
        check(pos, sizeof(T), context);
        T v;
        std::memcpy(&v, data_ + pos, sizeof(T));  // little-endian host assumed (x86, aarch64)
        return v;
    }
    // Vector header at `pos`: returns the element count and checks elements fit.
    std::uint32_t vector_length(std::size_t pos, std::size_t elem_size, const std::string& context) const;
    [[noreturn]] void fail(const std::string& context, const std::string& msg) const;

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::string name_;
};

template <typename T>
T Table::scalar(int index, T default_value, const char* what) const {
    const std::size_t p = field_pos(index, what);
    if (!p) return default_value;
    return reader_->read<T>(p, context_ + "." + what);
}

template <typename T>
std::vector<T> Table::vector(int index, const char* what) const {
    std::vector<T> out;
    const std::size_t p = field_pos(index, what);
    if (!p) return out;
    const std::string ctx = context_ + "." + what;
    const std::size_t v = reader_->indirect(p, ctx);
    const std::uint32_t n = reader_->vector_length(v, sizeof(T), ctx);
    out.resize(n);
    if (n) std::memcpy(out.data(), reader_->data() + v + 4, static_cast<std::size_t>(n) * sizeof(T));
    return out;
}

}  // namespace firesight::flatbuf
