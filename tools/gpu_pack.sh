#!/usr/bin/env bash
# `make gpu-check`'s packer: bundles what runs on a lent GPU machine (x86-64,
# CUDA's driver, cuBLAS and NCCL from its Python packages; no network, BLIS,
# libpng or Check) into .devcarry/ (git-ignored): the programs
# tools/gpu_check.sh runs, libember.so and the CUDA plug-in where the build
# put them, MNIST, and the shared libraries the programs need that such a
# machine lacks; and .devcarry/run.sh, which unpacks in the project root
# there, points the loader at those libraries and at the machine's CUDA
# libraries, and runs tools/gpu_check.sh, its log copied to $OUT/device.log.
# It prints the one command to run there. The packed tree stays under 64 MiB.
#   EMBER_BUILD=build bash tools/gpu_pack.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
build=${EMBER_BUILD:-build}
progs=("$build"/test/test_plugin_cuda "$build"/test/test_plugin_cuda_shared "$build"/test/test_gpu "$build"/test/test_ops
       "$build"/test/test_dtypes
       "$build"/examples/mnist "$build"/examples/gpt2 "$build"/bench/cublas "$build"/bench/attention)
files=("${progs[@]}" "$build"/libember_cuda.so "$build"/libember.so.0 "$build"/libember.so.0.1.0 data/mnist
       tools/gpu_check.sh)
for f in "${files[@]}"; do [ -e "$f" ] || { echo "gpu_pack.sh: $f is missing (make gpu-check builds it)"; exit 1; }; done
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.devcarry/' "$exclude" 2>/dev/null || echo '/.devcarry/' >> "$exclude"
rm -rf .devcarry
mkdir -p .devcarry/libs
# What the machine has (the C runtime, CUDA's libraries) stays behind, and so
# does libember: the programs find the bundled build/libember.so.0 by their
# RUNPATH ($ORIGIN/..), and libember finds the plug-in beside itself.
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libstdc\+\+|libgcc_s|libcuda\.|libcublas|libcublasLt|libnccl|libcudart|libnvrtc|libember)'
for p in "${progs[@]}" "$build"/libember_cuda.so; do
    ldd "$p" | awk '/=> \//{print $1, $3}' | while read -r name path; do
        grep -qE "$skip" <<<"$name" || cp -Ln "$path" .devcarry/libs/ 2>/dev/null || true
    done
done
tar -cJf .devcarry/bundle.tar.xz "${files[@]}"
cat > .devcarry/run.sh <<RUN
#!/usr/bin/env bash
# On the GPU machine, from the project root: unpack, find the CUDA libraries
# of its Python packages, run tools/gpu_check.sh (log in \$OUT/device.log).
set -uo pipefail
cd "\$(dirname "\$0")/.."
tar -xJf .devcarry/bundle.tar.xz
cudalibs=\$(ls -d /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib /usr/local/cuda/lib64 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="\$PWD/.devcarry/libs:\${cudalibs}\${LD_LIBRARY_PATH:-}"
mkdir -p "\${OUT:-/tmp/out}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  EMBER_BUILD=$build bash tools/gpu_check.sh; } 2>&1 | tee "\${OUT:-/tmp/out}/device.log"
exit "\${PIPESTATUS[0]}"
RUN
size=$(du -sm .devcarry | cut -f1)
echo "packed ${#progs[@]} programs, the plug-in, libember.so and MNIST into .devcarry ($size MiB; under 64 MiB must travel)"
[ "$size" -lt 60 ] || { echo "gpu_pack.sh: too big"; exit 1; }
echo "On the GPU machine, from the project root (carry .devcarry), run:"
echo "  bash .devcarry/run.sh"
