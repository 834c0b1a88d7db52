#!/usr/bin/env bash
# The Deep MNIST CNN step's products one by one (bench/cnn_ops.c) beside TensorFlow's oneDNN and PyTorch
# (bench/peers/cnn_ops.py) on the same shapes and threads: ROUNDS alternating rounds, each process pinned
# with taskset; the table gives medians (us per call), GFLOP/s and Ember's ratios.
#   bench/cnn_ops.sh [THREADS] [ROUNDS]      (default 1 thread, 3 rounds)
# The peers' Python: $EMBER_BENCH_PYTHON, else bench/.venv/bin/python (`make bench-peers`).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-1}
rounds=${2:-3}
build=${EMBER_BUILD:-build}
py=${EMBER_BENCH_PYTHON:-bench/.venv/bin/python}
pin=(taskset -c "0-$((threads - 1))")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$rounds"); do
    "${pin[@]}" "$build/bench/cnn_ops" "$threads" >>"$out"
    for peer in tf torch; do
        OMP_NUM_THREADS=$threads "${pin[@]}" "$py" bench/peers/cnn_ops.py "$peer" "$threads" 2>/dev/null >>"$out" ||
            echo "# $peer: not available via $py" >>"$out"
    done
done
grep '^# ' "$out" | sort -u
awk -v threads="$threads" '
    function median(key,   n, i, j, t, v) {
        n = split(times[key], v, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n ? (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) : 0
    }
    !/^#/ { times[$1 " " $2] = times[$1 " " $2] " " $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
    END {
        # floating-point operations of each product, from the shapes
        flops["conv1_fwd"] = flops["conv1_dfilter"] = 2 * 100 * 28 * 28 * 32 * 25
        flops["conv2_fwd"] = flops["conv2_dfilter"] = flops["conv2_dinput"] = 2 * 100 * 14 * 14 * 64 * 25 * 32
        flops["fc1_fwd"] = flops["fc1_dx"] = flops["fc1_dw"] = 2 * 100 * 3136 * 1024
        printf "%d thread(s), medians, us per call (GFLOP/s)\n", threads
        printf "%-14s %18s %18s %18s %9s %9s\n", "product", "Ember", "TF oneDNN", "PyTorch", "E/TF", "E/torch"
        for (i = 1; i <= n; i++) {
            p = order[i]; e = median("ember " p); t = median("tf " p); q = median("torch " p)
            printf "%-14s %9.1f (%6.1f) ", p, e, flops[p] / e / 1e3
            printf (t ? "%9.1f (%6.1f) " : "%18s ", t ? t : "n/a", t ? flops[p] / t / 1e3 : 0)
            printf (q ? "%9.1f (%6.1f) " : "%18s ", q ? q : "n/a", q ? flops[p] / q / 1e3 : 0)
            printf (t ? "%9.2f " : "%9s ", t ? e / t : "n/a"); printf (q ? "%9.2f\n" : "%9s\n", q ? e / q : "n/a")
            se += e; st += t; sq += q
        }
        printf "%-14s %9.1f %18.1f %18.1f %9.2f %9.2f\n", "all", se, st, sq, st ? se / st : 0, sq ? se / sq : 0
    }' "$out"
