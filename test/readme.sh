#!/usr/bin/env bash
# The README's first program, compiled with exactly the README's two lines
# against this build, and run: "straight from this tree" (run where `include`
# and `build` name this tree's, so that another BUILD works too), and
# "against an installed Ember" (`make install PREFIX=<a temporary directory>`,
# then pkg-config alone, PKG_CONFIG_PATH naming that prefix: the installed
# ember.pc must name the PREFIX given). Installing to another PREFIX rebuilds
# the plug-in loader, which names PREFIX/lib, so the install runs from a
# copy of the build: this tree's build is left as it was. Neither program
# may need a CUDA library, and the plug-in must be installed beside the
# library when it was built. Sanitizer builds append their -fsanitize flags
# (EMBER_LINK_EXTRA) to both lines.
set -euo pipefail
root=$PWD
build=${EMBER_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "readme.sh: FAILED: $*"; exit 1; }

# The first ```c block after "## A first program", and the lines that compile it.
awk '/^## A first program/{f=1} f&&/^```c/{p=1;next} p&&/^```/{exit} p' README.md > "$tmp/first.c"
grep -q 'int main' "$tmp/first.c" || fail "no program under '## A first program' in README.md"
mapfile -t lines < <(grep -E '^cc first\.c ' README.md)
[ "${#lines[@]}" -eq 2 ] || fail "expected the README's 2 compile lines (cc first.c ...), found ${#lines[@]}"
installed=$(printf '%s\n' "${lines[@]}" | grep 'pkg-config' || true)
tree=$(printf '%s\n' "${lines[@]}" | grep -v 'pkg-config' || true)
[ -n "$installed" ] && [ -n "$tree" ] || fail "one line with pkg-config and one without expected: ${lines[*]}"

no_cuda() { # program
    if readelf -d "$1" | grep NEEDED | grep -Ei 'cuda|cublas|nccl'; then fail "$1 needs a CUDA library"; fi
}
runs() { # dir, command... (the README's program keeps x and y to the end: no leak check)
    local out
    out=$( (cd "$1" && shift && ASAN_OPTIONS=detect_leaks=0 "$@") 2>&1) || fail "the first program failed: $out"
    grep -q '^step 0 loss' <<<"$out" || fail "the first program printed: $out"
}

# Straight from this tree.
mkdir -p "$tmp/tree"
cp "$tmp/first.c" "$tmp/tree/"
ln -s "$root/include" "$tmp/tree/include"
ln -s "$root/$build" "$tmp/tree/build"
(cd "$tmp/tree" && eval "$tree ${EMBER_LINK_EXTRA:-}") || fail "the tree line failed: $tree"
no_cuda "$tmp/tree/first"
runs "$tmp/tree" ./first

# Against an installed Ember.
prefix=$tmp/prefix
read -ra make_args <<<"${EMBER_MAKE_ARGS:-}"
build_arg=build
for a in "${make_args[@]}"; do [[ $a == BUILD=* ]] && build_arg=${a#BUILD=}; done
copy=$tmp/build${build#"$build_arg"} # the suffix a sanitizer build adds to BUILD
mkdir -p "$copy"
for f in "$root/$build"/*; do # what `make install` needs: the library's objects and what is made of them
    case ${f##*/} in test | examples | bench | fuzz) ;; *) cp -a "$f" "$copy/" ;; esac
done
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$root" "${make_args[@]}" \
    BUILD="$tmp/build" PREFIX="$prefix" install >"$tmp/install.log" 2>&1 || fail "make install: $(tail -5 "$tmp/install.log")"
libdir=$prefix/lib
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(sed -n 's/^prefix=//p' "$libdir/pkgconfig/ember.pc")" = "$prefix" ] ||
    fail "the installed ember.pc names prefix $(sed -n 's/^prefix=//p' "$libdir/pkgconfig/ember.pc"), not $prefix"
libs=$(pkg-config --libs ember | sed 's/ *$//')
[ "$(pkg-config --libs ember | wc -l)" -eq 1 ] && [ "$libs" = "-L$libdir -lember" ] ||
    fail "pkg-config --libs ember gives '$libs'"
case " ${EMBER_MAKE_ARGS:-} " in # a build with the plug-in (GPU=1) installs it beside the library
*" GPU=1 "*) [ -e "$libdir/libember_cuda.so" ] || fail "make install did not put libember_cuda.so beside the library" ;;
esac
mkdir -p "$tmp/installed"
cp "$tmp/first.c" "$tmp/installed/"
(cd "$tmp/installed" && eval "$installed ${EMBER_LINK_EXTRA:-}") || fail "the installed line failed: $installed"
no_cuda "$tmp/installed/first"
runs "$tmp/installed" env LD_LIBRARY_PATH="$libdir" ./first
echo "readme.sh: the README's first program compiles with both lines (the second against make install PREFIX=$prefix," \
    "through pkg-config alone) and runs; it needs no CUDA library"
