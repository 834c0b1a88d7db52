#!/usr/bin/env bash
# The checks that need a GPU, run on a machine that has one, from the project
# root, with what `make gpu-check` packed (tools/gpu_pack.sh). Each has its
# own time limit; together they finish within 10 minutes. On this machine a
# suite that exits 77 (no GPU) is a failure: there is meant to be one.
#   bash tools/gpu_check.sh        (EMBER_BUILD=build)
set -uo pipefail
build=${EMBER_BUILD:-build}
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
check() { # seconds, command...: fails unless it exits 0 without saying it skipped the GPU
    local limit=$1 start rc
    shift
    echo "== $*"
    start=$(date +%s)
    timeout "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ] && grep -Eq '/gpu:0: not present|skipped: ' "$log"; then rc=77; fi
    echo "-- exit $rc after $(($(date +%s) - start)) s: $*"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}
check 30 "$build/test/test_plugin_cuda"        # the plug-in loaded by a program linked with libember.a
check 30 "$build/test/test_plugin_cuda_shared" # ... and with libember.so
check 120 "$build/test/test_gpu"               # random streams, optimizers, memory, CUDA graphs
check 200 "$build/test/test_ops"               # every op's forward and gradient cases on /gpu:0 against the CPU
check 60 "$build/test/test_dtypes"              # bfloat16 and float16 conversions by the GPU's casts
check 120 "$build/examples/mnist" --device /gpu:0 --steps 600 --eval-every 600 --quiet --logdir /tmp/ember-mnist-gpu
check 60 "$build/bench/cublas" 1024 4096       # Ember's matmul and add against cuBLAS and the card's bandwidth
check 60 "$build/bench/attention" 1 /gpu:0     # fused attention against the composed one
if [ -f runs/gpt2/data/train.bin ]; then         # GPT-2 (make gpt2's data, carried along)
    check 120 "$build/examples/gpt2" --device /gpu:0 --steps 60 --eval-every 30 --gen-tokens 40 --logdir /tmp/ember-gpt2-gpu
fi
echo "gpu-check: $failed failed"
[ "$failed" -eq 0 ]
