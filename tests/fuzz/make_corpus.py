#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/<name>/): a few small
valid files of each format and a few near misses. Run once; the output is
committed. Regressions found by fuzzing are added by hand as crash-*."""
import gzip
import json
import os
import struct
import zlib

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(folder, name, data):
    os.makedirs(os.path.join(here, folder), exist_ok=True)
    assert len(data) < 20_000, name
    with open(os.path.join(here, folder, name), "wb") as f:
        f.write(data)


def safetensors(header, data=b"", pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


# safetensors: every dtype, metadata, scalars and empty tensors; then misses.
put("safetensors", "f32", safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                                      struct.pack("<2f", 1.0, -2.0)))
put("safetensors", "mixed", safetensors({
    "__metadata__": {"step": "12", "format": "pt"},
    "w": {"dtype": "F64", "shape": [2, 1], "data_offsets": [0, 16]},
    "i": {"dtype": "I64", "shape": [], "data_offsets": [16, 24]},
    "j": {"dtype": "I32", "shape": [1], "data_offsets": [24, 28]},
    "b": {"dtype": "U8", "shape": [3], "data_offsets": [28, 31]},
    "e": {"dtype": "F32", "shape": [0, 4], "data_offsets": [31, 31]}}, bytes(range(31))))
put("safetensors", "metadata_only", safetensors({"__metadata__": {"k": "v"}}))
put("safetensors", "empty_object", safetensors({}))
put("safetensors", "gap", safetensors({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"xy"))
put("safetensors", "bad_dtype", safetensors({"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"x"))
put("safetensors", "half", safetensors({"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                                        "b": {"dtype": "BF16", "shape": [1], "data_offsets": [4, 6]}}, b"\x00\x3c\x01\x80\x80\x3f"))
put("safetensors", "deep", struct.pack("<Q", 200) + b"[" * 100 + b"]" * 100)
put("safetensors", "short", b"\x10\x00\x00")

# IDX: raw and gzip labels and images, several gzip members; then misses.
def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload

labels = idx([10], bytes(range(10)))
images = idx([2, 4, 4], bytes((i * 7) % 251 for i in range(32)))
put("idx", "labels", labels)
put("idx", "images", images)
put("idx", "labels.gz", gzip.compress(labels, mtime=0))
put("idx", "images.gz", gzip.compress(images, mtime=0))
put("idx", "two_members.gz", gzip.compress(images[:20], mtime=0) + gzip.compress(images[20:], mtime=0))
put("idx", "bomb.gz", gzip.compress(idx([10], bytes(10)) + bytes(1 << 20), mtime=0))
put("idx", "truncated", idx([3, 4], bytes(10)))
put("idx", "float_type", bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + bytes(4))

# PNG: gray, gray+alpha, RGB, RGBA, palette with tRNS, 16-bit, interlaced.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, depth, color, rows, interlace=0, extra=b""):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))

put("png", "gray", png(3, 2, 8, 0, [b"\x00\x80\xff", b"\x10\x20\x30"]))
put("png", "gray_alpha", png(2, 1, 8, 4, [b"\x00\xff\x80\x80"]))
put("png", "rgb", png(2, 2, 8, 2, [bytes(range(6)), bytes(range(6, 12))]))
put("png", "rgba", png(1, 2, 8, 6, [b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"]))
put("png", "palette_trns", png(2, 1, 8, 3, [b"\x00\x01"],
                               extra=chunk(b"PLTE", b"\xff\x00\x00\x00\xff\x00") + chunk(b"tRNS", b"\x80")))
put("png", "rgb16", png(1, 1, 16, 2, [b"\x12\x34\x56\x78\x9a\xbc"]))
put("png", "gray1bit", png(8, 1, 1, 0, [b"\xa5"]))
put("png", "interlaced", png(1, 1, 8, 2, [b"\x01\x02\x03"], interlace=1))
put("png", "text", png(1, 1, 8, 0, [b"\x00"], extra=chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"v" * 1000))))
put("png", "huge_ihdr", png(100000, 100000, 8, 2, [b"\x00\x00\x00"]))
