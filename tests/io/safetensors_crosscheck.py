#!/usr/bin/env python3
"""Cross-checks haze's safetensors files against Hugging Face's `safetensors`.

Not part of the test suite (the tests need no Python); run it by hand:

    python3 tests/io/safetensors_crosscheck.py write DIR   # DIR/python.safetensors
    HAZE_CROSSCHECK_DIR=DIR build/io/tests/haze_io_tests "[crosscheck]"
                          # writes DIR/haze.safetensors, reads DIR/python.safetensors
    python3 tests/io/safetensors_crosscheck.py check DIR   # reads DIR/haze.safetensors

Both sides hold the same tensors (see the "[crosscheck]" test case). With the
`safetensors` package installed (pip install safetensors numpy) it writes
and reads through the package; without it, it parses the format itself with
numpy, which checks the layout but not the package's own validation.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

try:
    from safetensors import safe_open
    from safetensors.numpy import save_file
except ImportError:
    safe_open = save_file = None


def fixture():
    return {
        "f32": (0.5 * np.arange(6, dtype=np.float32) - 1.0).reshape(2, 3),
        "f64": np.array([0.1, -2.5, 1e300], dtype=np.float64),
        "i64": np.array([-(1 << 40), 7], dtype=np.int64),
        "i32": np.array([[-3, 1 << 30]], dtype=np.int32),
        "u8": np.array([0, 128, 255], dtype=np.uint8),
        "scalar": np.array(3.5, dtype=np.float32),
    }


DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def read_by_hand(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    buffer = data[8 + n :]
    metadata = header.pop("__metadata__", {})
    tensors, covered = {}, 0
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        covered += end - begin
        tensors[name] = np.frombuffer(buffer[begin:end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
    assert covered == len(buffer), "tensors do not cover the data buffer"
    assert (8 + n) % 8 == 0, "the data buffer is not 8-byte aligned"
    return tensors, metadata


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    folder = Path(sys.argv[2])
    via = "the safetensors package" if safe_open else "a hand-written parser (safetensors not installed)"
    if sys.argv[1] == "write":
        folder.mkdir(parents=True, exist_ok=True)
        if save_file is None:
            sys.exit("writing needs the safetensors package: pip install safetensors numpy")
        save_file(fixture(), str(folder / "python.safetensors"), metadata={"writer": "python"})
        print(f"wrote {folder / 'python.safetensors'}")
        return
    path = folder / "haze.safetensors"
    if safe_open:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata()
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    else:
        tensors, metadata = read_by_hand(path)
    expected = fixture()
    assert metadata == {"writer": "haze"}, metadata
    assert sorted(tensors) == sorted(expected), sorted(tensors)
    for name, want in expected.items():
        got = tensors[name]
        assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
        assert np.array_equal(got, want), (name, got, want)
    print(f"{path}: {len(tensors)} tensors match, read with {via}")


if __name__ == "__main__":
    main()
