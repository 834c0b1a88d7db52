#!/usr/bin/env bash
# Data parallelism over logical CPU devices (issue 7): one epoch of the MNIST
# MLP (examples/mnist, traced graph, batch 100) on one device with one thread,
# on two devices with one thread each (each tower takes 50 examples, the
# gradients are averaged on /cpu:0), and on one device with every core, with
# the test accuracy each reached. Same data, seed and summaries in each run.
#
#   bench/devices.sh        uses $EMBER_BUILD/examples/mnist (default build/)
set -eu
cd "$(dirname "$0")/.."
mnist=${EMBER_BUILD:-build}/examples/mnist
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
run() { # label, then mnist's flags
    local label=$1
    shift
    "$mnist" --epochs 1 --graph --quiet --eval-every 1000000 --logdir "$logdir" "$@" |
        awk -v label="$label" '/^trained/ { ms = $0; sub(/.*\(/, "", ms); sub(/ ms.*/, "", ms); s = $0; sub(/.* in /, "", s); sub(/ s .*/, "", s) }
                               /^final test accuracy/ { acc = $4 }
                               END { printf "%-34s %8s %10s %9s\n", label, s, ms, acc }'
}
printf "%-34s %8s %10s %9s\n" "MLP, 1 epoch (600 steps)" "epoch s" "ms/step" "accuracy"
run "1 device, 1 thread" --threads 1
run "2 devices, 1 thread each" --threads 2 --devices 2
run "1 device, $(nproc) threads" --threads "$(nproc)"
