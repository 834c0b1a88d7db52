#!/usr/bin/env bash
# examples/fashion_resnet.c beside PyTorch's same recipe (bench/torch_fashion_resnet.py): same threads, same
# data, one after the other, for each seed: STEPS training steps each (5 warm-up steps left out of the step
# time), then the test accuracy each reaches, and at the end the mean accuracy of each over the seeds.
#   bench/fashion_resnet.sh [THREADS] [STEPS] [SEEDS]
# THREADS: default 2. STEPS: default 100; 0 runs the whole recipe (2 epochs). SEEDS: seeds 1..SEEDS (default 1).
# EMBER_BENCH_PYTHON: the Python that imports torch (default Debian's /usr/bin/python3).
set -euo pipefail
threads=${1:-2}
steps=${2:-100}
seeds=${3:-1}
build=${EMBER_BUILD:-build}
py=${EMBER_BENCH_PYTHON:-/usr/bin/python3}
here=$(dirname "$0")
ember_sum=0 torch_sum=0
accuracy() { sed -n 's/^final test accuracy: \([0-9.]*\).*/\1/p'; }
for seed in $(seq 1 "$seeds"); do
    echo "seed $seed"
    if [ "$steps" -gt 0 ]; then
        ember=$("$build/examples/fashion_resnet" --threads "$threads" --steps "$steps" --seed "$seed" --quiet)
        torch=$("$py" "$here/torch_fashion_resnet.py" "$threads" 2 "$steps" "$seed")
    else
        ember=$("$build/examples/fashion_resnet" --threads "$threads" --seed "$seed" --quiet)
        torch=$("$py" "$here/torch_fashion_resnet.py" "$threads" 2 0 "$seed")
    fi
    printf 'ember: %s\n%s\n' "$(grep -v '^Fashion' <<<"$ember" | grep .)" "$torch"
    ember_sum=$(awk -v a="$ember_sum" -v b="$(accuracy <<<"$ember")" 'BEGIN { print a + b }')
    torch_sum=$(awk -v a="$torch_sum" -v b="$(accuracy <<<"$torch")" 'BEGIN { print a + b }')
done
awk -v e="$ember_sum" -v t="$torch_sum" -v n="$seeds" \
    'BEGIN { printf "mean test accuracy over %d seed(s): Ember %.4f, PyTorch %.4f\n", n, e / n, t / n }'
