"""Batch-1 latency of fergc and ONNX Runtime, interleaved.

    python latency_pairs.py FERGC MODEL.graph [ROUNDS] [--bf16]     (run with the peers' venv python)

The shared machine's speed drifts by 1.5x within minutes, and batch 1 (a ~1-2 ms run on two
threads) feels it most; two figures taken minutes apart compare the minutes, not the
programs. This alternates them: each round times ONNX Runtime (the peers' model, exported as
bench_peers.py does, 2 intra-op threads, 3 warm-up runs then 200 timed, one at a time) and
then `fergc bench --infer --batch 1` (20 warm-up, 200 timed runs) in a child process, and
prints each round's mean and median per program, then the ratio fergc / ORT of the rounds'
means and medians (below 1: fergc is faster). bench_peers.py reports the mean. With --bf16,
fergc runs its convolutions and dense layers in bf16 (`fergc bench --bf16`: AMX where the CPU
has it; ORT stays f32).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.environ.get("PEERS_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/bench")))


def main():
    args = [a for a in sys.argv[1:] if a != "--bf16"]
    extra = ["--bf16"] if "--bf16" in sys.argv[1:] else []
    fergc, model = args[0], args[1]
    rounds = int(args[2]) if len(args) > 2 else 3
    import onnxruntime as ort
    import torch
    from models import torch_model

    tuned = os.path.basename(model) != "vgg_scratch.graph"
    m = torch_model(tuned).eval()
    path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    torch.onnx.export(m, torch.randn(1, 1, 48, 48), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.random.randn(1, 1, 48, 48).astype(np.float32)

    ort_means, ort_medians, f_means, f_medians = [], [], [], []
    for r in range(rounds):
        for _ in range(3):
            session.run(None, {"x": x})
        times = []
        for _ in range(200):
            t = time.perf_counter()
            session.run(None, {"x": x})
            times.append((time.perf_counter() - t) * 1e3)
        ort_means.append(statistics.mean(times))
        ort_medians.append(statistics.median(times))
        out = subprocess.run([fergc, "bench", model, "--infer", "--batch", "1", "--warmup", "20", "--runs", "200",
                              "--no-sgemm", "--json"] + extra, check=True, capture_output=True, text=True).stdout
        runs = json.loads(out)["runs_ms"]
        f_means.append(statistics.mean(runs))
        f_medians.append(statistics.median(runs))
        print(f"round {r + 1}: onnxrt mean {ort_means[-1]:.3f} ms median {ort_medians[-1]:.3f} ms | "
              f"fergc mean {f_means[-1]:.3f} ms median {f_medians[-1]:.3f} ms", flush=True)
    mean_ratio = statistics.median(f / o for f, o in zip(f_means, ort_means))
    median_ratio = statistics.median(f / o for f, o in zip(f_medians, ort_medians))
    print(f"fergc / onnxrt latency (median over rounds): means {mean_ratio:.2f}x, medians {median_ratio:.2f}x")


if __name__ == "__main__":
    main()
