#!/usr/bin/env python3
"""Checks an ONNX model Ember exported with the ONNX tools themselves, for
test/test_onnx.c:

  onnx_check.py DIR...

For each DIR: onnx.checker.check_model (full check: shapes inferred too)
must accept DIR/model.onnx; onnxruntime (one thread) runs it on
DIR/in_<input>.npy and every output must match DIR/out_<output>.npy to a
relative 1e-5 (absolute 1e-6 near zero). Prints one line per graph input,
"input <name> <dims>" with a symbolic dimension as its name, one per float16
or bfloat16 initializer, "initializer <name> <data type> raw_data <bytes>",
then "ok".
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def check(d):
    path = os.path.join(d, "model.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    for i in model.graph.input:
        dims = [x.dim_param or str(x.dim_value) for x in i.type.tensor_type.shape.dim]
        print("input", i.name, ",".join(dims))
    for t in model.graph.initializer:
        if t.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
            print("initializer", t.name, t.data_type, "raw_data", len(t.raw_data))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.load(os.path.join(d, "in_%s.npy" % i.name.replace("/", "_"))) for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    for name, got in zip(names, sess.run(names, feeds)):
        want = np.load(os.path.join(d, "out_%s.npy" % name.replace("/", "_")))
        assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape, want.dtype, want.shape)
        if got.dtype.kind == "f":
            bad = ~np.isclose(got, want, rtol=1e-5, atol=1e-6)
            assert not bad.any(), "%s: %d of %d differ, worst %s vs %s" % (
                name, bad.sum(), bad.size, got[bad].ravel()[:3], want[bad].ravel()[:3])
        else:
            assert np.array_equal(got, want), (name, got, want)


def main():
    for d in sys.argv[1:]:
        try:
            check(d)
        except Exception as e:
            sys.exit("%s: %s: %s" % (d, type(e).__name__, e))
    print("ok")


if __name__ == "__main__":
    main()
