#!/usr/bin/env bash
# Soak test of kill-and-resume: trains the MNIST MLP (examples/mnist) for
# SECONDS (default 600), killing it with SIGKILL at random intervals and
# resuming it (--resume) each time, then checks the result against one
# uninterrupted run of the same number of steps.
#
#   bench/soak.sh [SECONDS]          EMBER_BUILD=build-ck bench/soak.sh 3600
#
# Environment: EMBER_BUILD (default build), SOAK_SEED (the kill intervals;
# default 24), SOAK_MIN / SOAK_MAX (seconds between a start and its kill,
# default 2 and 20), SOAK_KEEP (checkpoints kept, default 3), SOAK_EVERY
# (steps between checkpoints, default 100), SOAK_DIR (work directory,
# default a fresh one under /tmp; kept at the end).
#
# Reports: the number of kills (and how many fell inside a save: a locked
# temporary file was left behind, which the next save removed); the steps
# trained; the final test accuracy beside the uninterrupted run's; whether
# the final checkpoints are byte-identical (variables, Adam's slots, step,
# random stream, data position: the kill points always allow it, since every
# resume starts from a checkpoint); the checkpoint directory at the end
# (only SOAK_KEEP checkpoints and the index); the peak RSS of any of the
# processes (VmHWM, sampled every 0.2 s).
set -uo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
build=${EMBER_BUILD:-build}
seed=${SOAK_SEED:-24}
min=${SOAK_MIN:-2}
max=${SOAK_MAX:-20}
keep=${SOAK_KEEP:-3}
every=${SOAK_EVERY:-100}
work=${SOAK_DIR:-$(mktemp -d /tmp/ember_soak_XXXXXX)}
mnist=$build/examples/mnist
[ -x "$mnist" ] || { echo "soak: $mnist is not built (make BUILD=$build examples)"; exit 2; }
mkdir -p "$work"
ck=$work/checkpoints
logs=$work/logs
RANDOM=$seed
# The same flags for every run: a run "forever" (killed long before the end),
# one thread (results are identical for any thread count; this leaves a core
# to the rest of the machine), evaluations at the checkpoints.
flags=(--epochs 1000000 --threads 1 --eval-every "$every" --checkpoint-every "$every" --keep "$keep" --quiet)

peak_kb=0
# Runs mnist in the background as $pid, sampling its peak RSS into peak_kb.
sample_peak() { # pid
    local hwm
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
    [ -n "$hwm" ] && [ "$hwm" -gt "$peak_kb" ] && peak_kb=$hwm
    return 0
}

newest_step() { # the step of the index's last line, or 0
    local last
    last=$(tail -n 1 "$ck/model.index" 2>/dev/null)
    case $last in model-*) echo "${last#model-}" ;; *) echo 0 ;; esac
}

echo "soak: $duration s of MNIST training killed at random intervals of $min-$max s (seed $seed), in $work"
start=$SECONDS
kills=0 in_save=0 runs=0
while [ $((SECONDS - start)) -lt "$duration" ]; do
    "$mnist" "${flags[@]}" --resume --checkpoint-dir "$ck" --logdir "$logs" >"$work/run.log" 2>&1 &
    pid=$!
    runs=$((runs + 1))
    # A kill time in [min, max) s, in milliseconds, from the seeded stream.
    wait_ms=$((min * 1000 + (RANDOM * 32768 + RANDOM) % ((max - min) * 1000)))
    left_ms=$(((duration - (SECONDS - start)) * 1000))
    [ "$wait_ms" -gt "$left_ms" ] && wait_ms=$((left_ms > 0 ? left_ms : 0))
    waited=0
    while [ "$waited" -lt "$wait_ms" ] && kill -0 "$pid" 2>/dev/null; do
        sample_peak "$pid"
        sleep 0.2
        waited=$((waited + 200))
    done
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        echo "soak: run $runs ended by itself (exit $?):"
        tail -5 "$work/run.log"
        exit 1
    fi
    sample_peak "$pid"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    kills=$((kills + 1))
    # A temporary file of this process: it was killed inside a save.
    temps=$(find "$ck" -maxdepth 1 -name "*.tmp.$pid" 2>/dev/null | wc -l)
    [ "$temps" -gt 0 ] && in_save=$((in_save + 1))
    echo "soak: kill $kills after $((waited / 1000)).$(((waited % 1000) / 100)) s: newest checkpoint step $(newest_step)$([ "$temps" -gt 0 ] && echo ", killed inside a save (its temporary file left)")"
done
steps=$(newest_step)
echo "soak: $kills kills in $((SECONDS - start)) s; newest checkpoint: step $steps; peak RSS so far $((peak_kb / 1024)) MiB"
if [ "$steps" -le 0 ]; then
    echo "soak: no checkpoint was written"
    exit 1
fi

# The last resume trains one more checkpoint interval, so that its save
# removes the temporary file a kill inside a save may have left; then the
# same number of steps, never stopped.
litter=$(find "$ck" -maxdepth 1 -name '*.tmp.*' | wc -l)
steps=$((steps + every))
"$mnist" "${flags[@]}" --steps "$steps" --resume --checkpoint-dir "$ck" --logdir "$logs" >"$work/final.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do sample_peak "$pid"; sleep 0.2; done
wait "$pid" || { echo "soak: the final resume failed:"; tail -5 "$work/final.log"; exit 1; }
acc=$(grep -o 'final test accuracy: [0-9.]*' "$work/final.log" | awk '{print $4}')

ref=$work/uninterrupted
ref_start=$SECONDS
"$mnist" "${flags[@]}" --steps "$steps" --checkpoint-dir "$ref" --logdir "$work/ref-logs" >"$work/ref.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do sample_peak "$pid"; sleep 0.2; done
wait "$pid" || { echo "soak: the uninterrupted run failed:"; tail -5 "$work/ref.log"; exit 1; }
ref_acc=$(grep -o 'final test accuracy: [0-9.]*' "$work/ref.log" | awk '{print $4}')

if cmp -s "$ck/model-$steps" "$ref/model-$steps"; then
    same="bit-identical"
else
    same="DIFFERENT"
fi
ckpts=$(find "$ck" -maxdepth 1 -name 'model-*' ! -name '*.tmp.*' | wc -l)
bytes=$(du -sb "$ck" | awk '{print $1}')
others=$(find "$ck" -mindepth 1 -maxdepth 1 ! -name 'model-*' ! -name model.index | wc -l)
temps=$(find "$ck" -maxdepth 1 -name '*.tmp.*' | wc -l)
echo "soak: RESULT: $duration s, $runs runs, $kills kills ($in_save inside a save), $steps steps trained (the last $every after the soak)"
echo "soak: RESULT: final test accuracy $acc; uninterrupted run of the same $steps steps: $ref_acc ($((SECONDS - ref_start)) s)"
echo "soak: RESULT: final checkpoint model-$steps vs the uninterrupted run's: $same"
echo "soak: RESULT: checkpoint directory at the end: $ckpts checkpoints (keep $keep) + model.index, $((bytes / 1024)) KiB, $temps temporary files ($litter before the last resume's save), $others other files"
echo "soak: RESULT: TensorBoard logs of all the runs: $(du -sk "$logs" | awk '{print $1}') KiB"
echo "soak: RESULT: peak RSS of any process: $((peak_kb / 1024)) MiB"
[ "$same" = bit-identical ] && [ "$ckpts" -eq "$keep" ] && [ "$temps" -eq 0 ] && [ "$others" -eq 0 ]
