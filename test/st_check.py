#!/usr/bin/env python3
"""safetensors files checked with Hugging Face's own library (numpy API), for
test/test_safetensors.c. Both sides build the same tensors (expected() here,
the test's own table there):

  st_check.py EMBER_FILE OUT_FILE

loads Ember's file of them and checks every value, dtype and shape, the
metadata {"format": "pt"}, and that the bytes are those safetensors writes;
then writes them with safetensors.numpy into OUT_FILE for Ember to read, with
F16 too and the metadata {"note": ..., "step": "10"}. Prints "ok".
"""
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save, save_file


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
    }


def main():
    path, out = sys.argv[1], sys.argv[2]
    want = expected()
    got = load_file(path)
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for name, w in want.items():
        g = got[name]
        assert g.dtype == w.dtype and g.shape == w.shape, (name, g.dtype, g.shape, w.dtype, w.shape)
        assert np.array_equal(g, w), (name, g, w)
    with safe_open(path, framework="np") as f:
        assert f.metadata() == {"format": "pt"}, f.metadata()
    with open(path, "rb") as f:
        mine = f.read()
    theirs = save(want, metadata={"format": "pt"})
    assert mine == theirs, "bytes differ from what safetensors writes:\n%r\n%r" % (mine[:400], theirs[:400])
    want["f16"] = np.array([1.5, -2.0**-24, 65504.0], dtype=np.float16)
    save_file(want, out, metadata={"note": 'quote " and \u00e9', "step": "10"})
    print("ok")


if __name__ == "__main__":
    main()
