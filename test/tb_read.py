#!/usr/bin/env python3
"""Reads an Ember event file with TensorBoard's own readers and prints what
TensorBoard sees, one line per item, for test/test_summary.c to compare:

  events <count>                       records TensorBoard's loader accepted
  version <file_version>
  scalar <tag> <step> <value>
  histo <tag> <step> <min> <max> <num> <sum> <sum_squares> <buckets>
  bucket <tag> <step> <limit> <count>  each non-empty bucket
  image <tag> <step> <width> <height> <png width> <png height> <png color type>
  text <tag> <step> <JSON string>
  graph <node count>                   the GraphDef EventAccumulator.Graph() parsed
  node <name> <op> in=<a,b|-> <dtype|T>=<DataType> shapes=<[d,d];...>

usage: tb_read.py EVENT_FILE [DIR]   (DIR: also writes each image's PNG there
as <tag with / replaced by _>.<step>.png)
"""
import json
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.compat.proto import graph_pb2


def main():
    path = sys.argv[1]
    dump = sys.argv[2] if len(sys.argv) > 2 else None

    events = list(event_file_loader.EventFileLoader(path).Load())
    print("events", len(events))
    for e in events:
        if e.HasField("file_version"):
            print("version", e.file_version)

    guidance = {k: 0 for k in event_accumulator.DEFAULT_SIZE_GUIDANCE}  # 0: keep every item
    acc = event_accumulator.EventAccumulator(path, size_guidance=guidance, purge_orphaned_data=False)
    acc.Reload()
    tags = acc.Tags()
    for tag in sorted(tags["scalars"]):
        for s in acc.Scalars(tag):
            print("scalar", tag, s.step, repr(s.value))
    for tag in sorted(tags["histograms"]):
        for h in acc.Histograms(tag):
            v = h.histogram_value
            print("histo", tag, h.step, repr(v.min), repr(v.max), repr(v.num), repr(v.sum), repr(v.sum_squares),
                  len(v.bucket))
            for limit, count in zip(v.bucket_limit, v.bucket):
                if count:
                    print("bucket", tag, h.step, repr(limit), repr(count))
    for tag in sorted(tags["images"]):
        for im in acc.Images(tag):
            png = im.encoded_image_string
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR", "not a PNG"
            pw, ph = struct.unpack(">II", png[16:24])
            print("image", tag, im.step, im.width, im.height, pw, ph, png[25])
            if dump:
                with open(os.path.join(dump, "%s.%d.png" % (tag.replace("/", "_"), im.step)), "wb") as f:
                    f.write(png)
    for tag in sorted(tags["tensors"]):
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        for t in acc.Tensors(tag):
            tp = t.tensor_proto
            assert tp.dtype == 7 and len(tp.tensor_shape.dim) == 0, "text is not a scalar string tensor"
            print("text", tag, t.step, json.dumps(tp.string_val[0].decode("utf-8")))
    if tags["graph"]:
        graph = acc.Graph()
        # the graphs plugin reads the copy the loader makes as a run summary
        run_graph = [v.tensor.string_val[0] for e in events for v in e.summary.value if v.tag == "__run_graph__"]
        assert len(run_graph) == 1 and graph_pb2.GraphDef.FromString(run_graph[0]) == graph, "no run graph summary"
        print("graph", len(graph.node))
        for n in graph.node:
            attrs = []
            for key in sorted(n.attr, key=lambda k: (k == "_output_shapes", k)):  # the type first
                a = n.attr[key]
                if key == "_output_shapes":
                    shapes = ["?" if s.unknown_rank else "[%s]" % ",".join(str(d.size) for d in s.dim)
                              for s in a.list.shape]
                    attrs.append("shapes=" + ";".join(shapes))
                else:
                    attrs.append("%s=%d" % (key, a.type))
            print("node", n.name, n.op, "in=" + (",".join(n.input) or "-"), *attrs)


if __name__ == "__main__":
    main()
