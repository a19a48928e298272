#!/usr/bin/env python3
"""The runtime's C API from Python's ctypes, as a binding would use it: consumer.py LIBRARY ENGINE."""
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.firesight_version.restype = ctypes.c_char_p
lib.firesight_last_error.restype = ctypes.c_char_p
lib.firesight_class_name.restype = ctypes.c_char_p
lib.firesight_open.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.firesight_class_count.argtypes = [ctypes.c_void_p]
lib.firesight_class_name.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.firesight_classify_rgb.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_size_t,
                                       ctypes.POINTER(ctypes.c_float), ctypes.c_int]
lib.firesight_close.argtypes = [ctypes.c_void_p]

engine = ctypes.c_void_p()
if lib.firesight_open(sys.argv[2].encode(), None, ctypes.byref(engine)) != 0:
    sys.exit(lib.firesight_last_error().decode())
n = lib.firesight_class_count(engine)
probs = (ctypes.c_float * n)()
width, height = 40, 30
rgb = bytes((x * 5 + y * 3 + c * 40) % 256 for y in range(height) for x in range(width) for c in range(3))
if lib.firesight_classify_rgb(engine, rgb, width, height, width * 3, probs, n) != 0:
    sys.exit(lib.firesight_last_error().decode())
best = max(range(n), key=lambda c: probs[c])
print(f"python ctypes: firesight {lib.firesight_version().decode()}, {n} classes, top {lib.firesight_class_name(engine, best).decode()}, "
      f"probabilities sum to {sum(probs):.4f}")
lib.firesight_close(engine)
