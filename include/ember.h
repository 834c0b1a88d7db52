/* Ember: an eager, tape-based automatic-differentiation runtime in C11.
 *
 * This is the one public header. It includes the topic headers under ember/,
 * each of which documents one family of functions:
 *
 *   ember/core.h     tensors, dtypes, shapes, scopes, errors, threads
 *   ember/ops.h      eager ops: elementwise, reductions, matmul, shape, nn, random
 *   ember/autodiff.h gradient tape
 *   ember/graph.h    tracer: placeholders, frozen graphs, feeds and fetches
 *   ember/device.h   devices, device scopes, placement, copies between devices
 *   ember/train.h    variables, variable scopes, initializers, optimizers, checkpoints
 *   ember/io.h       data formats: IDX (MNIST), .npy
 *   ember/llmc.h     llm.c's GPT-2 checkpoints and token shards, the token loader
 *   ember/text.h     GPT-2 BPE tokenizer, llm.c tokenizer files
 *   ember/summary.h  TensorBoard event files, PNG images and plots
 *   ember/bench.h    kernel microbenchmarks: timing, GFLOP/s, GB/s, % of peak
 *   ember/dist.h     multi-process training on MPI (in libember_mpi)
 *
 * Conventions, true of every function:
 *   - A function returning em_tensor * returns a NEW tensor owned by the
 *     innermost open scope (em_scope_begin), unless its comment says BORROWED.
 *   - On failure it returns NULL and sets a thread-local message
 *     (em_last_error) naming the op and the shapes. Nothing aborts or prints.
 *   - Every op given a NULL tensor returns NULL and keeps the first error, so a
 *     whole expression can be checked once at the end.
 *   - Functions returning int return 0 on success, -1 on failure (message set).
 */
#ifndef EMBER_H
#define EMBER_H

#include "ember/core.h"
#include "ember/ops.h"
#include "ember/autodiff.h"
#include "ember/graph.h"
#include "ember/device.h"
#include "ember/train.h"
#include "ember/io.h"
#include "ember/llmc.h"
#include "ember/text.h"
#include "ember/summary.h"
#include "ember/bench.h"
#include "ember/dist.h"

#endif
