#!/usr/bin/env python3
"""Model folders written by diffusers itself, and its outputs on them, for
haze's diffusers loader (tests/io/test_diffusers.cpp).

Each case builds a ``diffusers.UNet2DModel`` with random weights
(``torch.manual_seed``), stores them in the case's dtype, and writes

    tests/golden/diffusers/<case>/config.json                      (save_pretrained)
    tests/golden/diffusers/<case>/diffusion_pytorch_model.safetensors
    tests/golden/diffusers/<case>/scheduler_config.json            (a scheduler's save_pretrained)
    tests/golden/diffusers/<case>/golden.txt                       (nn_golden.py's format)
    tests/golden/diffusers/ddim_steps.txt, ddim_steps/<case>/      (DDIMScheduler step for step)

golden.txt holds the inputs (x, t, labels, dy), the float64 forward
``output.y``, its gradients (``grad.input.x`` in full, ``grad.<param>`` as
summaries) and ``output.y_float32``: the output of the unmodified float32
diffusers model.

The float64 run is diffusers' own modules in float64 with two steps that
diffusers keeps in float32 even then put back in float64: the sinusoid
(``get_timestep_embedding`` computes in float32) and the attention softmax
(``upcast_softmax`` casts the scores to float32). The formulas are the same;
only the precision changes, so haze's double results can be held to ~1e-13.
The weights the float64 run uses are the stored ones (F16 and BF16 values
widened), so both sides start from the same numbers.

Run where diffusers 0.27.2 is installed (it needs no network):

    python3 -m pip install diffusers==0.27.2 "huggingface_hub<0.26"
    python3 tests/golden/diffusers_golden.py
"""

import math
import os
import shutil
import sys

import safetensors.torch  # noqa: F401  (save_pretrained needs the submodule loaded)
import torch

import diffusers
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.models import embeddings as diffusers_embeddings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_golden import Case, rand_input, tensor_line  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusers")
F64 = torch.float64

# The cases: the options each one covers are listed in its description.
CASES = [
    dict(
        name="ddpm_cifar10_narrow",
        description="google/ddpm-cifar10-32's options (flip_sin_to_cos false, freq_shift 1, downsample_padding 0,"
                    " attention_head_dim null, norm_eps 1e-6, attention at level 1, 4 levels) at 1/16 of its width",
        dtype=torch.float32,
        config=dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16, 16, 16),
                    layers_per_block=2,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                    attention_head_dim=None, norm_num_groups=4, norm_eps=1e-6, flip_sin_to_cos=False,
                    freq_shift=1, downsample_padding=0, mid_block_scale_factor=1),
        scheduler=(DDPMScheduler, dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                                       beta_end=0.02, clip_sample=True, variance_type="fixed_small")),
        x=(2, 3, 16, 16), t=[3.0, 917.0], labels=None,
    ),
    dict(
        name="class_conditional_bf16",
        description="bfloat16 weights; num_class_embeds 5, center_input_sample, mid_block_scale_factor sqrt 2,"
                    " attn_norm_num_groups 2, attention_head_dim 4 at levels 0 and 2, 3 levels, a 8x12 input",
        dtype=torch.bfloat16,
        config=dict(sample_size=(8, 12), in_channels=2, out_channels=1, block_out_channels=(8, 16, 16),
                    layers_per_block=1,
                    down_block_types=("AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                    up_block_types=("AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"),
                    attention_head_dim=4, norm_num_groups=4, attn_norm_num_groups=2, norm_eps=1e-5,
                    center_input_sample=True, mid_block_scale_factor=math.sqrt(2), num_class_embeds=5),
        scheduler=(DDIMScheduler, dict(num_train_timesteps=500, beta_schedule="scaled_linear",
                                       beta_start=8.5e-4, beta_end=0.012, prediction_type="v_prediction",
                                       timestep_spacing="trailing", set_alpha_to_one=False, steps_offset=1,
                                       clip_sample=False)),
        x=(3, 2, 8, 12), t=[0.0, 250.5, 499.0], labels=[0, 3, 4],
    ),
    dict(
        name="no_mid_attention_f16",
        description="float16 weights; add_attention false, dropout 0.1 (off in eval), 2 levels, no attention",
        dtype=torch.float16,
        config=dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                    layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, add_attention=False,
                    dropout=0.1),
        scheduler=(DDPMScheduler, dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                       prediction_type="sample")),
        x=(2, 1, 8, 8), t=[1.0, 600.0], labels=None,
    ),
    dict(
        name="scale_shift",
        description="resnet_time_scale_shift scale_shift (so the mid attention has no GroupNorm), attention at"
                    " level 1 with attention_head_dim 4, 2 levels",
        dtype=torch.float32,
        config=dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                    attention_head_dim=4, norm_num_groups=4, resnet_time_scale_shift="scale_shift"),
        scheduler=(DDPMScheduler, dict(num_train_timesteps=1000, beta_schedule="linear")),
        x=(2, 1, 8, 8), t=[5.0, 700.0], labels=None,
    ),
    dict(
        name="fourier_timestep_class",
        description="time_embedding_type fourier (t is sigma, the output is divided by it), class_embed_type timestep"
                    " (num_class_embeds 4 is for haze, which bounds the labels by it; diffusers ignores it), attention"
                    " at level 1, 2 levels; the frequencies stored twice, as time_proj.W and time_proj.weight",
        dtype=torch.float32,
        config=dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                    attention_head_dim=4, norm_num_groups=4, time_embedding_type="fourier",
                    class_embed_type="timestep", num_class_embeds=4),
        scheduler=None,
        x=(2, 1, 8, 8), t=[0.05, 3.5], labels=[1, 3],
    ),
    dict(
        name="identity_class",
        description="class_embed_type identity: the class embedding is the caller's vector per sample, 2 levels",
        dtype=torch.float32,
        config=dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                    attention_head_dim=4, norm_num_groups=4, class_embed_type="identity"),
        scheduler=None,
        x=(2, 1, 8, 8), t=[5.0, 700.0], labels="vectors",
    ),
]


def float64_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos=False, downscale_freq_shift=1, scale=1,
                               max_period=10000):
    """diffusers' get_timestep_embedding, every step in float64."""
    half_dim = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(start=0, end=half_dim, dtype=F64)
    exponent = exponent / (half_dim - downscale_freq_shift)
    emb = timesteps[:, None].to(F64) * torch.exp(exponent)[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    return emb


# diffusers' attention passes torch.empty as baddbmm's input with beta = 0;
# PyTorch 1.13's CPU baddbmm lets a NaN in that uninitialised memory through
# now and then (it should ignore the input), and the output turns NaN. Zeros
# there are what beta = 0 means, so this changes no value.
_baddbmm = torch.baddbmm


def _baddbmm_ignoring_input(input, batch1, batch2, *, beta=1, alpha=1):
    if beta == 0:
        input = torch.zeros_like(input)
    return _baddbmm(input, batch1, batch2, beta=beta, alpha=alpha)


torch.baddbmm = _baddbmm_ignoring_input


def forward(model, x, t, labels):
    return model(x, t, class_labels=labels).sample


def run_case(spec):
    folder = os.path.join(OUT_DIR, spec["name"])
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(len(spec["name"]))
    model = UNet2DModel(**spec["config"]).eval()
    # diffusers' init leaves GroupNorms at (1, 0) and conv_out as any conv:
    # move every parameter a little so that each one shows in the output.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = model.to(spec["dtype"])
    if spec["config"].get("time_embedding_type") == "fourier":
        # save_pretrained refuses the tied time_proj.W / time_proj.weight
        # (safetensors stores no shared tensors): store both as copies.
        os.makedirs(folder)
        model.save_config(folder)
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(state, os.path.join(folder, "diffusion_pytorch_model.safetensors"),
                                    metadata={"format": "pt"})
    else:
        model.save_pretrained(folder, safe_serialization=True)
    if spec["scheduler"] is not None:
        scheduler_class, scheduler_config = spec["scheduler"]
        scheduler_class(**scheduler_config).save_pretrained(folder)

    c = Case(spec["name"], spec["description"] + "\nconfig: " + repr(spec["config"]))
    c.header[0] = "case: diffusers/" + spec["name"]
    c.note("written by tests/golden/diffusers_golden.py with diffusers %s, PyTorch %s"
           % (diffusers.__version__, torch.__version__))
    c.note("weights stored as %s; the float64 run widens the stored values" % str(spec["dtype"]))

    x = rand_input(spec["x"], 4101)
    t = torch.tensor(spec["t"], dtype=F64)
    c.add("input.x", x)
    c.add("input.t", t)
    # labels: class ids (long, as diffusers' callers pass them), or for the
    # identity class embedding the class vectors themselves
    if spec["labels"] == "vectors":
        vectors = rand_input((spec["x"][0], 4 * spec["config"]["block_out_channels"][0]), 4103)
        c.add("input.class_vectors", vectors)
        labels32, labels64 = vectors.float(), vectors
    elif spec["labels"] is not None:
        labels = torch.tensor(spec["labels"], dtype=torch.long)
        c.add("input.labels", labels.to(F64))
        # a timestep class embedding takes the label as a number: in float64
        # for the float64 run (a long label would go through the Fourier
        # projection's log in float32)
        timestep_class = spec["config"].get("class_embed_type") == "timestep"
        labels32, labels64 = labels, labels.to(F64) if timestep_class else labels
    else:
        labels32 = labels64 = None

    # float32: diffusers as it is.
    m32 = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        y32 = forward(m32, x.float(), t.float(), labels32)
    assert not torch.isnan(y32).any()
    c.add("output.y_float32", y32)

    # float64: the same modules, the sinusoid and the softmax in float64 too.
    m64 = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).to(F64).eval()
    for module in m64.modules():
        if hasattr(module, "upcast_softmax"):
            module.upcast_softmax = False
            module.upcast_attention = False
    saved = diffusers_embeddings.get_timestep_embedding
    diffusers_embeddings.get_timestep_embedding = float64_timestep_embedding
    try:
        x64 = x.clone().requires_grad_(True)
        y = forward(m64, x64, t, labels64)
        dy = rand_input(tuple(y.shape), 4102)
        (y * dy).sum().backward()
    finally:
        diffusers_embeddings.get_timestep_embedding = saved
    c.add("input.dy", dy)
    c.add("output.y", y)
    c.add("grad.input.x", x64.grad)
    for pname, p in m64.named_parameters():
        if p.requires_grad:  # not the Fourier frequencies
            c.add("grad." + pname, p.grad, force_summary=True)
    c.note("parameter_tensors %d" % len(list(m64.parameters())))

    path = os.path.join(folder, "golden.txt")
    with open(path, "w") as f:
        for h in c.header:
            f.write("# " + h + "\n")
        f.write("# format: as tests/golden/nn_golden.py; backward: loss = sum(output.y * input.dy)\n")
        for line in c.lines:
            f.write(line + "\n")
    return folder


# DDIMScheduler step for step, in float64 (its betas and alpha_bar put back
# in float64, as haze computes them): each case's timesteps and final sample
# from x_T under a fixed elementwise "model", out = 0.5 x cos(t / 1000) + 0.1.
DDIM_CASES = [
    dict(name="leading_offset_clip", steps=10, use_clipped_model_output=False,
         config=dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                     timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False, clip_sample=True,
                     prediction_type="epsilon")),
    dict(name="trailing_v", steps=7, use_clipped_model_output=False,
         config=dict(num_train_timesteps=500, beta_schedule="scaled_linear", beta_start=8.5e-4, beta_end=0.012,
                     timestep_spacing="trailing", steps_offset=1, set_alpha_to_one=False, clip_sample=False,
                     prediction_type="v_prediction")),
    dict(name="linspace_clipped_output", steps=10, use_clipped_model_output=True,
         config=dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                     timestep_spacing="linspace", clip_sample=True, prediction_type="epsilon")),
]


def ddim_model(x, t):
    return 0.5 * x * math.cos(t / 1000) + 0.1


def run_ddim_cases():
    lines = ["# case: diffusers/ddim_steps",
             "# DDIMScheduler (diffusers %s) in float64, eta 0, from input.x_T; out = 0.5 x cos(t / 1000) + 0.1"
             % diffusers.__version__,
             "# per case: <case>.timesteps, <case>.x0 (the final sample); its config: ddim_steps/<case>/"]
    x_t = rand_input((2, 3, 4, 4), 4201)
    lines.append(tensor_line("input.x_T", x_t))
    for case in DDIM_CASES:
        sched = DDIMScheduler(**case["config"])
        sched.save_pretrained(os.path.join(OUT_DIR, "ddim_steps", case["name"]))
        n = case["config"]["num_train_timesteps"]
        if case["config"]["beta_schedule"] == "linear":
            betas = torch.linspace(case["config"]["beta_start"], case["config"]["beta_end"], n, dtype=F64)
        else:
            betas = torch.linspace(case["config"]["beta_start"] ** 0.5, case["config"]["beta_end"] ** 0.5, n,
                                   dtype=F64) ** 2
        sched.betas = betas
        sched.alphas = 1.0 - betas
        sched.alphas_cumprod = torch.cumprod(sched.alphas, dim=0)
        one = case["config"].get("set_alpha_to_one", True)
        sched.final_alpha_cumprod = torch.tensor(1.0, dtype=F64) if one else sched.alphas_cumprod[0]
        sched.set_timesteps(case["steps"])
        x = x_t.clone()
        for t in sched.timesteps:
            out = ddim_model(x, int(t))
            x = sched.step(out, int(t), x, eta=0.0,
                           use_clipped_model_output=case["use_clipped_model_output"]).prev_sample
        lines.append(tensor_line(case["name"] + ".timesteps", sched.timesteps.to(F64)))
        lines.append(tensor_line(case["name"] + ".x0", x))
    path = os.path.join(OUT_DIR, "ddim_steps.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main():
    print("%8d  %s" % (os.path.getsize(run_ddim_cases()), "tests/golden/diffusers/ddim_steps.txt"))
    for spec in CASES:
        folder = run_case(spec)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print("%8d  %s" % (size, os.path.relpath(folder)))


if __name__ == "__main__":
    main()
