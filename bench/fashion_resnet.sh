#!/usr/bin/env bash
# Step time of examples/fashion_resnet.c beside PyTorch's same recipe (bench/torch_fashion_resnet.py), same
# threads, same data, one after the other: STEPS training steps each (5 warm-up steps left out), then the
# test accuracy each reaches.
#   bench/fashion_resnet.sh [THREADS] [STEPS]      (default 2 threads, 100 steps; STEPS 0: one full epoch)
set -euo pipefail
threads=${1:-2}
steps=${2:-100}
build=${EMBER_BUILD:-build}
if [ "$steps" -gt 0 ]; then
    "$build/examples/fashion_resnet" --threads "$threads" --steps "$steps" --quiet
    /usr/bin/python3 "$(dirname "$0")/torch_fashion_resnet.py" "$threads" 1 "$steps"
else
    "$build/examples/fashion_resnet" --threads "$threads" --epochs 1 --quiet
    /usr/bin/python3 "$(dirname "$0")/torch_fashion_resnet.py" "$threads" 1
fi
