#!/usr/bin/env bash
# GPT-2 small's training step (B = 4, T = 64: forward, backward, AdamW) in Ember (bench/gpt2) beside llm.c's
# train_gpt2.c, on 1 and 2 threads, and the cross-check that llm.c reads a checkpoint Ember wrote.
#
#   bench/gpt2.sh LLMC_DIR [STEPS]     (a checkout of github.com/karpathy/llm.c, f1e2ace; STEPS default 3)
#
# PyTorch eager runs the same step beside them (bench/torch_gpt2.py) where a PyTorch is installed:
# in $EMBER_BENCH_PYTHON, else bench/.venv (make bench-peers), else /usr/bin/python3.
#
# llm.c is built with its own Makefile (`make train_gpt2`, its flags: -Ofast -march=native -fopenmp). Its
# main() reads fixed files and trains 40 steps with generation in between, so the step is timed by a small
# driver compiled with the same command line, which includes train_gpt2.c under -DTESTING (as llm.c's own
# test_gpt2.c does) and calls its gpt2_build_from_checkpoint, gpt2_forward, gpt2_zero_grad, gpt2_backward
# and gpt2_update (lr 1e-4, as its main does) on the first B * T + 1 tokens of a shard.
# The cross-check: bench/gpt2 writes its initial GPT-2 small as an llm.c checkpoint and prints its loss on
# those tokens; llm.c loads that file and must print the same loss (float32 sums in another order: within
# 1e-4).
set -eu
llmc=${1:?usage: bench/gpt2.sh LLMC_DIR [STEPS]}
steps=${2:-3}
build=${EMBER_BUILD:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ember_gpt2_llmc_XXXXXX)
trap 'rm -rf "$work"' EXIT

make -C "$root" -s BUILD="$build" "$build/bench/gpt2"
(cd "$llmc" && make -s train_gpt2 >/dev/null)
cmd=$(cd "$llmc" && make -n train_gpt2 | grep -- '-o train_gpt2$')
cat >"$work/llmc_step.c" <<'EOF'
/* Times llm.c's own training step on a checkpoint and one batch (see bench/gpt2.sh). */
#define TESTING
#include "train_gpt2.c"
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    int B = 4, T = 64, steps = atoi(argv[3]);
    GPT2 model;
    gpt2_build_from_checkpoint(&model, argv[1]);
    FILE *f = fopenCheck(argv[2], "rb");
    uint16_t raw[4 * 64 + 1];
    fseekCheck(f, 1024, SEEK_SET);
    freadCheck(raw, 2, B * T + 1, f);
    fcloseCheck(f);
    int tokens[4 * 64 + 1];
    for (int i = 0; i <= B * T; i++) tokens[i] = raw[i];
    double ms[64];
    for (int s = 0; s <= steps; s++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        gpt2_forward(&model, tokens, tokens + 1, B, T);
        if (s == 0) printf("llm.c: initial loss %.6f\n", model.mean_loss);
        gpt2_zero_grad(&model);
        gpt2_backward(&model);
        gpt2_update(&model, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, s + 1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (s > 0) ms[s - 1] = 1e3 * (t1.tv_sec - t0.tv_sec) + 1e-6 * (t1.tv_nsec - t0.tv_nsec);
    }
    if (steps == 0) return 0;
    qsort(ms, steps, sizeof *ms, cmp);
    printf("llm.c train_gpt2.c step, %s threads: %.1f ms (median of %d; min %.1f, max %.1f)\n",
           getenv("OMP_NUM_THREADS"), ms[steps / 2], steps, ms[0], ms[steps - 1]);
    gpt2_free(&model);
    return 0;
}
EOF
compile=${cmd/train_gpt2.c/-I$llmc $work/llmc_step.c}
compile=${compile%-o train_gpt2}
$compile -o "$work/llmc_step"

# the checkpoint and the batch, written by Ember
python3 - "$work/tokens.bin" <<'EOF'
import random, struct, sys
rng = random.Random(1)
ids = [rng.randrange(50257) for _ in range(4 * 64 + 1)]
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, len(ids), *([0] * 253)))
    f.write(struct.pack("<%dH" % len(ids), *ids))
EOF
"$build/bench/gpt2" 1 1 --save "$work/gpt2_124M.bin" --check "$work/tokens.bin" | grep 'initial loss'
OMP_NUM_THREADS=1 "$work/llmc_step" "$work/gpt2_124M.bin" "$work/tokens.bin" 0 | grep 'initial loss'

py=${EMBER_BENCH_PYTHON:-$root/bench/.venv/bin/python}
[ -x "$py" ] || py=/usr/bin/python3
for t in 1 2; do
    echo "== $t thread(s)"
    "$build/bench/gpt2" "$t" "$steps"
    OMP_NUM_THREADS=$t "$work/llmc_step" "$work/gpt2_124M.bin" "$work/tokens.bin" "$steps" | grep 'step'
    OMP_NUM_THREADS=$t taskset -c "0-$((t - 1))" "$py" "$root/bench/torch_gpt2.py" "$t" "$steps"
done
