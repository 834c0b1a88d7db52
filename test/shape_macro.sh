#!/usr/bin/env bash
# EM_SHAPE and EM_AXES take 1 to 8 arguments (EM_MAX_DIMS): a program with
# more must not compile, and the compiler's error must name the macro (a
# plain initializer would only warn and take the ninth size for the rank).
# With 1 to 8 they build what was written, warning-free under -pedantic.
set -euo pipefail
cc=${CC:-cc}
flags=(-std=c11 -pedantic -Wall -Wextra -Werror -Iinclude)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "shape_macro.sh: FAILED: $*"; exit 1; }

cat >"$tmp/ok.c" <<'C'
#include <ember.h>
#include <stdio.h>
/* 0 when the n sizes (or axes) are 1, 2, ..., n. */
static int counts_up(int ndim, const int64_t *dims, int n) {
    if (ndim != n) return printf("rank %d, not %d\n", ndim, n);
    for (int i = 0; i < n; i++)
        if (dims[i] != i + 1) return printf("size %d of rank %d is %lld\n", i, n, (long long)dims[i]);
    return 0;
}
static int axes_count_up(int n, const int *axes) {
    int64_t d[EM_MAX_DIMS];
    for (int i = 0; i < n; i++) d[i] = axes[i];
    return counts_up(n, d, n);
}
#define SHAPE(n, ...) counts_up(EM_SHAPE(__VA_ARGS__).ndim, EM_SHAPE(__VA_ARGS__).dims, n)
int main(int argc, char **argv) {
    (void)argv;
    return SHAPE(1, argc) || SHAPE(2, 1, 2) || SHAPE(3, 1, 2, 3) || SHAPE(4, 1, 2, 3, 4) ||
           SHAPE(5, 1, 2, 3, 4, 5) || SHAPE(6, 1, 2, 3, 4, 5, 6) || SHAPE(7, 1, 2, 3, 4, 5, 6, 7) ||
           SHAPE(8, 1, 2, 3, 4, 5, 6, 7, argc + 7) || axes_count_up(EM_AXES(1)) ||
           axes_count_up(EM_AXES(1, 2, 3, 4, 5, 6, 7, 8));
}
C
"$cc" "${flags[@]}" "$tmp/ok.c" -o "$tmp/ok" 2>"$tmp/ok.log" || fail "1 to 8 arguments do not compile: $(cat "$tmp/ok.log")"
"$tmp/ok" || fail "EM_SHAPE or EM_AXES with 1 to 8 arguments built something else"

# Nine arguments (the issue's case, the ninth a variable) and 64.
too_many() { # macro, arguments, what the error must name
    printf '#include <ember.h>\nint f(int x, int *out);\nint f(int x, int *out) {\n    %s\n    return 0;\n}\n' "$1" \
        >"$tmp/bad.c"
    if "$cc" "${flags[@]}" -fsyntax-only "$tmp/bad.c" 2>"$tmp/bad.log"; then fail "compiled: $1"; fi
    grep -q "error:.*$2" "$tmp/bad.log" || fail "the error for '$1' does not name $2: $(grep error: "$tmp/bad.log")"
}
sizes=$(seq -s ', ' 1 8)
too_many "*out = EM_SHAPE($sizes, x).ndim;" EM_SHAPE
too_many "*out = EM_SHAPE($(seq -s ', ' 1 64)).ndim;" EM_SHAPE
too_many "*out = em_ndim(em_sum(NULL, EM_AXES($sizes, x), false));" EM_AXES
echo "shape_macro.sh: EM_SHAPE and EM_AXES build 1 to 8 sizes; more fails to compile, naming the macro"
