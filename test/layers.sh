#!/usr/bin/env bash
# The layering check (issue 15): dependencies in lib/ point down.
#
#   layer 0  tensor.c scope.c error.c gpu_loader.c   tensors, storage, threads, ownership
#            file.c                                  and device scopes, errors, the plug-in's loader,
#                                                    files written whole (every writer's, graph/ too)
#   layer 1  op.c profile.c ops/*.c                  the dispatcher, its per-op profile and the op definitions
#   layer 2  tape.c device.c graph/*.c               recording, placement, tracing/plans/replay
#   layer 3  variable.c batch_norm.c optim.c bench.c  variables, batch norm's moving averages,
#            summary.c png.c io/*.c                   optimizers, files
#
# An object file of a layer may use symbols defined in its own layer and the
# layers below, never one defined in a layer above (upper layers reach down
# through hooks: lib/op.h's em__op_hooks, lib/internal.h's em__shutdown_hooks).
# Checked on the object files themselves (nm), so a declaration in a shared
# header cannot hide a call. Every lib/ file must have a layer here.
# No allow-list.
set -u
build=${EMBER_BUILD:-build}
objs=$build/lib
if [ ! -d "$objs" ]; then
    echo "layers: FAILED: no object files under $objs (build the library first)"
    exit 1
fi

# The layer of an object (the same map as the awk function below).
layer_of() {
    case $1 in
    lib/tensor.o | lib/scope.o | lib/error.o | lib/gpu_loader.o | lib/file.o) echo 0 ;;
    lib/op.o | lib/profile.o | lib/ops/*.o) echo 1 ;;
    lib/tape.o | lib/device.o | lib/graph/*.o) echo 2 ;;
    lib/variable.o | lib/batch_norm.o | lib/optim.o | lib/bench.o | lib/summary.o | lib/png.o | lib/io/*.o) echo 3 ;;
    *) echo "" ;;
    esac
}

# Every object the Makefile builds from lib/ (dist/ is its own library).
list=$(cd "$build" && find lib -name '*.o' -not -path 'lib/dist/*' | sort)
missing=0
for src in $(cd "$(dirname "$0")/.." && find lib -name '*.c' -not -path 'lib/dist/*' | sort); do
    o=${src%.c}.o
    if [ -z "$(layer_of "$o")" ]; then
        echo "layers: $src has no layer in test/layers.sh"
        missing=1
    fi
done

table=$(mktemp)
trap 'rm -f "$table"' EXIT
# One nm over every object: "lib/x.o: symbol type ...", external symbols only.
(cd "$build" && nm -A -P -g $list) | awk '
    function layer(o) {
        if (o ~ /^lib\/(tensor|scope|error|gpu_loader|file)\.o$/) return 0
        if (o ~ /^lib\/(op|profile)\.o$/ || o ~ /^lib\/ops\//) return 1
        if (o ~ /^lib\/(tape|device)\.o$/ || o ~ /^lib\/graph\//) return 2
        if (o ~ /^lib\/(variable|batch_norm|optim|bench|summary|png)\.o$/ || o ~ /^lib\/io\//) return 3
        return -1
    }
    {
        o = $1; sub(/:$/, "", o)
        l = layer(o)
        if (l < 0) next
        # "D <layer> <object> <symbol>" for definitions, "U ..." for uses.
        print ($3 == "U" ? "U" : "D"), l, o, $2
    }' >"$table"

violations=$(awk '
    $1 == "D" { layer[$4] = $2; file[$4] = $3; next }
    { use[++n] = $0 }
    END {
        for (i = 1; i <= n; i++) {
            split(use[i], f, " ")
            s = f[4]
            if ((s in layer) && layer[s] > f[2])
                printf "  %s (layer %d) uses %s, defined in %s (layer %d)\n", f[3], f[2], s, file[s], layer[s]
        }
    }' "$table")

if [ -n "$violations" ] || [ $missing -ne 0 ]; then
    [ -n "$violations" ] && printf '%s\n' "$violations"
    echo "layers: FAILED: a lower layer of lib/ depends on a higher one (see test/layers.sh)"
    exit 1
fi
echo "layers: passed: $(echo "$list" | wc -l) object files, no dependency points up"
