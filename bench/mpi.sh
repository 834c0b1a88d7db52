#!/usr/bin/env bash
# Multi-process training of the MNIST MLP (784-500-10, Adam 1e-3, batch 100)
# with examples/mnist_mpi on this machine's cores, loopback TCP: the time of
# one epoch (600 global batches) and the test accuracy reached, for
#   sync, 1 rank (1 thread, then all cores) and 2 ranks (cores / 2 threads each),
#   async, 1 server + 1 worker and 1 server + 2 workers (staleness 4).
# An async epoch is the server's time from em_ps_open until every worker
# has pushed its share of the 600 batches.
#
#   bench/mpi.sh                 uses $EMBER_BUILD/examples/mnist_mpi (default build/)
#   EMBER_MPI_EPOCHS=2 bench/mpi.sh
set -u
cd "$(dirname "$0")/.."
prog=${EMBER_BUILD:-build}/examples/mnist_mpi
epochs=${EMBER_MPI_EPOCHS:-1}
if [ ! -x "$prog" ]; then
    echo "bench/mpi.sh: $prog is not built (run: make $prog; needs Open MPI)" >&2
    exit 1
fi
if ! command -v mpirun >/dev/null; then
    echo "bench/mpi.sh: mpirun is not on PATH (Debian: apt-get install openmpi-bin)" >&2
    exit 1
fi
root=""
[ "$(id -u)" = 0 ] && root=--allow-run-as-root

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //')
echo "MNIST MLP, $epochs epoch(s) of 600 batches of 100, Open MPI over loopback TCP, $(nproc) cores ($cpu)"
printf '%-6s %-22s %8s %10s %9s\n' mode ranks "threads" "epoch (s)" accuracy
base=""
run() { # mode, np, description, extra args...
    local mode=$1 np=$2 what=$3
    shift 3
    local out
    out=$(mpirun $root --oversubscribe --bind-to none -np "$np" --mca btl self,tcp --mca btl_tcp_if_include lo \
        --mca oob_tcp_if_include lo "$prog" --mode "$mode" --epochs "$epochs" --quiet "$@" 2>&1)
    local wall acc threads
    wall=$(sed -n 's/^rank 0: wall time \([0-9.]*\) s$/\1/p' <<<"$out")
    acc=$(grep -o 'test accuracy [0-9.]*' <<<"$out" | head -1 | cut -d' ' -f3)
    threads=$(sed -n 's/.*ranks, \([0-9]*\) thread(s) each.*/\1/p' <<<"$out")
    if [ -z "$wall" ]; then
        echo "bench/mpi.sh: $mode on $np ranks failed:" >&2
        tail -5 <<<"$out" >&2
        return 1
    fi
    printf '%-6s %-22s %8s %10.2f %9s\n' "$mode" "$what" "$threads" "$wall" "$acc"
}
status=0
run sync 1 "1" --threads 1 || status=1
run sync 1 "1" || status=1
run sync 2 "2" || status=1
run async 2 "1 server + 1 worker" --servers 1 --staleness 4 || status=1
run async 3 "1 server + 2 workers" --servers 1 --staleness 4 || status=1
exit $status
