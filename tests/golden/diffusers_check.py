#!/usr/bin/env python3
"""haze beside diffusers on models too large to keep as test files, both ways.

0. The folders of diffusers_golden.py (each a set of options) on new
   inputs, haze float and double against diffusers float32 and float64.
1. google/ddpm-cifar10-32's architecture (35.7M parameters) with random
   weights, saved by diffusers' save_pretrained: haze-unet-forward (float and
   double) against diffusers' UNet2DModel (float32 as it is; float64 with the
   sinusoid and the softmax in float64, as in diffusers_golden.py), and
   haze-sample --diffusers on the folder.
2. A haze checkpoint exported with haze-export-diffusers: DDPMPipeline
   samples it, and UNet2DModel.from_pretrained(DIR, subfolder="unet") gives
   haze's outputs.

Needs diffusers (python3 -m pip install diffusers==0.27.2 "huggingface_hub<0.26")
and a build of the examples:

    python3 tests/golden/diffusers_check.py --bin build/test/examples [--checkpoint CKPT]

Without --checkpoint a checkpoint is trained for a few steps with
haze-train-fmnist (needs the dataset-fashion-mnist package). Prints one row
per comparison: the largest |haze - diffusers| over the largest |diffusers|;
exits non-zero when a row is above its bound (float32 1e-4, float64 1e-12).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import safetensors.torch
import torch

from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusers_golden  # noqa: E402  (the float64 patches and the baddbmm fix)

DDPM_CIFAR10_32 = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None,
    norm_num_groups=32, norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
    mid_block_scale_factor=1, act_fn="silu", center_input_sample=False, time_embedding_type="positional")

rows = []


def report(what, got, ref, bound):
    ref = np.asarray(ref, dtype=np.float64)
    worst = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-30))
    rows.append((what, worst, bound))
    print("%-64s %.3g  (bound %.0e)%s" % (what, worst, bound, "" if worst <= bound else "  FAILED"), flush=True)


def run(*args):
    print("$", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True)


def haze_forward(bin_dir, folder, work, x, t, labels=None):
    inputs = {"x": x.to(torch.float64).contiguous(), "t": t.to(torch.float64).contiguous()}
    if labels is not None and labels.is_floating_point():  # class_embed_type identity
        inputs["class_vectors"] = labels.to(torch.float64).contiguous()
    elif labels is not None:
        inputs["labels"] = labels.to(torch.int64).contiguous()
    path = os.path.join(work, "in.safetensors")
    safetensors.torch.save_file(inputs, path)
    out = {}
    for precision, flag in (("float", []), ("double", ["--double"])):
        y = os.path.join(work, "y_%s.safetensors" % precision)
        run(os.path.join(bin_dir, "haze-unet-forward"), "--diffusers", folder, "--input", path, "--out", y, *flag)
        out[precision] = safetensors.torch.load_file(y)["y"]
    return out


def diffusers_forward(folder, x, t, labels=None, subfolder=None):
    kw = {"subfolder": subfolder} if subfolder else {}
    m32 = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32, **kw).eval()
    # class vectors in the model's precision; a timestep class embedding's
    # labels as float64 numbers in the float64 run (a long label would go
    # through the Fourier projection's log in float32)
    floating = labels is not None and labels.is_floating_point()
    labels32 = labels.float() if floating else labels
    labels64 = labels
    if labels is not None and (floating or m32.config.class_embed_type == "timestep"):
        labels64 = labels.to(torch.float64)
    with torch.no_grad():
        y32 = m32(x.float(), t.float(), class_labels=labels32).sample
    m64 = m32.to(torch.float64)
    for module in m64.modules():
        if hasattr(module, "upcast_softmax"):
            module.upcast_softmax = False
            module.upcast_attention = False
    saved = diffusers_golden.diffusers_embeddings.get_timestep_embedding
    diffusers_golden.diffusers_embeddings.get_timestep_embedding = diffusers_golden.float64_timestep_embedding
    try:
        with torch.no_grad():
            y64 = m64(x.to(torch.float64), t.to(torch.float64), class_labels=labels64).sample
    finally:
        diffusers_golden.diffusers_embeddings.get_timestep_embedding = saved
    return y32, y64


def check_ddpm_cifar10(bin_dir, work):
    folder = os.path.join(work, "ddpm-cifar10-32")
    torch.manual_seed(0)
    model = UNet2DModel(**DDPM_CIFAR10_32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                  clip_sample=True, variance_type="fixed_small").save_pretrained(folder)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64)
    t = torch.tensor([10.0, 999.0], dtype=torch.float64)
    y32, y64 = diffusers_forward(folder, x, t)
    haze = haze_forward(bin_dir, folder, work, x, t)
    report("ddpm-cifar10-32 architecture, float32 vs diffusers float32", haze["float"], y32, 1e-4)
    report("ddpm-cifar10-32 architecture, float64 vs diffusers float64", haze["double"], y64, 1e-12)
    run(os.path.join(bin_dir, "haze-sample"), "--diffusers", folder, "--n", 2, "--steps", 3, "--out",
        os.path.join(work, "cifar10.png"))


def check_golden_folders(bin_dir, work):
    """The folders of diffusers_golden.py, each covering a set of options."""
    for spec in diffusers_golden.CASES:
        folder = os.path.join(diffusers_golden.OUT_DIR, spec["name"])
        g = torch.Generator().manual_seed(3)
        x = torch.randn(*spec["x"], generator=g, dtype=torch.float64)
        t = torch.tensor(spec["t"], dtype=torch.float64)
        if spec["labels"] == "vectors":
            labels = torch.randn(spec["x"][0], 4 * spec["config"]["block_out_channels"][0], generator=g,
                                 dtype=torch.float64)
        else:
            labels = None if spec["labels"] is None else torch.tensor(spec["labels"])
        y32, y64 = diffusers_forward(folder, x, t, labels)
        haze = haze_forward(bin_dir, folder, work, x, t, labels)
        report("%s, float32 vs diffusers float32" % spec["name"], haze["float"], y32, 1e-4)
        report("%s, float64 vs diffusers float64" % spec["name"], haze["double"], y64, 1e-12)


def check_export(bin_dir, work, checkpoint):
    if checkpoint is None:
        checkpoint = os.path.join(work, "fmnist.safetensors")
        run(os.path.join(bin_dir, "haze-train-fmnist"), "--limit", 64, "--batch", 8, "--warmup", 0, "--steps", 3,
            "--checkpoint", checkpoint, "--log", os.path.join(work, "train.csv"), "--loss-png",
            os.path.join(work, "loss.png"))
    folder = os.path.join(work, "exported")
    run(os.path.join(bin_dir, "haze-export-diffusers"), checkpoint, folder, "--ema")
    # DDPMPipeline passes no labels: a class-conditional model goes out with
    # the null class baked in (the unconditional model guidance trained).
    unconditional = os.path.join(work, "unconditional")
    run(os.path.join(bin_dir, "haze-export-diffusers"), checkpoint, unconditional, "--ema", "--class", "null")
    pipeline = DDPMPipeline.from_pretrained(unconditional)
    images = pipeline(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0),
                      output_type="np").images
    ok = images.shape[0] == 2 and bool(np.isfinite(images).all()) and images.min() >= 0 and images.max() <= 1
    print("DDPMPipeline sampled the export: images %s in [%.3f, %.3f]%s"
          % (images.shape, images.min(), images.max(), "" if ok else "  FAILED"))
    rows.append(("DDPMPipeline samples the export", 0.0 if ok else math.inf, 0.0))
    with open(os.path.join(folder, "unet", "config.json")) as f:
        config = json.load(f)
    g = torch.Generator().manual_seed(2)
    n, c, s = 3, config["in_channels"], config["sample_size"]
    x = torch.randn(n, c, s, s, generator=g, dtype=torch.float64)
    t = torch.tensor([0.0, 321.5, 999.0], dtype=torch.float64)
    labels = torch.tensor([0, 5, config["num_class_embeds"] - 1]) if config.get("num_class_embeds") else None
    y32, y64 = diffusers_forward(folder, x, t, labels, subfolder="unet")
    haze = haze_forward(bin_dir, folder, work, x, t, labels)
    report("exported haze model in diffusers float32 vs haze float", haze["float"], y32, 1e-4)
    report("exported haze model in diffusers float64 vs haze double", haze["double"], y64, 1e-12)
    if labels is not None:
        null = torch.full((n,), config["num_class_embeds"] - 1)
        y32, _ = diffusers_forward(unconditional, x, t, None, subfolder="unet")
        haze = haze_forward(bin_dir, folder, work, x, t, null)
        # the baked bias is one float rounding off the conditional model's sum
        report("null class baked in, diffusers float32 vs haze float with the null label", haze["float"], y32, 1e-4)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the folder of the built examples (build/test/examples)")
    parser.add_argument("--checkpoint", help="a haze-train-fmnist checkpoint to export (default: train one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="haze-diffusers-") as work:
        check_golden_folders(args.bin, work)
        check_ddpm_cifar10(args.bin, work)
        check_export(args.bin, work, args.checkpoint)
    failed = [r for r in rows if r[1] > r[2]]
    print("%d checks, %d failed" % (len(rows), len(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
