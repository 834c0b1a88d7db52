#!/usr/bin/env bash
# Runs every example with short settings: each must exit 0 and say what it promises.
set -euo pipefail
build=${EMBER_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { # name, expected text, command...
    local name=$1 want=$2
    shift 2
    if out=$("$@" 2>&1) && grep -q -- "$want" <<<"$out"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $name"
        echo "$out" | tail -20
    fi
}
check logreg "loss" "$build/examples/logreg"
check conv_scopes "model/conv1/weights" "$build/examples/conv_scopes"
check mnist "final test accuracy" "$build/examples/mnist" --steps 60 --eval-every 30 --quiet --logdir "$tmp/mnist"
check mnist-graph "(graph, 1 device)" "$build/examples/mnist" --steps 30 --eval-every 30 --quiet --graph --logdir "$tmp/mnist-graph"
check mnist-devices "(graph, 2 devices)" "$build/examples/mnist" --steps 20 --eval-every 20 --quiet --graph --devices 2 --logdir "$tmp/mnist-devices"
check mnist-bf16 "final test accuracy" "$build/examples/mnist" --steps 20 --eval-every 20 --quiet --autocast bf16 --logdir "$tmp/mnist-bf16"
check mnist-f16 "final test accuracy" "$build/examples/mnist" --steps 20 --eval-every 20 --quiet --autocast f16 --logdir "$tmp/mnist-f16"
check mnist-files "events.out.tfevents" ls "$tmp/mnist/train"
check mnist-plots "loss.png" ls "$tmp/mnist"
check classify "accuracy: " "$build/examples/classify" "$tmp/mnist/model.emg" --count 300 --show 2
# Checkpoints: the first run saved model-30 and model-60 (every --eval-every
# steps); --resume continues from the newest to the total of --steps, and a
# run without it starts fresh in the same directory.
check mnist-checkpoints "model-60" ls "$tmp/mnist"
check mnist-resume "resumed from $tmp/mnist/model-60 at step 60" "$build/examples/mnist" --steps 80 --eval-every 10 --quiet --resume --logdir "$tmp/mnist"
check mnist-keep "model-80" cat "$tmp/mnist/model.index"
check mnist-fresh "trained 20 steps" "$build/examples/mnist" --steps 20 --eval-every 10 --keep 2 --quiet --logdir "$tmp/mnist"
check deep_mnist "final test accuracy" "$build/examples/deep_mnist" --steps 12 --eval-every 10 --checkpoint-every 6 --test-images 1000 --quiet --threads 1 --logdir "$tmp/deep_mnist"
check deep_mnist-resume "resumed from $tmp/deep_mnist/model-12 at step 12" "$build/examples/deep_mnist" --steps 20 --eval-every 10 --test-images 1000 --quiet --threads 1 --resume --logdir "$tmp/deep_mnist"
# GPT-2 (a tiny one): the fortunes tokenized into llm.c shards, training with validation beside the bigram
# model, the loss plot, TensorBoard files, the checkpoints and the llm.c checkpoint; --graph; --resume from
# the newest checkpoint (the loader's position with it); --init-from the llm.c checkpoint it wrote.
gpt2=("$build/examples/gpt2" --data "$tmp/gpt2/data" --layers 1 --heads 2 --channels 16 --seq 16 --batch 2
      --eval-every 2 --eval-batches 1 --gen-tokens 8 --threads 1)
check gpt2 "final validation loss" "${gpt2[@]}" --steps 4 --logdir "$tmp/gpt2"
check gpt2-files "events.out.tfevents" ls "$tmp/gpt2/train" "$tmp/gpt2/val"
check gpt2-plot "loss.png" ls "$tmp/gpt2"
check gpt2-llmc "model.bin" ls "$tmp/gpt2"
check gpt2-graph "ms/step, graph)" "${gpt2[@]}" --steps 2 --graph --logdir "$tmp/gpt2-graph"
check gpt2-bf16 "final validation loss" "${gpt2[@]}" --steps 2 --graph --autocast bf16 --logdir "$tmp/gpt2-bf16"
check gpt2-resume "resumed from $tmp/gpt2/model-4 at step 4 (batch 4)" "${gpt2[@]}" --steps 6 --resume --logdir "$tmp/gpt2"
check gpt2-init-from "generated (8 tokens" "${gpt2[@]}" --steps 0 --init-from "$tmp/gpt2/model.bin" --logdir "$tmp/gpt2-init"
# Your own op: registered, gradchecked (a failed check exits 1), trained eagerly and as a graph, timed.
check custom_op "graph: 20 more steps" "$build/examples/custom_op" --steps 20 --bench-time 0.02 --threads 1
check deep_mnist-batch-norm "final test accuracy" "$build/examples/deep_mnist" --steps 3 --eval-every 10 --test-images 200 --quiet --threads 1 --batch-norm --logdir "$tmp/deep_mnist_bn"
# Fashion-MNIST (Debian's dataset-fashion-mnist, which `make deps` installs)
check fashion_resnet "final test accuracy" "$build/examples/fashion_resnet" --steps 2 --batch 32 --test-images 200 --quiet --threads 1
# The MNIST example on the GPU, where there is one (its training reaches the
# same accuracy floor as on the CPU).
if gpu_out=$("$build/examples/mnist" --steps 300 --eval-every 300 --quiet --device /gpu:0 --logdir "$tmp/mnist-gpu" 2>&1); then
    check mnist-gpu "final test accuracy: 0.9" echo "$gpu_out"
else
    echo "mnist on /gpu:0: skipped: $(grep -m 1 "^mnist:" <<<"$gpu_out")"
fi
echo "examples: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
