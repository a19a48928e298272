#!/usr/bin/env python3
"""The arm64 parity check of scripts/arm64.sh, in two steps:

  compare-outputs.py make-inputs OUT_DIR SAMPLES_DIR
      writes each BMP photo of SAMPLES_DIR as a binary PPM into OUT_DIR (firesight-run's input);
  compare-outputs.py compare A.jsonl B.jsonl [--exact-if-int8 ENGINE_NAME]
      compares two `firesight-run --json` outputs (one line per input): the same inputs, the same top
      class, probabilities within 1e-5 (fp32: kernels may sum in another order), and for int8
      engines the logits equal to the bit: they are the last layer's int8 values times one scale,
      so equal logits are equal int8 bytes (the softmax after them is float, and XNNPACK's NEON and
      AVX softmax kernels differ in the last bits)."""
import json
import pathlib
import struct
import sys


def bmp_to_ppm(src: pathlib.Path, dst: pathlib.Path) -> bool:
    data = src.read_bytes()
    if data[:2] != b"BM":
        return False
    offset, = struct.unpack_from("<I", data, 10)
    width, height, _, bpp, compression = struct.unpack_from("<iiHHI", data, 18)
    if bpp not in (24, 32) or compression not in (0, 3):
        return False
    bytes_pp = bpp // 8
    stride = (width * bytes_pp + 3) & ~3
    rows = range(abs(height) - 1, -1, -1) if height > 0 else range(abs(height))
    pixels = bytearray()
    for r in rows:
        row = data[offset + r * stride: offset + r * stride + width * bytes_pp]
        for x in range(width):
            b, g, rr = row[x * bytes_pp: x * bytes_pp + 3]
            pixels += bytes((rr, g, b))
    dst.write_bytes(b"P6\n%d %d\n255\n" % (width, abs(height)) + bytes(pixels))
    return True


def make_inputs(out_dir: str, samples: str) -> None:
    out = pathlib.Path(out_dir)
    made = [p.name for p in sorted(pathlib.Path(samples).glob("*.bmp")) if bmp_to_ppm(p, out / (p.stem + ".ppm"))]
    if not made:
        sys.exit(f"compare-outputs: no 24/32-bit BMP photos in {samples}")
    print(f"parity inputs: {', '.join(made)}")


def compare(a_path: str, b_path: str, exact: bool) -> None:
    a = [json.loads(line) for line in open(a_path) if line.strip()]
    b = [json.loads(line) for line in open(b_path) if line.strip()]
    if not a or [x["input"] for x in a] != [x["input"] for x in b]:
        sys.exit(f"compare-outputs: {a_path} and {b_path} hold different inputs")
    worst = 0.0
    logits_equal = True
    for x, y in zip(a, b):
        if exact and ("logits" not in x or x["logits"] != y.get("logits")):
            logits_equal = False
        if x["top"][0]["class"] != y["top"][0]["class"]:
            sys.exit(f"compare-outputs: {x['input']}: top class {x['top'][0]['class']} vs {y['top'][0]['class']}")
        pa, pb = x["probabilities"], y["probabilities"]
        if len(pa) != len(pb):
            sys.exit(f"compare-outputs: {x['input']}: {len(pa)} vs {len(pb)} probabilities")
        worst = max([worst] + [abs(u - v) for u, v in zip(pa, pb)])
    if exact and not logits_equal:
        sys.exit("compare-outputs: int8 logits differ; they must be the same bits")
    if worst > 1e-5:
        sys.exit(f"compare-outputs: probabilities differ by up to {worst:g} (tolerance 1e-5)")
    tops = ", ".join(f"{x['input']} {x['top'][0]['class']} {100 * x['top'][0]['probability']:.1f}%" for x in a)
    how = "int8 logits bit-identical, " if exact else ""
    how += "probabilities bit-identical" if worst == 0 else f"probabilities within {worst:.2g}"
    print(f"same answers ({how}): {tops}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "make-inputs":
        make_inputs(sys.argv[2], sys.argv[3])
    elif len(sys.argv) in (4, 6) and sys.argv[1] == "compare":
        exact = len(sys.argv) == 6 and sys.argv[4] == "--exact-if-int8" and sys.argv[5] == "int8"
        compare(sys.argv[2], sys.argv[3], exact)
    else:
        sys.exit(__doc__)
