#!/usr/bin/env python3
"""Independent float64 PyTorch reference for the layers of diffusers' UNet2DModel.

Every module below is written out in plain PyTorch (no diffusers import) with
the same structure, forward semantics and state_dict names as diffusers'
``UNet2DModel`` and its building blocks (ResnetBlock2D, Attention with the
deprecated-attn-block layout, Downsample2D, Upsample2D, TimestepEmbedding,
the sinusoidal ``get_timestep_embedding``).

Parameters are not drawn from torch's RNG but filled by a formula
(``deterministic_init``) that C++ reproduces bit for bit:

    name_hash = FNV-1a 64 over the UTF-8 bytes of the full state_dict name
    z_k       = splitmix64(name_hash ^ (k * 0x9E3779B97F4A7C15 mod 2^64))
    u_k       = (z_k >> 11) * 2^-53          in [0, 1)
    r_k       = 2 u_k - 1                    in [-1, 1)
    Linear / Conv2d weight : r * sqrt(3.0 / fan_in), fan_in = numel / shape[0]
    Linear / Conv2d bias   : 0.1 * r
    GroupNorm weight       : 1.0 + (0.1 * r)
    GroupNorm bias         : 0.1 * r
    Embedding weight       : r

(each right-hand side evaluated in IEEE double, one rounding per operation, in
the order written; sqrt(3.0 / fan_in) is computed once per tensor).

Inputs come from ``torch.Generator().manual_seed(seed)`` and are written to the
golden files, so the C++ side only reads them.  Everything is computed in
float64.  Backward uses loss = sum(output * dy) with dy written as input.dy.

Running this file writes tests/golden/nn/<case>.txt:

    /usr/bin/python3 tests/golden/nn_golden.py

File format: '#' header lines, then one tensor per line, either
    full <name> <rank> <d0> .. <d_{rank-1}> <v0> <v1> ...        (%.17g, row-major)
or, for tensors with more than 4096 elements,
    summary <name> <rank> <dims...> <sum> <sum_abs> <s0> .. <s15>
where s_j is the flat element at index (j * 7919) mod numel, and sum / sum_abs
are correctly rounded (math.fsum) sums of the elements / their magnitudes.

Requires only PyTorch (Debian's python3-torch 1.13 is enough).
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.float64
FULL_LIMIT = 4096
SUMMARY_SAMPLES = 16
SUMMARY_STRIDE = 7919

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn")


# ---------------------------------------------------------------------------
# deterministic parameter values
# ---------------------------------------------------------------------------

MASK64 = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def fnv1a64(name):
    h = FNV_OFFSET
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def _splitmix64_np(x):
    """splitmix64 finaliser on a numpy uint64 array (wraps mod 2^64)."""
    z = x + np.uint64(GOLDEN_GAMMA)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_pm1(name, numel):
    """r_k = 2 u_k - 1 for k = 0 .. numel-1, as a float64 numpy array."""
    h = np.uint64(fnv1a64(name))
    k = np.arange(numel, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _splitmix64_np(h ^ (k * np.uint64(GOLDEN_GAMMA)))
    u = (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
    return 2.0 * u - 1.0


def _uniform_pm1_scalar(name, k):
    """Pure-integer version of one element, used to cross-check the numpy path."""
    x = fnv1a64(name) ^ ((k * GOLDEN_GAMMA) & MASK64)
    z = (x + GOLDEN_GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z = z ^ (z >> 31)
    return 2.0 * ((z >> 11) * 2.0 ** -53) - 1.0


def param_values(kind, pname, full_name, shape):
    numel = int(np.prod(shape)) if len(shape) else 1
    r = uniform_pm1(full_name, numel)
    if kind in ("linear", "conv") and pname == "weight":
        fan_in = numel // shape[0]
        v = r * math.sqrt(3.0 / fan_in)
    elif kind in ("linear", "conv") and pname == "bias":
        v = 0.1 * r
    elif kind == "group_norm" and pname == "weight":
        v = 1.0 + (0.1 * r)
    elif kind == "group_norm" and pname == "bias":
        v = 0.1 * r
    elif kind == "embedding" and pname == "weight":
        v = r
    else:
        raise ValueError("no init rule for %s (%s)" % (full_name, kind))
    return v.reshape(shape)


def _module_kind(m):
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, nn.Conv2d):
        return "conv"
    if isinstance(m, nn.GroupNorm):
        return "group_norm"
    if isinstance(m, nn.Embedding):
        return "embedding"
    return type(m).__name__


def deterministic_init(module, prefix=""):
    """Fill every parameter of ``module`` by the hash formula of its full name.

    ``prefix`` is prepended (with a '.') to the names reported by
    named_parameters, for modules that live inside a bigger model.
    """
    owner = {}
    for mname, m in module.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            owner[id(p)] = (m, pname)
    with torch.no_grad():
        for name, p in module.named_parameters():
            full = prefix + "." + name if prefix else name
            m, pname = owner[id(p)]
            v = param_values(_module_kind(m), pname, full, tuple(p.shape))
            p.copy_(torch.from_numpy(np.ascontiguousarray(v)).to(p.dtype))


# ---------------------------------------------------------------------------
# modules (diffusers semantics and state_dict names)
# ---------------------------------------------------------------------------

def timestep_sinusoidal(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0.0,
                        scale=1.0, max_period=10000):
    """diffusers get_timestep_embedding, in float64.

    exp/sin/cos go through the C library (Python's math module) element by
    element, so the values are what a C++ std::exp/std::sin/std::cos gives.
    """
    half = dim // 2
    freqs = [math.exp((-math.log(max_period) * k) / (half - downscale_freq_shift))
             for k in range(half)]
    rows = []
    for tv in t.tolist():
        args = [scale * (float(tv) * f) for f in freqs]
        s = [math.sin(a) for a in args]
        c = [math.cos(a) for a in args]
        row = c + s if flip_sin_to_cos else s + c
        if dim % 2 == 1:
            row.append(0.0)
        rows.append(row)
    return torch.tensor(rows, dtype=DTYPE)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class Attention(nn.Module):
    """Spatial self-attention of AttnDownBlock2D / UNetMidBlock2D / AttnUpBlock2D."""

    def __init__(self, channels, dim_head, norm_groups, eps=1e-5):
        super().__init__()
        self.heads = channels // dim_head
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.group_norm = nn.GroupNorm(norm_groups, channels, eps=eps, affine=True)
        self.to_q = nn.Linear(channels, channels, bias=True)
        self.to_k = nn.Linear(channels, channels, bias=True)
        self.to_v = nn.Linear(channels, channels, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels, bias=True)])

    def forward(self, x):
        residual = x
        n, c, hgt, wid = x.shape
        h = self.group_norm(x)
        h = h.view(n, c, hgt * wid).transpose(1, 2)           # [N, HW, C]
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)

        def split(t):
            return t.view(n, hgt * wid, self.heads, self.dim_head).transpose(1, 2)

        q, k, v = split(q), split(k), split(v)                 # [N, heads, HW, d]
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        probs = torch.softmax(scores, dim=-1)
        o = torch.matmul(probs, v)                              # [N, heads, HW, d]
        o = o.transpose(1, 2).reshape(n, hgt * wid, c)
        o = self.to_out[0](o)
        o = o.transpose(1, 2).reshape(n, c, hgt, wid)
        return o + residual                                     # rescale_output_factor 1


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, groups, eps=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        if in_channels != out_channels:
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=1, padding=0)
        else:
            self.conv_shortcut = None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        sc = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return sc + h                                           # output_scale_factor 1


class Downsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=1, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """DownBlock2D (attn_dim_head None) or AttnDownBlock2D."""

    def __init__(self, in_ch, out_ch, temb_ch, groups, eps, layers, attn_dim_head, add_downsample):
        super().__init__()
        # diffusers registers attentions before resnets (state_dict order)
        if attn_dim_head is not None:
            self.attentions = nn.ModuleList(
                [Attention(out_ch, attn_dim_head, groups, eps) for _ in range(layers)])
        else:
            self.attentions = None
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch, temb_ch, groups, eps)
             for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch)]) if add_downsample else None

    def forward(self, h, temb):
        skips = []
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips.append(h)
        return h, skips


class MidBlock(nn.Module):
    def __init__(self, ch, temb_ch, groups, eps, attn_dim_head):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(ch, attn_dim_head, groups, eps)])
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb_ch, groups, eps),
                                      ResnetBlock2D(ch, ch, temb_ch, groups, eps)])

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        h = self.attentions[0](h)
        return self.resnets[1](h, temb)


class UpBlock(nn.Module):
    """UpBlock2D (attn_dim_head None) or AttnUpBlock2D."""

    def __init__(self, in_ch, prev_out_ch, out_ch, temb_ch, groups, eps, layers,
                 attn_dim_head, add_upsample):
        super().__init__()
        if attn_dim_head is not None:
            self.attentions = nn.ModuleList(
                [Attention(out_ch, attn_dim_head, groups, eps) for _ in range(layers)])
        else:
            self.attentions = None
        resnets = []
        for i in range(layers):
            res_skip = in_ch if i == layers - 1 else out_ch
            res_in = prev_out_ch if i == 0 else out_ch
            resnets.append(ResnetBlock2D(res_in + res_skip, out_ch, temb_ch, groups, eps))
        self.resnets = nn.ModuleList(resnets)
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if add_upsample else None

    def forward(self, h, skips, temb):
        skips = list(skips)
        for i, resnet in enumerate(self.resnets):
            skip = skips.pop()
            h = torch.cat([h, skip], dim=1)
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h


class UNet2D(nn.Module):
    """UNet2DModel (positional time embedding, class embedding, no skip_conv)."""

    def __init__(self, in_channels=1, out_channels=1, block_out_channels=(16, 32),
                 layers_per_block=1, down_attn=(False, True), up_attn=(True, False),
                 attention_head_dim=8, norm_num_groups=4, norm_eps=1e-5,
                 num_class_embeds=5):
        super().__init__()
        boc = list(block_out_channels)
        temb_dim = boc[0] * 4
        self.time_proj_dim = boc[0]
        self.conv_in = nn.Conv2d(in_channels, boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb_dim)
        self.class_embedding = nn.Embedding(num_class_embeds, temb_dim)
        # diffusers registers down_blocks and up_blocks (empty) before mid_block
        self.down_blocks = nn.ModuleList([])
        self.up_blocks = nn.ModuleList([])
        out_ch = boc[0]
        for i, has_attn in enumerate(down_attn):
            in_ch, out_ch = out_ch, boc[i]
            final = i == len(boc) - 1
            self.down_blocks.append(DownBlock(
                in_ch, out_ch, temb_dim, norm_num_groups, norm_eps, layers_per_block,
                attention_head_dim if has_attn else None, not final))
        self.mid_block = MidBlock(boc[-1], temb_dim, norm_num_groups, norm_eps,
                                  attention_head_dim)
        rev = list(reversed(boc))
        out_ch = rev[0]
        for i, has_attn in enumerate(up_attn):
            prev_out, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, len(boc) - 1)]
            final = i == len(boc) - 1
            self.up_blocks.append(UpBlock(
                in_ch, prev_out, out_ch, temb_dim, norm_num_groups, norm_eps,
                layers_per_block + 1, attention_head_dim if has_attn else None, not final))
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, boc[0], eps=norm_eps)
        self.conv_out = nn.Conv2d(boc[0], out_channels, 3, padding=1)

    def forward(self, x, t, labels):
        emb = self.time_embedding(timestep_sinusoidal(t, self.time_proj_dim))
        emb = emb + self.class_embedding(labels)
        h = self.conv_in(x)
        stack = [h]
        for blk in self.down_blocks:
            h, skips = blk(h, emb)
            stack.extend(skips)
        h = self.mid_block(h, emb)
        for blk in self.up_blocks:
            n = len(blk.resnets)
            skips, stack = stack[-n:], stack[:-n]
            h = blk(h, skips, emb)
        h = self.conv_out(F.silu(self.conv_norm_out(h)))
        return h


TINY_UNET_CONFIG = dict(
    sample_size=16, in_channels=1, out_channels=1, block_out_channels=(16, 32),
    layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8,
    norm_num_groups=4, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0,
    act_fn="silu", time_embedding_type="positional", add_attention=True,
    num_class_embeds=5, dropout=0.0,
)


def make_tiny_unet():
    return UNet2D(in_channels=1, out_channels=1, block_out_channels=(16, 32),
                  layers_per_block=1, down_attn=(False, True), up_attn=(True, False),
                  attention_head_dim=8, norm_num_groups=4, norm_eps=1e-5,
                  num_class_embeds=5)


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------

def _fmt(v):
    return "%.17g" % v


def tensor_line(name, t, force_summary=False):
    t = t.detach().to(DTYPE).contiguous()
    dims = list(t.shape)
    flat = t.reshape(-1).tolist()
    head = [name, str(len(dims))] + [str(d) for d in dims]
    if len(flat) > FULL_LIMIT or force_summary:
        n = len(flat)
        samples = [flat[(j * SUMMARY_STRIDE) % n] for j in range(SUMMARY_SAMPLES)]
        vals = [math.fsum(flat), math.fsum(abs(v) for v in flat)] + samples
        return " ".join(["summary"] + head + [_fmt(v) for v in vals])
    return " ".join(["full"] + head + [_fmt(v) for v in flat])


class Case:
    def __init__(self, name, description):
        self.name = name
        self.header = ["case: " + name] + description.strip().splitlines()
        self.lines = []

    def note(self, text):
        self.header.extend(text.rstrip().splitlines())

    def add(self, name, t, force_summary=False):
        self.lines.append(tensor_line(name, t, force_summary))

    def write(self):
        os.makedirs(OUT_DIR, exist_ok=True)
        path = os.path.join(OUT_DIR, self.name + ".txt")
        common = [
            "generated by tests/golden/nn_golden.py (float64 PyTorch %s, Python %s)"
            % (torch.__version__, sys.version.split()[0]),
            "parameters: deterministic_init hash formula (see nn_golden.py), not written"
            " unless as param.<name>",
            "backward: loss = sum(output.y * input.dy)",
            "format: full <name> <rank> <dims> <values> | summary <name> <rank> <dims>"
            " <sum> <sum_abs> <s0..s15>, s_j = flat[(j*7919) mod numel]",
        ]
        with open(path, "w") as f:
            for h in self.header + common:
                f.write("# " + h + "\n" if h else "#\n")
            for line in self.lines:
                f.write(line + "\n")
        return path


def rand_input(shape, seed, lo=-1.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=DTYPE) * (hi - lo) + lo


def run_simple(case, module, inputs, seed_dy, outputs_fn=None):
    """Forward + backward of ``module(*inputs)``; writes inputs, y and grads."""
    module = module.to(DTYPE)
    deterministic_init(module)
    leaves = []
    for name, t in inputs:
        t = t.clone().requires_grad_(True)
        leaves.append((name, t))
        case.add("input." + name, t)
    y = module(*[t for _, t in leaves]) if outputs_fn is None else outputs_fn(
        module, *[t for _, t in leaves])
    dy = rand_input(tuple(y.shape), seed_dy)
    case.add("input.dy", dy)
    case.add("output.y", y)
    (y * dy).sum().backward()
    for name, t in leaves:
        case.add("grad.input." + name, t.grad)
    for pname, p in module.named_parameters():
        case.add("grad." + pname, p.grad)
    return case.write()


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------

def case_linear():
    c = Case("linear", "nn.Linear(6, 4); x [3, 6] uniform [-1,1) seed 101; dy seed 102")
    return run_simple(c, nn.Linear(6, 4), [("x", rand_input((3, 6), 101))], 102)


def case_conv3x3():
    c = Case("conv3x3", "nn.Conv2d(3, 5, 3, stride=1, padding=1); x [2,3,7,6] seed 201; dy seed 202")
    return run_simple(c, nn.Conv2d(3, 5, 3, stride=1, padding=1),
                      [("x", rand_input((2, 3, 7, 6), 201))], 202)


def case_conv_stride2():
    c = Case("conv_stride2", "nn.Conv2d(3, 4, 3, stride=2, padding=1); x [2,3,8,7] seed 301; dy seed 302")
    return run_simple(c, nn.Conv2d(3, 4, 3, stride=2, padding=1),
                      [("x", rand_input((2, 3, 8, 7), 301))], 302)


def case_conv1x1():
    c = Case("conv1x1", "nn.Conv2d(6, 3, 1); x [2,6,4,5] seed 401; dy seed 402")
    return run_simple(c, nn.Conv2d(6, 3, 1), [("x", rand_input((2, 6, 4, 5), 401))], 402)


def case_group_norm():
    c = Case("group_norm", "nn.GroupNorm(3, 6, eps=1e-5, affine=True) (biased variance);"
             " x [2,6,5,4] seed 501 uniform [-1,1) * 2 + 0.5 (nonzero mean); dy seed 502")
    x = rand_input((2, 6, 5, 4), 501) * 2.0 + 0.5
    return run_simple(c, nn.GroupNorm(3, 6, eps=1e-5, affine=True), [("x", x)], 502)


def case_silu():
    c = Case("silu", "silu(x) = x * sigmoid(x); x [2,3,4,4] uniform [-6,6) seed 601; dy seed 602")
    return run_simple(c, nn.SiLU(), [("x", rand_input((2, 3, 4, 4), 601, -6.0, 6.0))], 602)


def case_timestep_embedding():
    c = Case("timestep_embedding", """
diffusers get_timestep_embedding(t, 16, flip_sin_to_cos=True, downscale_freq_shift=0,
  scale=1, max_period=10000) in float64 (exp/sin/cos from the C library):
  half=8, freqs[k] = exp((-ln(10000) * k) / 8), args = t*freqs, emb = cat([cos(args), sin(args)])
then TimestepEmbedding: linear_1 = Linear(16, 64), SiLU, linear_2 = Linear(64, 64)
(diffusers computes this projection in float32; here it is float64)
output.sinusoidal = [4,16] projection, output.y = [4,64]; dy seed 702; no gradient w.r.t. t""")
    m = TimestepEmbedding(16, 64).to(DTYPE)
    deterministic_init(m)
    t = torch.tensor([0.0, 1.0, 250.5, 999.0], dtype=DTYPE)
    c.add("input.t", t)
    s = timestep_sinusoidal(t, 16)
    y = m(s)
    dy = rand_input(tuple(y.shape), 702)
    c.add("input.dy", dy)
    c.add("output.sinusoidal", s)
    c.add("output.y", y)
    (y * dy).sum().backward()
    for pname, p in m.named_parameters():
        c.add("grad." + pname, p.grad)
    return c.write()


def case_attention():
    c = Case("attention", """
diffusers Attention (AttnDownBlock2D / deprecated attn block path): C=8, attention_head_dim=4,
  heads=2, GroupNorm(2, 8, eps=1e-5), biases on to_q/to_k/to_v/to_out.0, residual, rescale 1:
  h = group_norm(x) -> [N, HW, C]; q,k,v = to_q/k/v(h); per head softmax(q k^T / sqrt(4)) v;
  merge heads (channel = head*4 + d); to_out.0; back to [N,C,H,W]; + x
softmax in float64 (diffusers' upcast_softmax would do it in float32)
x [2,8,4,3] seed 801; dy seed 802""")
    return run_simple(c, Attention(8, 4, 2, 1e-5), [("x", rand_input((2, 8, 4, 3), 801))], 802)


def case_resnet():
    c = Case("resnet", """
diffusers ResnetBlock2D(in_channels=4, out_channels=8, temb_channels=16, groups=2, eps=1e-5,
  time_embedding_norm="default", output_scale_factor=1, dropout=0):
  h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb))[:, :, None, None]
  y = conv_shortcut(x) + conv2(silu(norm2(h)))   (conv_shortcut 1x1 with bias)
x [2,4,6,5] seed 901; temb [2,16] seed 902; dy seed 903""")
    return run_simple(c, ResnetBlock2D(4, 8, 16, 2, 1e-5),
                      [("x", rand_input((2, 4, 6, 5), 901)), ("temb", rand_input((2, 16), 902))],
                      903)


def case_downsample():
    c = Case("downsample", "Downsample2D(use_conv=True): conv = Conv2d(4, 4, 3, stride=2, padding=1);"
             " x [2,4,6,6] seed 1001; dy seed 1002")
    return run_simple(c, Downsample2D(4), [("x", rand_input((2, 4, 6, 6), 1001))], 1002)


def case_upsample():
    c = Case("upsample", "Upsample2D(use_conv=True): nearest 2x then conv = Conv2d(4, 4, 3, padding=1);"
             " x [2,4,3,3] seed 1101; dy seed 1102")
    return run_simple(c, Upsample2D(4), [("x", rand_input((2, 4, 3, 3), 1101))], 1102)


def case_unet_tiny():
    c = Case("unet_tiny", """
diffusers UNet2DModel semantics, config:
  """ + ", ".join("%s=%r" % kv for kv in TINY_UNET_CONFIG.items()) + """
time embedding: sinusoidal dim 16 (as in timestep_embedding case) -> TimestepEmbedding(16,64,64),
  plus class_embedding(labels) (Embedding(5, 64), class 4 = null); every resnet gets this temb
skips: conv_in out, each resnet(+attn) out, each downsampler out; up resnets pop the latest and
  use cat([hidden, skip], dim=1)
x [2,1,16,16] seed 1201; t = [10, 500.5]; labels = [1, 4]; dy [2,1,16,16] seed 1202
param.<name> lines: summary of each parameter value under the formula (self-check)
note: diffusers itself computes the sinusoid in float32 and, with upcast_softmax, the attention
  softmax in float32; here both are float64.  With those two steps forced to float64, diffusers
  0.27.2 UNet2DModel loaded with these weights (strict) matches output.y to ~2e-15.""")
    m = make_tiny_unet().to(DTYPE)
    deterministic_init(m)
    sd = m.state_dict()
    w = sd["conv_in.weight"].reshape(-1)[:3].tolist()
    scalar = [_uniform_pm1_scalar("conv_in.weight", k) * math.sqrt(3.0 / 9) for k in range(3)]
    assert w == scalar, (w, scalar)
    c.note("conv_in.weight first 3 values (flat): " + " ".join(_fmt(v) for v in w))
    c.note("conv_in.weight name hash (FNV-1a 64): 0x%016x" % fnv1a64("conv_in.weight"))
    c.note("parameter_count %d" % sum(p.numel() for p in sd.values()))
    c.note("parameter_tensors %d" % len(sd))
    for k, v in sd.items():
        c.note("param %s %s" % (k, " ".join(str(d) for d in v.shape)))

    x = rand_input((2, 1, 16, 16), 1201).requires_grad_(True)
    t = torch.tensor([10.0, 500.5], dtype=DTYPE)
    labels = torch.tensor([1, 4], dtype=torch.long)
    c.add("input.x", x)
    c.add("input.t", t)
    c.add("input.labels", labels.to(DTYPE))
    y = m(x, t, labels)
    dy = rand_input(tuple(y.shape), 1202)
    c.add("input.dy", dy)
    c.add("output.y", y)
    (y * dy).sum().backward()
    c.add("grad.input.x", x.grad)
    # Parameter gradients as summaries: 177k values in full would make the
    # file ~1 MB; sums and 16 fixed samples per tensor catch any wrong one.
    for pname, p in m.named_parameters():
        c.add("grad." + pname, p.grad, force_summary=p.numel() > 64)
    for pname, p in m.named_parameters():
        c.add("param." + pname, p, force_summary=True)
    return c.write(), m


def main():
    torch.set_default_dtype(DTYPE)
    paths = [case_linear(), case_conv3x3(), case_conv_stride2(), case_conv1x1(),
             case_group_norm(), case_silu(), case_timestep_embedding(), case_attention(),
             case_resnet(), case_downsample(), case_upsample()]
    p, _ = case_unet_tiny()
    paths.append(p)
    for p in paths:
        print("%8d  %s" % (os.path.getsize(p), os.path.relpath(p)))


if __name__ == "__main__":
    main()
