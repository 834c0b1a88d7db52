#!/usr/bin/env bash
# The benchmark suite behind `make bench`: ember-bench over every op family at
# small, medium and large sizes on the CPU, the eager dispatch time (a
# 1-element add) and the MNIST MLP training step, each beside PyTorch doing
# the same work with the same thread count in the same run
# (bench/torch_ops.py), with Ember/PyTorch time ratios (< 1: Ember is faster).
#
#   bench/suite.sh                 uses $EMBER_BUILD/ember-bench (default build/)
#   EMBER_BENCH_THREADS=1 EMBER_BENCH_TIME=0.5 bench/suite.sh
#   EMBER_BENCH_RUNS=5 bench/suite.sh   each row the median of 5 alternating runs
#
# EMBER_BENCH_THREADS: threads for both (default: all cores); EMBER_BENCH_TIME:
# seconds of sampling per row (default 0.3); EMBER_BENCH_RUNS: runs of each job,
# Ember and PyTorch alternating, each side's median kept (default 1);
# EMBER_BENCH_PYTHON: the Python that imports torch (default /usr/bin/python3).
# About 2 minutes a run on 2 cores.
set -u
cd "$(dirname "$0")/.."
tool=${EMBER_BUILD:-build}/ember-bench
threads=${EMBER_BENCH_THREADS:-$(nproc)}
time_s=${EMBER_BENCH_TIME:-0.3}
runs=${EMBER_BENCH_RUNS:-1}
py=${EMBER_BENCH_PYTHON:-/usr/bin/python3} # Debian's python3-torch is importable by this one only
if [ ! -x "$tool" ]; then
    echo "bench/suite.sh: $tool is not built (run: make $tool)" >&2
    exit 1
fi

# PyTorch is optional: without it the torch column is skipped, with the reason.
torch_reason=""
if [ ! -x "$py" ]; then
    torch_reason="$py not found"
elif ! torch_version=$(OMP_NUM_THREADS=1 "$py" -c 'import torch; print(torch.__version__)' 2>&1); then
    torch_reason="torch not importable by $py: $(printf '%s\n' "$torch_version" | tail -n 1)"
fi

have_torch=yes
[ -n "$torch_reason" ] && have_torch=""

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "Ember vs PyTorch, CPU, float32, $threads thread(s), ${time_s}s per row, median of $runs run(s) ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //'))"
if [ -n "$torch_reason" ]; then
    echo "PyTorch column skipped: $torch_reason"
else
    echo "PyTorch $torch_version via $py (torch.set_num_threads($threads), OMP_NUM_THREADS=$threads, OPENBLAS_NUM_THREADS=$threads)"
fi

# One job per line: ember-bench arguments; '#' lines are section titles.
jobs=$(cat <<'EOF'
# eager dispatch: a 1-element add, without and with a tape
add 1 --backward
# elementwise
add 65536,16777216 --backward
mul 65536,16777216
relu 4096,65536,16777216 --backward
exp 4096,65536,16777216
sigmoid 4096,65536,4194304 --backward
tanh 65536,4194304
# reductions
sum 64x64,1024x1024,4096x4096 --backward
sum 64x64,1024x1024,4096x4096 --axis 0
sum 64x64,1024x1024,4096x4096 --axis 1
max 64x64,1024x1024,4096x4096
mean 1024x1024 --axis 1 --backward
# softmax
softmax 100x10,256x1000,4096x1000 --backward
log_softmax 256x1000 --backward
# matmul
matmul 64,256,1024 --backward
matmul 100x500x784,1024x1024x64
# conv2d (NHWC input, HWIO filter, SAME)
conv2d 1x28x28x1,5x5x1x32,32x14x14x32,5x5x32x64,8x56x56x64,3x3x64x64 --backward
conv2d 8x56x56x64,3x3x64x128 --stride 2
# pools (2x2 windows)
max_pool 1x28x28x32,32x28x28x64,8x112x112x64 --backward
avg_pool 1x28x28x32,32x28x28x64,8x112x112x64 --backward
# MNIST MLP 784-500-10, batch 100, Adam: forward, forward+backward, training step
mlp 100 --backward
EOF
)

# Each row of the JSON-line files $@ (one file per run, the same rows in each),
# taken from the run with the median time (the lower median for an even count).
median_rows() {
    awk '
    {
        if (!match($0, /"median_us": ?[^,}]*/)) next
        t = substr($0, RSTART, RLENGTH); sub(/^"median_us": ?/, "", t)
        n[FNR]++; line[FNR, n[FNR]] = $0; us[FNR, n[FNR]] = (t == "null") ? 1e300 : t + 0
        if (FNR > rows) rows = FNR
    }
    END {
        for (r = 1; r <= rows; r++) {
            for (i = 1; i <= n[r]; i++) {
                below = 0
                for (j = 1; j <= n[r]; j++) if (us[r, j] < us[r, i] || (us[r, j] == us[r, i] && j < i)) below++
                if (below == int((n[r] - 1) / 2)) { print line[r, i]; break }
            }
        }
    }' "$@"
}

# Joins ember-bench's and torch_ops.py's JSON lines row by row.
join_rows() {
    awk -v torch="$2" -v tfile="$tmp/torch" '
    function get(s, key,   m) {
        if (!match(s, "\"" key "\": ?(\"[^\"]*\"|[^,}]*)")) return ""
        m = substr(s, RSTART, RLENGTH)
        sub(/^"[^"]*": ?/, "", m)
        gsub(/"/, "", m)
        return m
    }
    BEGIN { while ((getline line < tfile) > 0) t[++nt] = line }
    {
        op = get($0, "op"); shape = get($0, "shape"); pass = get($0, "pass")
        e = get($0, "median_us"); g = get($0, "gflops")
        tm = ""; note = ""
        if (torch != "") {
            if (FNR in t && get(t[FNR], "op") == op && get(t[FNR], "pass") == pass) {
                tm = get(t[FNR], "median_us"); note = get(t[FNR], "note")
            } else note = "no matching PyTorch row"
        }
        ratio = "-"
        if (tm != "" && tm != "null" && tm + 0 > 0) {
            ratio = sprintf("%.2f", e / tm)
            printf "%s\n", log(e / tm) >> ENVIRON["RATIOS"]
            if (e / tm > 1.05) printf "  %s %s %s: %.2f\n", op, shape, pass, e / tm >> ENVIRON["SLOWER"]
        }
        printf "%-12s %-36s %-16s %12.2f %12s %8s %9s %s\n", op, shape, pass, e,
               (tm == "" || tm == "null") ? "-" : sprintf("%.2f", tm), ratio, g == "null" ? "-" : sprintf("%.2f", g), note
    }' "$1"
}

export RATIOS="$tmp/ratios" SLOWER="$tmp/slower"
: > "$RATIOS"
: > "$SLOWER"
status=0
peak_arg=()
printf '\n%-12s %-36s %-16s %12s %12s %8s %9s\n' op shape pass "ember(us)" "torch(us)" ember/pt "GFLOP/s"
while IFS= read -r job; do
    if [ "${job#\#}" != "$job" ]; then
        printf '%s\n' "$job"
        continue
    fi
    failed=""
    for ((r = 1; r <= runs; r++)); do
        # shellcheck disable=SC2086
        if ! "$tool" $job --json --threads "$threads" --time "$time_s" "${peak_arg[@]}" > "$tmp/ember.$r" 2> "$tmp/err"; then
            echo "FAILED: ember-bench $job: $(cat "$tmp/err")"
            failed=yes
            break
        fi
        # The FMA-loop peak is measured once, by the first job.
        if [ ${#peak_arg[@]} -eq 0 ]; then
            peak=$(sed -n 's/.*"peak_gflops":\([0-9.]*\).*/\1/p' "$tmp/ember.$r" | head -n 1)
            [ -n "$peak" ] && peak_arg=(--peak "$peak")
        fi
        : > "$tmp/torch.$r"
        if [ -z "$torch_reason" ]; then
            # shellcheck disable=SC2086
            OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
                "$py" bench/torch_ops.py $job --threads "$threads" --time "$time_s" > "$tmp/torch.$r" 2> "$tmp/err" ||
                echo "PyTorch failed on $job: $(tail -n 1 "$tmp/err")"
        fi
    done
    if [ -n "$failed" ]; then
        status=1
        continue
    fi
    median_rows "$tmp"/ember.* > "$tmp/ember"
    median_rows "$tmp"/torch.* > "$tmp/torch"
    rm -f "$tmp"/ember.* "$tmp"/torch.*
    join_rows "$tmp/ember" "$have_torch"
done <<< "$jobs"

if [ -s "$RATIOS" ]; then
    awk '{ s += $1; n++ } END { printf "\ngeometric mean of ember/torch time over %d rows: %.2f (< 1: Ember faster)\n", n, exp(s / n) }' "$RATIOS"
fi
if [ -s "$RATIOS" ]; then
    echo "rows where Ember takes more than 1.05x PyTorch's time: $(wc -l < "$SLOWER")"
    cat "$SLOWER"
fi
[ -n "${peak:-}" ] && echo "CPU peak (FMA loop, $threads thread(s)): $peak GFLOP/s"
exit $status
