"""The step benchmarks beside today's peers, in the same run (`make bench-peers`).

  python3 bench/peers/run.py [--threads 1 2] [--rounds 5] [--models mlp cnn]

For each model and thread count, ROUNDS rounds, each running Ember (eager and graph: bench/steps
and bench/cnn) and every peer (bench/peers/step.py: PyTorch eager, TensorFlow's tf.compat.v1
Session with oneDNN, JAX jit) one after another, the order rotated every round. Every process is
pinned to THREADS cores with taskset and told THREADS. The table gives the medians, each step's
fraction of the FMA peak that ember-bench measures for those threads, and Ember's ratios against
the best peer; a missing peer shows n/a, and then no ratio against "the best peer" is claimed.

The peers' Python: $EMBER_BENCH_PYTHON, else bench/.venv/bin/python (made by `make bench-peers`).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("EMBER_BUILD", os.path.join(ROOT, "build"))
PEERS = ["torch", "tf", "jax"]
NAMES = {"torch": "PyTorch eager", "tf": "TF v1 Session", "jax": "JAX jit"}
# floating-point operations of one step (forward, backward, Adam), counted from the shapes
FLOPS = {"mlp": 3 * 2 * 100 * (784 * 500 + 500 * 10), "cnn": 8.3e9}


def pinned(threads):
    return ["taskset", "-c", f"0-{threads - 1}"]


def ember(model, threads):
    env = dict(os.environ, EMBER_BENCH_NO_TORCH="1", EMBER_BENCH_MLP_ONLY="1", OMP_NUM_THREADS=str(threads))
    prog = os.path.join(BUILD, "bench", "steps" if model == "mlp" else "cnn")
    out = subprocess.run(pinned(threads) + [prog, str(threads)], env=env, capture_output=True, text=True,
                         cwd=ROOT).stdout
    if model == "mlp":
        m = re.search(r"ember mlp eager_ms ([\d.]+) graph_ms ([\d.]+)", out)
    else:
        m = re.search(rf"^{threads}\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if not m:
        sys.exit(f"bench-peers: {prog} printed no step times:\n{out}")
    return float(m.group(1)), float(m.group(2))


def peer(python, framework, model, threads):
    out = subprocess.run(pinned(threads) + [python, os.path.join(ROOT, "bench", "peers", "step.py"), framework, model,
                                            str(threads)], capture_output=True, text=True, cwd=ROOT)
    line = (out.stdout.strip().splitlines() or [""])[-1].split()
    if len(line) == 4 and line[2] == "step_ms":
        return line[1], float(line[3])
    why = line[2] if len(line) >= 3 else (out.stderr.strip().splitlines() or ["no output"])[-1]
    return f"n/a ({why})", None


def peak_gflops(threads):
    out = subprocess.run(pinned(threads) + [os.path.join(BUILD, "ember-bench"), "add", "1", "--threads",
                                            str(threads), "--time", "0.05"], capture_output=True, text=True).stdout
    m = re.search(r"peak ([\d.]+) GFLOP/s", out)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    args = ap.parse_args()
    python = os.environ.get("EMBER_BENCH_PYTHON") or os.path.join(ROOT, "bench", ".venv", "bin", "python")
    if not os.path.exists(python):
        sys.exit(f"bench-peers: no peers' Python at {python}: run `make bench-peers`, or set EMBER_BENCH_PYTHON")
    versions = {}
    rows = []
    for model in args.models:
        for threads in args.threads:
            times = {k: [] for k in ["eager", "graph"] + PEERS}
            sides = ["ember"] + PEERS
            for r in range(args.rounds):
                for side in sides[r % len(sides):] + sides[:r % len(sides)]:
                    if side == "ember":
                        e, g = ember(model, threads)
                        times["eager"].append(e)
                        times["graph"].append(g)
                    else:
                        versions[side], ms = peer(python, side, model, threads)
                        if ms is not None:
                            times[side].append(ms)
                print(f"  {model} {threads} thread(s): round {r + 1}/{args.rounds} done", file=sys.stderr)
            med = {k: statistics.median(v) if v else None for k, v in times.items()}
            rows.append((model, threads, med, peak_gflops(threads)))
    print(f"Training steps, batch 100, medians of {args.rounds} alternating rounds (ms per step); "
          "in brackets: the fraction of ember-bench's FMA peak")
    head = f"{'step':<5} {'thr':>3} {'ember eager':>17} {'ember graph':>17}" + "".join(
        f" {NAMES[p]:>17}" for p in PEERS) + f" {'eager/best':>10} {'graph/best':>10} {'graph/eager':>11}"
    print(head)

    def cell(ms, model, peak):
        if ms is None:
            return f"{'n/a':>17}"
        pct = f" ({100 * FLOPS[model] / (ms * 1e-3) / (peak * 1e9):.0f}%)" if peak else ""
        return f"{ms:>11.3f}{pct:>6}"
    for model, threads, med, peak in rows:
        present = [med[p] for p in PEERS if med[p] is not None]
        best = min(present) if len(present) == len(PEERS) else None  # a ratio only with every peer present
        ratio = (lambda x: f"{x / best:>10.3f}") if best else (lambda x: f"{'n/a':>10}")
        print(f"{model:<5} {threads:>3} {cell(med['eager'], model, peak)} {cell(med['graph'], model, peak)}" +
              "".join(f" {cell(med[p], model, peak)}" for p in PEERS) +
              f" {ratio(med['eager'])} {ratio(med['graph'])} {med['graph'] / med['eager']:>11.3f}")
    print("peers: " + ", ".join(f"{NAMES[p]} {versions.get(p, 'n/a')}" for p in PEERS) + f"; via {python}")


if __name__ == "__main__":
    main()
