#!/usr/bin/env python3
"""haze's UNet on a GPU beside the same UNet in PyTorch eager, same card.

    benchmarks/gpu_vs_torch.py GPU_UNET [--rounds R] [--seconds S] [--tf32] [--out DIR]

GPU_UNET is benchmarks/gpu_unet.cpp built by nvcc (scripts/gpu-check builds
it). The peer is tests/golden/nn_golden.py's UNet2D, the reference haze's
tests check against (diffusers' UNet2DModel layer for layer), with the
cifar preset in float32; its sinusoidal embedding is computed on the GPU
here (the reference computes it on the host, in float64, for goldens).
Rows, as issue 13 asks:
  train  b64, b256  a training step: data already on the card, noise,
                    forward, MSE, backward, clip_grad_norm_, AdamW
                    (torch.optim.AdamW, foreach) and an EMA (torch._foreach
                    ops); haze: Trainer::step, which also uploads the batch
  ddim   b1         DDIM, 50 steps from noise: latency of one run
  ddim   b256       the same, images per second
Peak memory: torch.cuda.max_memory_allocated beside haze's
memory_stats<Device>().peak_bytes (both count tensors, not the cache).
TF32 is off on both sides (PyTorch's default allows it for convolutions)
unless --tf32, which turns it on for both. Every measurement is its own
process; the rounds alternate haze and PyTorch; the table gives medians.
Writes summary.md (and the raw JSON lines) under --out.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CIFAR = dict(in_channels=3, block_out_channels=(64, 128, 128), layers_per_block=2,
             attention=(False, True, False), attention_head_dim=32, norm_num_groups=32)
ROWS = [("train", 64), ("train", 256), ("ddim", 1), ("ddim", 256)]


# ---- the PyTorch side, run as `--worker` in its own process ---------------
def torch_model(torch, device):
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "golden"))
    import nn_golden
    nn_golden.DTYPE = torch.float32

    def sinusoid(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0.0, scale=1.0, max_period=10000):
        half = dim // 2
        k = torch.arange(half, device=t.device, dtype=torch.float32)
        freqs = torch.exp(-math.log(max_period) * k / (half - downscale_freq_shift))
        args = scale * t.float()[:, None] * freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)] if flip_sin_to_cos else
                         [torch.sin(args), torch.cos(args)], dim=1)

    nn_golden.timestep_sinusoidal = sinusoid
    p = CIFAR
    net = nn_golden.UNet2D(
        in_channels=p["in_channels"], out_channels=p["in_channels"], block_out_channels=p["block_out_channels"],
        layers_per_block=p["layers_per_block"], down_attn=p["attention"], up_attn=tuple(reversed(p["attention"])),
        attention_head_dim=p["attention_head_dim"], norm_num_groups=p["norm_num_groups"], num_class_embeds=1)
    return net.to(device=device, dtype=torch.float32)


def linear_alpha_bar(torch, device):
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64, device=device)
    return torch.cumprod(1 - betas, 0)


def worker(row, batch, seconds, tf32):
    import time
    import torch
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    # (GPU_VS_TORCH_DEVICE=cpu runs the same code on the host: a smoke test.)
    device = torch.device(os.environ.get("GPU_VS_TORCH_DEVICE", "cuda"))
    torch.manual_seed(0)
    model = torch_model(torch, device)
    c = CIFAR["in_channels"]
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    ab = linear_alpha_bar(torch, device)
    if row == "train":
        params = list(model.parameters())
        optimizer = torch.optim.AdamW(params, lr=1e-4, foreach=True)
        ema = [q.detach().clone() for q in params]
        data = torch.rand(2 * batch, c, 32, 32, device=device) * 2 - 1
        count = [0]

        def step():
            x0 = data[torch.randint(0, data.shape[0], (batch,), device=device)]
            t = torch.randint(0, 1000, (batch,), device=device)
            eps = torch.randn_like(x0)
            a = ab[t].float()[:, None, None, None]
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x_t, t.float(), labels), eps)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            count[0] += 1
            decay = min(0.9999, (1 + count[0]) / (10 + count[0]))
            with torch.no_grad():
                torch._foreach_mul_(ema, decay)
                torch._foreach_add_(ema, params, alpha=1 - decay)
            return loss.item()  # the loss read once per step, as haze does

        step(), step()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or steps < 3:
            step()
            steps += 1
        elapsed = time.perf_counter() - start
        result = {"row": row, "batch": batch, "ips": steps * batch / elapsed}
    else:
        ts = list(range(0, 1000, 20))[::-1]  # 50 steps, leading spacing, as haze's default

        @torch.no_grad()
        def run():
            g = torch.Generator(device=device).manual_seed(4)
            x = torch.randn(batch, c, 32, 32, device=device, generator=g)
            for i, t in enumerate(ts):
                a = ab[t].item()
                a_prev = ab[ts[i + 1]].item() if i + 1 < len(ts) else 1.0
                out = model(x, torch.full((batch,), float(t), device=device), labels)
                x0 = ((x - math.sqrt(1 - a) * out) / math.sqrt(a)).clamp(-1, 1)
                eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
                x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
            return x[0, 0, 0, 0].item()

        run()
        runs = 3 if batch == 1 else 1
        start = time.perf_counter()
        for _ in range(runs):
            run()
        per_run = (time.perf_counter() - start) / runs
        result = {"row": row, "batch": batch, "ms": per_run * 1e3, "ips": batch / per_run}
    result["peak_mb"] = torch.cuda.max_memory_allocated() / 1e6 if device.type == "cuda" else float("nan")
    return result


# ---- the driver ------------------------------------------------------------
def run_json(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"gpu_vs_torch: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        row, batch, seconds, tf32 = sys.argv[2:6]
        print(json.dumps(worker(row, int(batch), float(seconds), tf32 == "1")))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gpu_unet", help="the nvcc build of benchmarks/gpu_unet.cpp")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="per training measurement")
    parser.add_argument("--tf32", action="store_true", help="TF32 on for both sides")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, HAZE_TF32="1" if args.tf32 else "0")
    import torch
    card = torch.cuda.get_device_name(0)
    lines = [f"# haze vs PyTorch eager, {card}", "",
             f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
             f"cifar preset, float32, TF32 {'on' if args.tf32 else 'off'} on both sides; "
             f"{args.rounds} rounds alternating, medians", "",
             "| row | batch | haze | PyTorch | haze / PyTorch | peak MB haze | peak MB PyTorch |",
             "|---|---|---|---|---|---|---|"]
    raw = open(os.path.join(args.out, "gpu-vs-torch.jsonl"), "w")
    for row, batch in ROWS:
        results = {"haze": [], "torch": []}
        for _ in range(args.rounds):
            haze_cmd = [args.gpu_unet, row, str(batch)] + ([str(args.seconds)] if row == "train" else [])
            results["haze"].append(run_json(haze_cmd, env))
            results["torch"].append(run_json([sys.executable, os.path.abspath(__file__), "--worker", row, str(batch),
                                              str(args.seconds), "1" if args.tf32 else "0"], env))
            for side in results:
                raw.write(json.dumps(dict(results[side][-1], side=side)) + "\n")
        # Latency for ddim at batch 1 (lower is better), images per second elsewhere.
        key = "ms" if (row, batch) == ("ddim", 1) else "ips"
        med = {s: statistics.median(r[key] for r in v) for s, v in results.items()}
        peak = {s: max(r["peak_mb"] for r in v) for s, v in results.items()}
        unit = "ms" if key == "ms" else "img/s"
        lines.append(f"| {row} | {batch} | {med['haze']:.2f} {unit} | {med['torch']:.2f} {unit} | "
                     f"{med['haze'] / med['torch']:.2f} | {peak['haze']:.0f} | {peak['torch']:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", "Targets (issue 13): train haze/PyTorch >= 1.0; ddim b1 latency haze/PyTorch <= 0.5; "
              "peak memory haze <= PyTorch."]
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
