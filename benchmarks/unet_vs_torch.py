#!/usr/bin/env python3
"""The UNet presets in haze (bench_unet_cpu) beside the same model in
PyTorch, measured in one script on one machine; prints images per second
and the ratio.

    benchmarks/unet_vs_torch.py BUILD_DIR [--threads N] [--min-time S] [--rounds R]

Shared machines drift by tens of percent over minutes, so each row is
measured in R rounds of haze then PyTorch back to back; the table gives the
median of each and the median, lowest and highest of the per-round ratios.

The PyTorch model is tests/golden/nn_golden.py's UNet2D (diffusers'
UNet2DModel semantics, checked against diffusers there), in float32,
unconditional, with N intra-op threads; haze runs with OMP_NUM_THREADS=N.
A training step is forward + backward into zeroed gradients, no optimizer.
For PyTorch at its best, scripts/bench selects OpenBLAS (oneDNN does the
convolutions either way).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "golden"))
import nn_golden  # noqa: E402

nn_golden.DTYPE = torch.float32  # the reference builds its sinusoid in DTYPE; benchmark in float32

PRESETS = {  # mirrors haze::nn::UNetConfig::small() / cifar()
    0: dict(name="small", in_channels=1, block_out_channels=(32, 64, 64), layers_per_block=2,
            attention=(False, False, True), attention_head_dim=16, norm_num_groups=8),
    1: dict(name="cifar", in_channels=3, block_out_channels=(64, 128, 128), layers_per_block=2,
            attention=(False, True, False), attention_head_dim=32, norm_num_groups=32),
}


class Unconditional(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.net = nn_golden.UNet2D(
            in_channels=p["in_channels"], out_channels=p["in_channels"],
            block_out_channels=p["block_out_channels"], layers_per_block=p["layers_per_block"],
            down_attn=p["attention"], up_attn=tuple(reversed(p["attention"])),
            attention_head_dim=p["attention_head_dim"], norm_num_groups=p["norm_num_groups"],
            num_class_embeds=1)

    def forward(self, x, t):
        return self.net(x, t, torch.zeros(x.shape[0], dtype=torch.long))


def images_per_second(fn, batch, min_time):
    fn()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time or runs < 2:
        fn()
        runs += 1
    return batch * runs / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)

    binary = os.path.join(args.build_dir, "benchmarks", "bench_unet_cpu")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    def haze_run(kind, preset, batch):
        out = subprocess.run([binary, "--benchmark_format=json", f"--benchmark_min_time={args.min_time}",
                              f"--benchmark_filter=^{kind}/{preset}/{batch}/"],
                             env=env, check=True, capture_output=True, text=True).stdout
        (r,) = json.loads(out)["benchmarks"]
        return r

    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    print(f"PyTorch {torch.__version__} (BLAS {blas}, mkldnn {torch.backends.mkldnn.is_available()}), "
          f"{args.threads} threads, {args.rounds} rounds of {args.min_time} s each")
    print(f"{'model':8s} {'batch':>5s} {'pass':>6s} {'haze img/s':>11s} {'torch img/s':>12s} {'haze/torch':>11s}"
          f" {'(lowest, highest)':>18s} {'haze fresh allocs/step':>23s}")
    for preset, p in PRESETS.items():
        for batch in (16, 64):
            torch.manual_seed(0)
            model = Unconditional(p)
            x = torch.randn(batch, p["in_channels"], 32, 32)
            t = torch.tensor([float((i * 37) % 1000) for i in range(batch)])
            dy = torch.randn_like(x)

            def forward():
                with torch.no_grad():
                    model(x, t)

            def train():
                model.zero_grad(set_to_none=False)
                (model(x, t) * dy).sum().backward()

            for kind, fn, label in (("BM_UNetForward", forward, "fwd"), ("BM_UNetTrainStep", train, "train")):
                haze_ips, torch_ips, ratios, allocs = [], [], [], float("nan")
                for _ in range(args.rounds):
                    r = haze_run(kind, preset, batch)
                    haze_ips.append(r["img/s"])
                    allocs = r.get("fresh allocs/step", allocs)
                    torch_ips.append(images_per_second(fn, batch, args.min_time))
                    ratios.append(haze_ips[-1] / torch_ips[-1])
                spread = f"({min(ratios):.2f}, {max(ratios):.2f})"
                print(f"{p['name']:8s} {batch:5d} {label:>6s} {statistics.median(haze_ips):11.1f} "
                      f"{statistics.median(torch_ips):12.1f} {statistics.median(ratios):11.2f} {spread:>18s} "
                      f"{allocs:23.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
