#!/usr/bin/env python3
"""haze's UNet on the Cpu beside diffusers' UNet2DModel in PyTorch, on one
machine in one script; prints images per second, ratios and peak memory.

    benchmarks/cpu_vs_diffusers.py NAME=BUILD_DIR [NAME=BUILD_DIR ...]
        [--threads N] [--min-time S] [--rounds R] [--rows fwd,train,opt,ddim]
        [--wait-policy passive|active|default] [--isa native|avx2]

Each NAME=BUILD_DIR is a build of bench_unet_cpu (scripts/bench makes
three: default flags, -march=x86-64-v3 and -march=native). The peers are
diffusers' own UNet2DModel with the same configuration and random weights,
and tests/golden/nn_golden.py's UNet2D (the reference the tests check haze
against), both float32 with N intra-op threads; haze runs with
OMP_NUM_THREADS=N. Rows, for the small and cifar presets:
  fwd    inference forward, batch 16 and 64
  train  forward + backward into zeroed gradients
  opt    forward, MSE loss, backward, AdamW and an EMA of the weights
         (torch.optim.AdamW and torch._foreach ops in PyTorch), batch 16 and 64
  ddim   DDIM, 50 steps, 64 images from noise (diffusers' DDIMPipeline;
         haze's sample::Ddim on the same UNet, what haze-sample runs)
Every measurement is its own process, so its peak resident memory (from
wait4) is its own. Shared machines drift by tens of percent over minutes,
so each row is measured in R rounds, every build and peer back to back;
the table gives medians, and each ratio's lowest and highest round.
Both sides get the same OMP_WAIT_POLICY (passive unless told otherwise):
on a KVM guest, libgomp's default spin-then-sleep made haze's training
step up to 1.4x slower (its spinning vCPU is descheduled by the host and
wakes late) and did not change PyTorch's speed; `default` leaves the
variable unset, as a program run without it sees.
`--isa avx2` makes an AVX-512 machine stand in for an AVX2-only one, on
both sides: haze with HAZE_CPU_ISA=avx2 (a build whose flags name an ISA,
-march=native say, keeps its own), PyTorch with ATEN_CPU_CAPABILITY=avx2,
oneDNN with ONEDNN_MAX_CPU_ISA=AVX2 and OpenBLAS with
OPENBLAS_CORETYPE=Haswell.
diffusers is needed for this script only (scripts/bench installs it).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

PRESETS = {  # mirrors haze::nn::UNetConfig::small() / cifar()
    "small": dict(index=0, in_channels=1, block_out_channels=(32, 64, 64), layers_per_block=2,
                  attention=(False, False, True), attention_head_dim=16, norm_num_groups=8),
    "cifar": dict(index=1, in_channels=3, block_out_channels=(64, 128, 128), layers_per_block=2,
                  attention=(False, True, False), attention_head_dim=32, norm_num_groups=32),
}
BENCH = {"fwd": "BM_UNetForward", "train": "BM_UNetTrainStep", "opt": "BM_UNetOptimizerStep",
         "ddim": "BM_UNetDdim50"}


# ---- the PyTorch side, run as `--worker` in its own process ---------------
def torch_model(peer, p):
    import torch
    if peer == "diffusers":
        from diffusers import UNet2DModel
        return UNet2DModel(
            sample_size=32, in_channels=p["in_channels"], out_channels=p["in_channels"],
            block_out_channels=p["block_out_channels"], layers_per_block=p["layers_per_block"],
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in p["attention"]),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(p["attention"])),
            attention_head_dim=p["attention_head_dim"], norm_num_groups=p["norm_num_groups"], norm_eps=1e-5)
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "golden"))
    import nn_golden
    nn_golden.DTYPE = torch.float32

    class Unconditional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn_golden.UNet2D(
                in_channels=p["in_channels"], out_channels=p["in_channels"],
                block_out_channels=p["block_out_channels"], layers_per_block=p["layers_per_block"],
                down_attn=p["attention"], up_attn=tuple(reversed(p["attention"])),
                attention_head_dim=p["attention_head_dim"], norm_num_groups=p["norm_num_groups"],
                num_class_embeds=1)

        def forward(self, x, t, return_dict=False):
            return (self.net(x, t, torch.zeros(x.shape[0], dtype=torch.long)),)

    return Unconditional()


def worker(peer, row, preset, batch, threads, min_time):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    p = PRESETS[preset]
    model = torch_model(peer, p)
    x = torch.randn(batch, p["in_channels"], 32, 32)
    t = torch.tensor([float((i * 37) % 1000) for i in range(batch)])
    dy = torch.randn_like(x)
    params = [q for q in model.parameters()]
    if row == "fwd":
        def run():
            with torch.no_grad():
                model(x, t, return_dict=False)
    elif row == "train":
        def run():
            model.zero_grad(set_to_none=False)
            (model(x, t, return_dict=False)[0] * dy).sum().backward()
    elif row == "opt":
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        ema = [q.detach().clone() for q in params]
        step = [0]

        def run():
            optimizer.zero_grad(set_to_none=True)
            F.mse_loss(model(x, t, return_dict=False)[0], dy).backward()
            optimizer.step()
            step[0] += 1
            decay = min(0.9999, (1 + step[0]) / (10 + step[0]))
            with torch.no_grad():
                torch._foreach_mul_(ema, decay)
                torch._foreach_add_(ema, params, alpha=1 - decay)
    else:
        from diffusers import DDIMPipeline, DDIMScheduler
        pipe = DDIMPipeline(unet=model, scheduler=DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                                                clip_sample=True))
        pipe.set_progress_bar_config(disable=True)

        def run():
            pipe(batch_size=batch, num_inference_steps=50, output_type="np",
                 generator=torch.Generator().manual_seed(0))
    if row == "ddim":  # one run of about a minute; warm up with one network call
        with torch.no_grad():
            model(x[:1], t[:1], return_dict=False)
        start = time.perf_counter()
        run()
        return batch / (time.perf_counter() - start)
    run()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time or runs < 2:
        run()
        runs += 1
    return batch * runs / (time.perf_counter() - start)


# ---- the driver ------------------------------------------------------------
def measured(cmd, env):
    """Runs cmd; returns its stdout and its peak resident memory in MB."""
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, with its own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"cpu_vs_diffusers: {' '.join(cmd)} failed ({proc.returncode}):\n{err.read()}")
    return out, usage.ru_maxrss / 1024


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        peer, row, preset, batch, threads, min_time = sys.argv[2:8]
        print(json.dumps({"ips": worker(peer, row, preset, int(batch), int(threads), float(min_time))}))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", help="NAME=BUILD_DIR")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", default="fwd,train,opt,ddim")
    parser.add_argument("--wait-policy", choices=("passive", "active", "default"), default="passive",
                        help="OMP_WAIT_POLICY for haze and PyTorch alike")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="avx2: cap haze's and PyTorch's kernels at AVX2 (an AVX2-only CPU on an AVX-512 one)")
    parser.add_argument("--golden", action=argparse.BooleanOptionalAction, default=True,
                        help="also time tests/golden's reference model")
    args = parser.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.pop("OMP_WAIT_POLICY", None)
    if args.wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.wait_policy
    if args.isa == "avx2":
        env.update(HAZE_CPU_ISA="avx2", ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2",
                   DNNL_MAX_CPU_ISA="AVX2", OPENBLAS_CORETYPE="Haswell")
    peers = ["diffusers"] + (["golden"] if args.golden else [])

    import torch
    import diffusers
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    isa = [f for f in ("avx512f", "avx2", "fma", "avx", "sse4_2") if f in flags] or ["(see /proc/cpuinfo)"]
    print(f"CPU: {cpu}, {os.cpu_count()} cores, ISA: {' '.join(isa)}")
    print(f"PyTorch {torch.__version__} (BLAS {os.path.realpath('/usr/lib/x86_64-linux-gnu/libblas.so.3')}, "
          f"mkldnn {torch.backends.mkldnn.is_available()}), diffusers {diffusers.__version__}; "
          f"{args.threads} threads, {args.rounds} rounds, {args.min_time} s each, "
          f"OMP_WAIT_POLICY {env.get('OMP_WAIT_POLICY', 'unset')}"
          + ("; kernels capped at AVX2 on both sides" if args.isa == "avx2" else ""))
    names = [n for n, _ in builds]
    head = " ".join(f"{'haze ' + n:>13s}" for n in names) + " " + " ".join(f"{p:>10s}" for p in peers)
    ratios_head = " ".join(f"{n + '/diffusers':>22s}" for n in names)
    print(f"{'model':6s} {'batch':>5s} {'row':>5s}  img/s: {head}   {ratios_head}   peak MB: "
          + "/".join(names) + " | diffusers")

    rows = [r for r in args.rows.split(",") if r]
    for row in rows:
        for preset, p in PRESETS.items():
            for batch in ((64,) if row == "ddim" else (16, 64)):
                if row == "ddim" and preset == "cifar" and args.min_time < 2:
                    continue  # five minutes a round: only in full runs
                ips = {k: [] for k in names + peers}
                rss = {k: float("nan") for k in names + peers}
                for _ in range(args.rounds):
                    for name, build in builds:
                        binary = os.path.join(build, "benchmarks", "bench_unet_cpu")
                        out, rss[name] = measured(
                            [binary, "--benchmark_format=json", f"--benchmark_min_time={args.min_time}",
                             f"--benchmark_filter=^{BENCH[row]}/{p['index']}/{batch}/"], env)
                        (r,) = json.loads(out)["benchmarks"]
                        ips[name].append(r["img/s"])
                    for peer in peers:
                        if peer == "golden" and row == "ddim":
                            continue
                        out, rss[peer] = measured(
                            [sys.executable, os.path.abspath(__file__), "--worker", peer, row, preset, str(batch),
                             str(args.threads), str(args.min_time)], env)
                        ips[peer].append(json.loads(out)["ips"])
                med = {k: (statistics.median(v) if v else float("nan")) for k, v in ips.items()}
                cells = " ".join(f"{med[n]:13.2f}" for n in names) + " " + " ".join(f"{med[q]:10.2f}" for q in peers)
                ratio_cells = []
                for n in names:
                    per_round = [a / b for a, b in zip(ips[n], ips["diffusers"])]
                    ratio_cells.append(f"{statistics.median(per_round):6.2f} ({min(per_round):.2f}-{max(per_round):.2f})")
                print(f"{preset:6s} {batch:5d} {row:>5s}         {cells}   "
                      + " ".join(f"{c:>22s}" for c in ratio_cells)
                      + "   " + "/".join(f"{rss[n]:.0f}" for n in names) + f" | {rss['diffusers']:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
