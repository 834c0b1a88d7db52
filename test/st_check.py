#!/usr/bin/env python3
"""safetensors files checked with Hugging Face's own library, for
test/test_safetensors.c. Both sides build the same tensors (expected() here,
the test's own table there):

  st_check.py EMBER_FILE OUT_FILE

parses Ember's file of them with safetensors and checks every dtype, shape and
value (bit for bit), the metadata {"format": "pt"}, and that the bytes are
those safetensors writes; then writes them with safetensors into OUT_FILE for
Ember to read, with the metadata {"note": ..., "step": "10"}. Prints "ok".

NumPy has no bfloat16, so that tensor is its uint16 bits, handed to
safetensors' serializer as "bfloat16" (safetensors.numpy.save does the same
for every array, with the array's dtype name).
"""
import sys

import numpy as np
from safetensors import TensorSpec, deserialize, safe_open, serialize

BF16 = {"bf16"}
ST_DTYPE = {"float32": "F32", "float64": "F64", "int32": "I32", "int64": "I64", "uint8": "U8", "bool": "BOOL",
            "float16": "F16", "bfloat16": "BF16", "int8": "I8", "int16": "I16", "uint16": "U16"}


def expected():
    return {
        "f32": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
        "f64": np.arange(3, dtype=np.float64) / 3,
        "i32": np.array([[-2, -1], [0, 2**31 - 1]], dtype=np.int32),
        "i64": np.array([-(2**40), 2**62], dtype=np.int64),
        "u8": np.array([0, 1, 128, 255], dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(7.25, dtype=np.float64),
        "f16": np.array([1.5, -0.0, 2.0**-24, 65504, np.inf, np.nan], dtype=np.float16),
        # bfloat16 1, -0, the smallest subnormal, the largest, -Inf, NaN
        "bf16": np.array([0x3F80, 0x8000, 0x0001, 0x7F7F, 0xFF80, 0x7FC0], dtype=np.uint16).reshape(2, 3),
        "i8": np.array([-128, -1, 0, 127], dtype=np.int8),
        "i16": np.array([[-32768, -1], [256, 32767]], dtype=np.int16),
        "u16": np.array([0, 50256, 65535], dtype=np.uint16),
    }


def dtype_name(name, a):
    return "bfloat16" if name in BF16 else a.dtype.name


def serialized(tensors, metadata):
    specs = {name: TensorSpec(dtype=dtype_name(name, a), shape=a.shape, data_ptr=a.ctypes.data, data_len=a.nbytes)
             for name, a in tensors.items()}
    return bytes(serialize(specs, metadata=metadata))


def main():
    path, out = sys.argv[1], sys.argv[2]
    want = expected()
    with open(path, "rb") as f:
        mine = f.read()
    got = dict(deserialize(mine))
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for name, w in want.items():
        g = got[name]
        assert g["dtype"] == ST_DTYPE[dtype_name(name, w)] and tuple(g["shape"]) == w.shape, (name, g, w)
        assert bytes(g["data"]) == w.tobytes(), (name, g, w)
    with safe_open(path, framework="np") as f:
        assert f.metadata() == {"format": "pt"}, f.metadata()
    theirs = serialized(want, {"format": "pt"})
    assert mine == theirs, "bytes differ from what safetensors writes:\n%r\n%r" % (mine[:600], theirs[:600])
    with open(out, "wb") as f:
        f.write(serialized(want, {"note": 'quote " and \u00e9', "step": "10"}))
    print("ok")


if __name__ == "__main__":
    main()
