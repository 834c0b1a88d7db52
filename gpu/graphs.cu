// CUDA-graph capture: em_graph_run captures one run of a plan whose nodes
// are all on one GPU (global capture mode: a call elsewhere in the process
// that would break the capture, such as a cudaMalloc or a synchronization,
// fails instead of corrupting it) and replays it with one cudaGraphLaunch. A
// capture that fails returns NULL without leaving an error, and the plan
// runs kernel by kernel.
#include "common.cuh"

#include <new>

struct em_gpu_graph {
    cudaGraphExec_t exec;
};

int em_gpu_capture_begin(int ordinal) {
    if (em_gpu_bad_ordinal("capture", ordinal)) return -1;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    if (e != cudaSuccess) return em_gpu_fail("capture", "starting a CUDA graph capture", e);
    em_gpu_set_capturing(ordinal, true);
    return 0;
}

em_gpu_graph *em_gpu_capture_end(int ordinal) {
    if (ordinal < 0 || ordinal >= EM_GPU_MAX) return nullptr;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return nullptr;
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(s, &graph);
    em_gpu_set_capturing(ordinal, false);
    cudaGraphExec_t exec = nullptr;
    if (e == cudaSuccess && graph) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph); // the executable graph keeps what it needs
    em_gpu_graph *g = nullptr;
    if (e == cudaSuccess && exec && !(g = new (std::nothrow) em_gpu_graph{exec})) cudaGraphExecDestroy(exec);
    cudaGetLastError(); // a failed capture leaves no error behind: the run is replayed eagerly
    return g;
}

int em_gpu_graph_launch(em_gpu_graph *g, int ordinal) {
    if (em_gpu_bad_ordinal("graph_run", ordinal)) return -1;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    cudaError_t e = cudaGraphLaunch(g->exec, s);
    if (e != cudaSuccess) return em_gpu_fail("graph_run", "launching the captured CUDA graph", e);
    return em_gpu_launched(ordinal, "cuda_graph");
}

void em_gpu_graph_free(em_gpu_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    delete g;
}
