#!/usr/bin/env bash
# What the CUDA plug-in costs a CPU-only program (issue 16's targets): the
# README's first program, built with the README's tree line against the
# default build (plug-in built) and against a GPU=0 build, and against the
# default build's libember.so:
#   - readelf -d of the program and of libember.so: no CUDA library;
#   - /proc/self/maps at the end of the run (an LD_PRELOAD'ed destructor
#     copies it): no CUDA library, no plug-in;
#   - peak RSS and start-to-finish time, median of RUNS runs, each side
#     alternating with the other, against the GPU=0 build's;
# and the same for examples/logreg (issue 16's "before" figures were taken
# with it), and for the first program listing the devices first, which makes
# the library look for the plug-in (found here, but not loaded without the
# NVIDIA driver).
#
#   bench/plugin.sh            (EMBER_BUILD=build, RUNS=30; builds $EMBER_BUILD-gpu0 with GPU=0)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EMBER_BUILD:-build}
gpu0=${build}-gpu0
runs=${RUNS:-30}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make -s -j"$(nproc)" BUILD="$build" "$build/libember.a" "$build/libember.so" "$build/examples/logreg"
make -s -j"$(nproc)" BUILD="$gpu0" GPU=0 "$gpu0/libember.a" "$gpu0/examples/logreg"
[ -e "$build/libember_cuda.so" ] && plugin="built" || plugin="NOT built (no nvcc?)"
echo "== the default build ($build: CUDA plug-in $plugin) against a GPU=0 build ($gpu0)"

awk '/^## A first program/{f=1} f&&/^```c/{p=1;next} p&&/^```/{exit} p' README.md > "$tmp/first.c"
line=$(grep -E '^cc first\.c .*libember\.a' README.md)
for b in "$build" "$gpu0"; do
    mkdir -p "$tmp/$b"
    (cd "$tmp/$b" && ln -s "$OLDPWD/include" include && ln -s "$OLDPWD/$b" build && cp "$tmp/first.c" . && eval "$line")
done
cc "$tmp/first.c" -Iinclude -L"$build" -lember -Wl,-rpath,"$PWD/$build" -o "$tmp/first_shared"
# The same program, listing the devices first (as a GPU program would): this loads the plug-in.
sed 's/em_set_seed(1);/em_set_seed(1); printf("devices: %d\\n", em_device_count());/' "$tmp/first.c" > "$tmp/listing.c"
(cd "$tmp/$build" && cc ../listing.c -Iinclude build/libember.a -L/usr/lib/x86_64-linux-gnu/blis-openmp -lblis -lpng \
    -lz -lm -fopenmp -Wl,-rpath,"$OLDPWD/$build" -o listing)

echo "\$ readelf -d <program> | grep NEEDED   (the README's tree line, default build)"
readelf -d "$tmp/$build/first" | grep NEEDED | sed 's/^ */  /'
echo "\$ readelf -d $build/libember.so | grep NEEDED"
readelf -d "$build/libember.so" | grep NEEDED | sed 's/^ */  /'
for f in "$tmp/$build/first" "$build/libember.so" "$tmp/first_shared"; do
    if readelf -d "$f" | grep NEEDED | grep -Eiq 'cuda|cublas|nccl'; then echo "FAIL: $f needs a CUDA library"; exit 1; fi
done
echo "  no CUDA library in either"

cat > "$tmp/maps.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
__attribute__((destructor)) static void dump(void) {
    const char *to = getenv("MAPS_TO");
    FILE *in = fopen("/proc/self/maps", "r"), *out = to ? fopen(to, "w") : NULL;
    int c;
    if (in && out) while ((c = fgetc(in)) != EOF) fputc(c, out);
    if (in) fclose(in);
    if (out) fclose(out);
}
EOF
cc -shared -fPIC -o "$tmp/maps.so" "$tmp/maps.c"
for p in "$tmp/$build/first" "$tmp/first_shared" "$tmp/$build/listing"; do
    MAPS_TO="$tmp/maps.txt" LD_PRELOAD="$tmp/maps.so" "$p" >/dev/null
    n=$(grep -Eic 'cuda|cublas|nccl' "$tmp/maps.txt" || true)
    echo "/proc/self/maps at the end of $(basename "$p"): $(wc -l <"$tmp/maps.txt") mappings, $n of CUDA libraries or the plug-in"
    if [ "$(basename "$p")" != listing ] && [ "$n" -ne 0 ]; then echo "FAIL: a CPU-only run mapped CUDA"; exit 1; fi
done

python3 - "$runs" "$tmp/$build/first" "$tmp/$gpu0/first" "$tmp/first_shared" "$tmp/$build/listing" \
    "$build/examples/logreg" "$gpu0/examples/logreg" <<'EOF'
import os, statistics, subprocess, sys, time
runs = int(sys.argv[1]); progs = sys.argv[2:]
labels = ["first program, default build, libember.a", "first program, GPU=0 build, libember.a",
          "first program, default build, libember.so", "first program listing devices, default",
          "examples/logreg, default build", "examples/logreg, GPU=0 build"]
rss = {p: [] for p in progs}; wall = {p: [] for p in progs}
# Time: the program started and waited for from here. Peak RSS: GNU time's %M
# (a child's ru_maxrss started from here would include this Python's, which
# the kernel carries across fork and exec).
for r in range(runs + 2):
    for p in progs:
        t0 = time.perf_counter()
        if subprocess.call([p], stdout=subprocess.DEVNULL): sys.exit(f"{p} failed")
        dt = time.perf_counter() - t0
        out = subprocess.run(["/usr/bin/time", "-f", "%M", p], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r >= 2:  # two warm-up rounds
            rss[p].append(int(out.stderr.strip().splitlines()[-1]) / 1024); wall[p].append(dt * 1000)
print(f"{'median of %d runs' % runs:42s} {'peak RSS MiB':>13s} {'time ms':>9s} {'(min-max ms)':>14s}")
for label, p in zip(labels, progs):
    w = wall[p]
    print(f"{label:42s} {statistics.median(rss[p]):13.2f} {statistics.median(w):9.2f} ({min(w):5.1f}-{max(w):5.1f})")
d_rss = statistics.median(rss[progs[0]]) - statistics.median(rss[progs[1]])
d_t = statistics.median(wall[progs[0]]) - statistics.median(wall[progs[1]])
print(f"first program, default - GPU=0: peak RSS {d_rss:+.2f} MiB (target: within 1 MiB), time {d_t:+.2f} ms (target: within 10 ms)")
if abs(d_rss) > 1 or abs(d_t) > 10: sys.exit("FAIL: a target is missed")
EOF
