# Ember. `make` builds the static and shared library and the CUDA plug-in;
# `make test` runs every Check suite; `make test SANITIZE=1` runs them under
# ASan + UBSan. BUILD=dir puts objects elsewhere (parallel builds of several trees).

PREFIX ?= /usr/local
BUILD ?= build
# BUILD as given, before the sanitizer builds add their suffix (a test runs
# `make install` with the same variables).
BUILD_ARG := $(BUILD)
SANITIZE ?= 0
VERSION := 0.1.0
SOVERSION := 0

CC ?= cc
BLIS_INC ?= /usr/include/x86_64-linux-gnu/blis-openmp
BLIS_LIB ?= /usr/lib/x86_64-linux-gnu/blis-openmp

CFLAGS ?= -O2 -g
# -fno-math-errno: nothing reads errno after a math call, and without it GCC
# keeps one scalar sqrt call per element (the optimizers' loops stay scalar).
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -fopenmp -fno-math-errno \
          -Iinclude -Ilib -isystem $(BLIS_INC)
LDLIBS := -L$(BLIS_LIB) -Wl,-rpath,$(BLIS_LIB) -lblis -lpng -lz -lm -lpthread -ldl -fopenmp
# The build tree's programs (build/test, build/examples, build/bench) find the
# CUDA plug-in build/libember_cuda.so through the loader's search (lib/gpu_loader.c).
PROG_RPATH := -Wl,-rpath,'$$ORIGIN/..'

TEST_ENV :=
ifeq ($(SANITIZE),1)
  override BUILD := $(BUILD)-sanitize
  # No fork per test: LeakSanitizer then checks each suite's whole run.
  TEST_ENV := CK_FORK=no
  CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS += -fsanitize=address,undefined
endif
# `make test TSAN=1`: ThreadSanitizer. libgomp is not instrumented, so work
# handed to its worker threads looks racy: OMP_THREAD_LIMIT=1 runs every
# OpenMP region (Ember's kernels, BLIS) on the calling thread, while the
# suites' own pthreads still run at once; test/tsan.supp covers what BLIS
# does inside (see docs/bad_input.md, "Threads").
TEST_SCRIPTS := $(wildcard test/*.sh)
ifeq ($(TSAN),1)
  override BUILD := $(BUILD)-tsan
  TEST_ENV := CK_FORK=no OMP_THREAD_LIMIT=1 TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/test/tsan.supp"
  # The Check suites only: the example scripts train real models, which take
  # tens of minutes under TSan's instrumentation (ASan and valgrind run them).
  TEST_SCRIPTS :=
  CFLAGS += -O1 -fsanitize=thread -fno-omit-frame-pointer
  LDLIBS += -fsanitize=thread
endif
# `make fuzz` builds the library with clang for libFuzzer (OpenMP pragmas off:
# one thread is what a fuzzer wants; a variable read only by a pragma is then
# unused) into $(BUILD)-fuzz.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst test/fuzz/%.c,%,$(wildcard test/fuzz/fuzz_*.c))
ifeq ($(FUZZ),1)
  override BUILD := $(BUILD)-fuzz
  CC := clang
  CFLAGS += -fopenmp=libgomp -Wno-unused-parameter -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
  LDLIBS += -fsanitize=fuzzer,address,undefined
endif

LIB_SRC := $(wildcard lib/*.c lib/ops/*.c lib/graph/*.c lib/io/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/%.c=$(BUILD)/test/%)
TEST_COMMON := $(wildcard test/cases_*.c) test/common.c
TEST_COMMON_OBJ := $(TEST_COMMON:%.c=$(BUILD)/%.o)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
BENCH := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

# Multi-process training (lib/dist/, include/ember/dist.h) is its own
# libember_mpi, built with mpicc when Open MPI is installed, so that libember
# never depends on MPI; `make MPI=0` leaves it out, with examples/mnist_mpi.c,
# test/test_mpi.c and bench/mpi.sh.
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
MPICC ?= mpicc
MPI_STATIC := $(BUILD)/libember_mpi.a
MPI_SHARED := $(BUILD)/libember_mpi.so.$(VERSION)
MPI_PROGS := $(BUILD)/examples/mnist_mpi $(BUILD)/test/test_mpi
ifeq ($(MPI),1)
  MPI_LIBS := $(MPI_STATIC) $(MPI_SHARED)
else
  EXAMPLES := $(filter-out $(MPI_PROGS),$(EXAMPLES))
  TEST_BIN := $(filter-out $(MPI_PROGS),$(TEST_BIN))
endif

# The CUDA backend (gpu/*.cu behind lib/gpu.h) is a plug-in of its own,
# $(BUILD)/libember_cuda.so, built when nvcc is found; `make GPU=0` leaves it
# out. Either way libember links no CUDA library: it loads the plug-in with
# dlopen the first time a GPU is asked for or listed (lib/gpu_loader.c), so
# the library is the same in both builds. Sanitizer, ThreadSanitizer and fuzz
# builds leave the plug-in out (CUDA's runtime is not instrumented); the stub
# plug-in (test/plugin_stub.c) stands in for it in the tests of every build.
# GPU_ARCH: the compute capability to build for (H100, H200: sm_90).
NVCC ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
GPU ?= $(if $(NVCC),$(if $(filter 1,$(SANITIZE) $(TSAN) $(FUZZ)),0,1),0)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
GPU_ARCH ?= sm_90
CUDA_PLUGIN := $(BUILD)/libember_cuda.so
ifeq ($(GPU),1)
  NCCL ?= $(if $(wildcard $(CUDA_HOME)/include/nccl.h),1,0)
  NVCCFLAGS ?= -O3
  # Hidden visibility: the plug-in exports its entry, em_gpu_plugin, only.
  NVCCFLAGS += -std=c++17 -arch=$(GPU_ARCH) -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror \
               -diag-suppress 186 -Iinclude -Ilib -Igpu -DEMBER_GPU_ARCH='"$(GPU_ARCH)"' \
               $(if $(filter 1,$(NCCL)),-DEMBER_NCCL)
  GPU_OBJ := $(patsubst %.cu,$(BUILD)/%.o,$(wildcard gpu/*.cu))
  GPU_LIBS := $(CUDA_PLUGIN)
  # The CUDA runtime linked in statically, its symbols kept inside
  # (--exclude-libs: a program's own CUDA runtime cannot take over the
  # plug-in's calls); --no-undefined: the plug-in needs no symbol of
  # libember's (it calls the library only through the table it is handed).
  CUDA_LDLIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart_static -lcublas \
                 $(if $(filter 1,$(NCCL)),-lnccl) -ldl -lrt -lpthread -lstdc++ -lm
endif

# bench/cublas.c calls cuBLAS directly: it exists only with the backend.
ifneq ($(GPU),1)
  BENCH := $(filter-out $(BUILD)/bench/cublas,$(BENCH))
endif

STATIC := $(BUILD)/libember.a
SHARED := $(BUILD)/libember.so.$(VERSION)

CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt)

# Keep the shared test objects between builds of the suites.
.SECONDARY:

.PHONY: all test examples bench bench-peers bench-autocast install clean deps mnist gpt2 fuzz fuzz-run gpu-check
all: $(STATIC) $(SHARED) $(GPU_LIBS) $(BUILD)/ember-bench $(MPI_LIBS)

HEADERS := $(wildcard include/*.h include/ember/*.h lib/*.h lib/ops/*.h lib/ops/*.def lib/graph/*.h lib/io/*.h)
$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
# The elementwise and softmax loops clamp and round by selects and rintf, which GCC vectorizes in the
# AVX2 clone only if it may assume that no floating-point operation traps (else each element is scalar,
# about 4x slower). The values are the same either way; nothing in Ember reads the exception flags.
$(BUILD)/lib/ops/elementwise.o $(BUILD)/lib/ops/softmax.o: CFLAGS += -fno-trapping-math
$(BUILD)/test/%.o: test/%.c $(HEADERS) $(wildcard test/*.h test/data/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/gpu/%.o: gpu/%.cu gpu/common.cuh $(HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(CUDA_PLUGIN): $(GPU_OBJ) gpu/plugin.map
	$(CC) -shared -Wl,-soname,libember_cuda.so -Wl,--no-undefined -Wl,--exclude-libs,ALL \
	  -Wl,--version-script=gpu/plugin.map -o $@ $(GPU_OBJ) $(CUDA_LDLIBS)

# The loader names the install directory (PREFIX/lib) as a place to look for
# the plug-in: it is rebuilt when PREFIX changes.
$(shell mkdir -p $(BUILD) && [ "$$(cat $(BUILD)/prefix 2>/dev/null)" = "$(PREFIX)" ] || echo "$(PREFIX)" > $(BUILD)/prefix)
$(BUILD)/lib/gpu_loader.o: CFLAGS += -DEMBER_LIBDIR='"$(PREFIX)/lib"'
$(BUILD)/lib/gpu_loader.o: $(BUILD)/prefix

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libember.so.$(SOVERSION) -o $@ $^ $(LDLIBS)
	ln -sf libember.so.$(VERSION) $(BUILD)/libember.so.$(SOVERSION)
	ln -sf libember.so.$(VERSION) $(BUILD)/libember.so

$(BUILD)/test/%: test/%.c $(TEST_COMMON_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(TEST_COMMON_OBJ) $(STATIC) -o $@ $(CHECK_LIBS) $(LDLIBS) $(PROG_RPATH)
# The tokenizer's suite reads the GPT-2 example's corpus the way the example does.
$(BUILD)/test/test_tokenizer: examples/gpt2_data.h test/sha256.h

# The plug-in's loading, linked both ways (test/test_plugin.c): test_plugin
# and test_plugin_shared with the stub plug-ins (every build, every machine),
# test_plugin_cuda and test_plugin_cuda_shared with the real one (exit 77
# without a GPU). The stubs: the working one, and three that must be refused
# (an old ABI version, another op count, another op list).
STUB_PLUGINS := $(addprefix $(BUILD)/test/,libember_stub.so libember_stub_abi0.so libember_stub_opcount.so \
                  libember_stub_opnames.so)
PLUGIN_TESTS := $(addprefix $(BUILD)/test/,test_plugin test_plugin_shared test_plugin_cuda test_plugin_cuda_shared)
TEST_BIN := $(filter-out $(PLUGIN_TESTS),$(TEST_BIN)) $(PLUGIN_TESTS)
STUB_FLAGS_libember_stub :=
STUB_FLAGS_libember_stub_abi0 := -DSTUB_ABI_VERSION=0
STUB_FLAGS_libember_stub_opcount := -DSTUB_OP_COUNT_DELTA=1
STUB_FLAGS_libember_stub_opnames := -DSTUB_WRONG_NAME
$(BUILD)/test/libember_%.so: test/plugin_stub.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(STUB_FLAGS_$(basename $(notdir $@))) -fvisibility=hidden -shared -Wl,--no-undefined -o $@ $<
PLUGIN_TEST_DEPS := test/test_plugin.c $(STUB_PLUGINS)
$(BUILD)/test/test_plugin $(BUILD)/test/test_plugin_cuda: $(PLUGIN_TEST_DEPS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(findstring cuda,$(notdir $@)),-DREAL_PLUGIN) $< $(STATIC) -o $@ $(LDLIBS) $(PROG_RPATH)
$(BUILD)/test/test_plugin_shared $(BUILD)/test/test_plugin_cuda_shared: $(PLUGIN_TEST_DEPS) $(SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSHARED_LINK $(if $(findstring cuda,$(notdir $@)),-DREAL_PLUGIN) $< -o $@ -L$(BUILD) -lember \
	  $(LDLIBS) $(PROG_RPATH)

# examples/custom_op.c's CUDA kernels, a small library of their own that the
# example loads from beside itself (GPU builds only; without it the op runs on
# the CPU).
CUSTOM_OP_CUDA := $(if $(filter 1,$(GPU)),$(BUILD)/examples/libcustom_op_cuda.so)
$(BUILD)/examples/libcustom_op_cuda.so: examples/custom_op_cuda.cu examples/bias_gelu.h $(HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -shared -o $@ $< -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lpthread
$(BUILD)/examples/custom_op: $(CUSTOM_OP_CUDA)

# A user's op library that ember-bench --load loads (test/test_custom_op.c):
# its Ember symbols come from the program that loads it.
$(BUILD)/test/libtestops.so: test/custom_ops_lib.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $<
$(BUILD)/test/test_custom_op: $(BUILD)/test/libtestops.so $(BUILD)/test/libember_stub.so $(BUILD)/ember-bench

$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(STATIC) -o $@ $(LDLIBS) $(PROG_RPATH)

$(BUILD)/lib/dist/mpi.o: lib/dist/mpi.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS) -c $< -o $@
$(MPI_STATIC): $(BUILD)/lib/dist/mpi.o
	rm -f $@ && ar rcs $@ $^
$(MPI_SHARED): $(BUILD)/lib/dist/mpi.o $(SHARED)
	$(MPICC) -shared -Wl,-soname,libember_mpi.so.$(SOVERSION) -o $@ $< -L$(BUILD) -lember $(LDLIBS)
	ln -sf libember_mpi.so.$(VERSION) $(BUILD)/libember_mpi.so.$(SOVERSION)
	ln -sf libember_mpi.so.$(VERSION) $(BUILD)/libember_mpi.so
$(BUILD)/examples/mnist_mpi: examples/mnist_mpi.c $(wildcard examples/*.h) $(MPI_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS) $< $(MPI_STATIC) $(STATIC) -o $@ $(LDLIBS) $(PROG_RPATH)
$(BUILD)/test/test_mpi: test/test_mpi.c $(TEST_COMMON_OBJ) $(MPI_STATIC) $(STATIC)
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS) $< $(TEST_COMMON_OBJ) $(MPI_STATIC) $(STATIC) -o $@ $(CHECK_LIBS) $(LDLIBS)

# The kernel benchmarking tool (tools/ember_bench.c); test_bench runs it. It
# holds all of libember and exports it (-rdynamic), so that a library loaded
# with --load registers its ops with the one Ember the tool runs.
$(BUILD)/ember-bench: tools/ember_bench.c $(STATIC)
	$(CC) $(CFLAGS) $< -Wl,--whole-archive $(STATIC) -Wl,--no-whole-archive -rdynamic -o $@ $(LDLIBS) -ldl \
	  -Wl,-rpath,'$$ORIGIN'

# bench/cublas calls CUDA and cuBLAS itself, beside Ember's GPU ops (the
# plug-in keeps its own CUDA runtime inside).
$(BUILD)/bench/cublas: bench/cublas.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(CUDA_HOME)/include $< $(STATIC) -o $@ $(LDLIBS) $(PROG_RPATH) \
	  -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart_static -lcublas -lrt
$(BUILD)/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(STATIC) -o $@ $(LDLIBS) $(PROG_RPATH)

# Each suite runs from the project root; test/*.sh run the examples and the
# README's compile lines (test/readme.sh runs `make install` with
# EMBER_MAKE_ARGS). A suite that cannot run here (no GPU, no mpirun) exits 77:
# it is counted as skipped, never as passed, and the last line gives the totals.
TEST_SCRIPT_ENV := EMBER_BUILD=$(BUILD) EMBER_MAKE_ARGS="BUILD=$(BUILD_ARG) PREFIX=$(PREFIX) GPU=$(GPU) MPI=$(MPI) SANITIZE=$(SANITIZE)" \
                   EMBER_LINK_EXTRA="$(filter -fsanitize=%,$(LDLIBS))"
test: all $(TEST_BIN) $(EXAMPLES) $(BUILD)/ember-bench
	@passed=0; failed=0; skipped=0; \
	for t in $(TEST_BIN) $(TEST_SCRIPTS); do echo "== $$t"; \
	  case $$t in *.sh) $(TEST_SCRIPT_ENV) bash $$t;; *) EMBER_BUILD=$(BUILD) $(TEST_ENV) $$t;; esac; rc=$$?; \
	  if [ $$rc -eq 0 ]; then passed=$$((passed + 1)); \
	  elif [ $$rc -eq 77 ]; then skipped=$$((skipped + 1)); echo "SKIPPED: $$t"; \
	  else failed=$$((failed + 1)); echo "FAILED: $$t (exit $$rc)"; fi; done; \
	echo "suites: $$passed passed, $$failed failed, $$skipped skipped"; \
	[ $$failed -eq 0 ]

examples: $(EXAMPLES)

# The GPT-2 model is one header, shared by the example, its test and its benchmark.
$(BUILD)/test/test_gpt2 $(BUILD)/test/test_saved_graph $(BUILD)/test/test_onnx $(BUILD)/bench/gpt2 $(BUILD)/bench/autocast: examples/gpt2_model.h
$(BUILD)/bench/cnn $(BUILD)/bench/autocast: bench/deep_mnist_cnn.h

# Each fuzz target runs FUZZ_SECONDS (or FUZZ_RUNS executions: the 10M of
# issue 9 is `make fuzz FUZZ_RUNS=10000000`) from its corpus test/fuzz/corpus/<t>/;
# new inputs and crashes go to $(BUILD)-fuzz/fuzz/ (keep the useful ones with
# <target> -merge=1 test/fuzz/corpus/<t> $(BUILD)-fuzz/fuzz/corpus-<t>).
# test_fuzz_replay replays the corpora in `make test`, no clang needed.
$(BUILD)/test/test_fuzz_replay: $(wildcard test/fuzz/*.c test/fuzz/*.h)
$(BUILD)/fuzz/%: test/fuzz/%.c test/fuzz/fuzz.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(STATIC) -o $@ $(LDLIBS) $(PROG_RPATH)
fuzz:
	$(MAKE) FUZZ=1 BUILD=$(BUILD) fuzz-run
fuzz-run: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
	@for t in $(FUZZ_TARGETS); do echo "== $$t"; mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	  $(BUILD)/fuzz/$$t $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS)) -max_len=4096 -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/$$t- $(BUILD)/fuzz/corpus-$$t test/fuzz/corpus/$$t || exit 1; done
# The standard suite: every op family beside PyTorch (bench/suite.sh), then
# the op, step and CNN benchmarks, on 1 thread and on all cores; with the GPU
# backend, Ember's GPU matmul and add against cuBLAS and the card's bandwidth
# (skipped without a GPU); data parallelism over CPU devices, and over MPI
# ranks; what the CUDA plug-in costs a CPU-only program (against a GPU=0 build).
# Today's peers (bench/peers/run.py): PyTorch 2, TensorFlow 2 and JAX from PyPI in bench/.venv,
# outside build/ so that `make clean` keeps it (about 7 GB with PyTorch's CUDA packages), or the
# Python that EMBER_BENCH_PYTHON names. The same environment serves `make bench`'s PyTorch column:
# EMBER_BENCH_PYTHON=bench/.venv/bin/python make bench.
PEER_PACKAGES := torch==2.15.0 tensorflow-cpu==2.21.0 jax==0.10.2 jaxlib==0.10.2 numpy
bench/.venv/bin/python:
	python3 -m venv bench/.venv
	bench/.venv/bin/pip install -q $(PEER_PACKAGES)
bench-peers: $(BUILD)/bench/steps $(BUILD)/bench/cnn $(BUILD)/ember-bench $(if $(EMBER_BENCH_PYTHON),,bench/.venv/bin/python)
	EMBER_BUILD=$(BUILD) python3 bench/peers/run.py

bench: $(BENCH) $(BUILD)/ember-bench $(BUILD)/examples/mnist $(if $(MPI_LIBS),$(BUILD)/examples/mnist_mpi)
	EMBER_BUILD=$(BUILD) bench/suite.sh
	@for b in $(filter-out $(BUILD)/bench/cublas $(BUILD)/bench/autocast,$(BENCH)); do for t in 1 $$(nproc); do \
	  echo "== $$b $$t"; $$b $$t || exit 1; done; done
	$(if $(filter $(BUILD)/bench/cublas,$(BENCH)),$(BUILD)/bench/cublas)
	EMBER_BUILD=$(BUILD) bench/devices.sh
	EMBER_BUILD=$(BUILD) bench/plugin.sh
	$(if $(MPI_LIBS),EMBER_BUILD=$(BUILD) bench/mpi.sh)

# Mixed-precision training against float32 (issue 20): MNIST MLP and CNN accuracy, the small GPT's validation
# loss, and the CNN and GPT-2 steps' memory (bench/autocast.sh; half an hour or more on 2 cores).
bench-autocast: $(BUILD)/bench/autocast $(BUILD)/examples/mnist $(BUILD)/examples/deep_mnist $(BUILD)/examples/gpt2
	EMBER_BUILD=$(BUILD) bench/autocast.sh

# The README's main job: train the MNIST example with TensorBoard logs and plots.
mnist: $(BUILD)/examples/mnist
	$(BUILD)/examples/mnist --logdir runs/mnist

# The GPT-2 example (examples/gpt2.c): the fortunes corpus tokenized into llm.c's shards (runs/gpt2/data),
# a small GPT trained on 2 cores in under 10 minutes beside a bigram model, then text generated.
gpt2: $(BUILD)/examples/gpt2
	$(BUILD)/examples/gpt2 --logdir runs/gpt2 --layers 4 --heads 4 --channels 256 --seq 128 --batch 8 \
	  --steps 400 --lr 2e-3 --warmup 20 --eval-every 50

# ember.pc is written here, naming the PREFIX given to this `make install`
# (DESTDIR, a staging directory, is not part of it).
install: all
	install -d $(DESTDIR)$(PREFIX)/include/ember $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/ember.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/ember/*.h $(DESTDIR)$(PREFIX)/include/ember/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libember.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libember.so.$(SOVERSION)
	ln -sf libember.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libember.so
	$(if $(GPU_LIBS),install -m 755 $(CUDA_PLUGIN) $(DESTDIR)$(PREFIX)/lib/)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: ember\nDescription: eager tape-based automatic differentiation in C\nVersion: %s\nLibs: -L$${libdir} -lember\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(VERSION)' '$(LDLIBS)' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ember.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/ember.pc
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/ember-bench $(DESTDIR)$(PREFIX)/bin/
	$(if $(MPI_LIBS),install -m 644 $(MPI_STATIC) $(DESTDIR)$(PREFIX)/lib/ && \
	  install -m 755 $(MPI_SHARED) $(DESTDIR)$(PREFIX)/lib/ && \
	  ln -sf libember_mpi.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libember_mpi.so.$(SOVERSION) && \
	  ln -sf libember_mpi.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libember_mpi.so)

# Everything that needs a GPU, built here and packed for a machine that has
# one but no network, BLIS, libpng or Check (tools/gpu_pack.sh): the suites
# that run on /gpu:0, the plug-in's loading linked both ways, MNIST on
# /gpu:0 and bench/cublas. It prints the one command to run there.
GPU_CHECK_PROGS := $(addprefix $(BUILD)/test/,test_gpu test_ops test_dtypes test_plugin_cuda test_plugin_cuda_shared) \
                   $(BUILD)/examples/mnist $(BUILD)/examples/gpt2 $(BUILD)/bench/cublas $(BUILD)/bench/attention
ifeq ($(GPU),1)
gpu-check: $(GPU_CHECK_PROGS) $(CUDA_PLUGIN) $(SHARED)
	EMBER_BUILD=$(BUILD) bash tools/gpu_pack.sh
else
gpu-check:
	@echo "make gpu-check: needs the CUDA plug-in, which this build leaves out (GPU=0, a sanitizer build, or no nvcc)"; exit 1
endif

# Installs the Debian packages the build, tests and benchmarks need (fortunes:
# the GPT-2 example's corpus, examples/gpt2_data.h).
DEB_PACKAGES := build-essential pkg-config libblis-dev libblis-openmp-dev check libsubunit-dev \
                libpng-dev zlib1g-dev python3-numpy libopenmpi-dev openmpi-bin fortunes dataset-fashion-mnist
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get update && apt-get install -y$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else echo "all Debian packages present: $(DEB_PACKAGES)"; fi

clean:
	rm -rf build build-* runs
