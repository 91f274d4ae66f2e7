#!/usr/bin/env python3
"""Times haze's primitives (bench_primitives_*) beside the same operations in
PyTorch, in one script on one machine, and prints the ratios.

    benchmarks/primitives_vs_torch.py BUILD_DIR [--threads N]

PyTorch runs with N intra-op threads (default: all cores), as does haze
(OMP_NUM_THREADS). For a fair GEMM comparison PyTorch must use OpenBLAS, not
Debian's reference BLAS: scripts/bench selects it with update-alternatives.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch


def torch_ms(fn, min_time=0.5):
    fn()  # warm-up
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= 3:
            return 1e3 * elapsed / runs


def torch_cases():
    g = torch.Generator().manual_seed(0)
    def randn(*shape):
        return torch.randn(*shape, generator=g)
    cases = {}
    for m, n, k in [(256, 1024, 288), (512, 512, 512)]:
        a, b, c = randn(m, k), randn(k, n), torch.empty(m, n)
        cases[f"BM_Matmul/{m}/{n}/{k}"] = lambda a=a, b=b, c=c: torch.mm(a, b, out=c)
    x = torch.empty(1 << 22)
    cases["BM_Randn/4194304"] = lambda: x.normal_(generator=g)
    a, b, c = randn(1 << 22), randn(1 << 22), torch.empty(1 << 22)
    cases["BM_Add/4194304"] = lambda: torch.add(a, b, out=c)
    act = randn(16, 128, 32, 32)
    cases["BM_SumPerGroup"] = lambda: act.view(16, 32, -1).sum(dim=2)
    cases["BM_SumPerChannel"] = lambda: act.sum(dim=(0, 2, 3))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    print(f"PyTorch {torch.__version__} (BLAS {blas}), {args.threads} threads; "
          f"haze with OMP_NUM_THREADS={args.threads}")
    if "openblas" not in blas:
        print("warning: PyTorch is on the reference BLAS; its GEMM times mean little (run scripts/bench)")
    cases = torch_cases()
    for binary in ["bench_primitives_cpu", "bench_primitives_device_omp"]:
        path = os.path.join(args.build_dir, "benchmarks", binary)
        if not os.path.exists(path):
            continue
        out = subprocess.run([path, "--benchmark_format=json", "--benchmark_min_time=0.5"],
                             env=env, check=True, capture_output=True, text=True).stdout
        results = json.loads(out)["benchmarks"]
        print(f"\n{binary}")
        print(f"{'benchmark':32s} {'haze ms':>10s} {'torch ms':>10s} {'torch/haze':>11s}")
        for r in results:
            name = r["name"].removesuffix("/real_time")
            haze_ms = r["real_time"] if r["time_unit"] == "ms" else r["real_time"] / 1e6
            fn = cases.get(name)
            t_ms = torch_ms(fn) if fn else float("nan")
            print(f"{name:32s} {haze_ms:10.3f} {t_ms:10.3f} {t_ms / haze_ms:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
