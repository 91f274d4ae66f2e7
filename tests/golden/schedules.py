#!/usr/bin/env python3
"""Independent float64 NumPy reference for diffusion noise schedules.

Every schedule function returns the per-step betas as a float64 array of
length T, indexed by the 0-based timestep t = 0 .. T-1.  ``tables(betas)``
derives the usual DDPM quantities from them.

Running this file as a script writes ``schedules.txt`` next to it: golden
values that the C++ tests of haze compare against.  Regenerate with

    /usr/bin/python3 tests/golden/schedules.py

Only numpy is required.
"""

import math
import os
import sys

import numpy as np


# ---------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------

# Transcendentals go through the C library (Python's math module), element by
# element: numpy's SIMD kernels (AVX-512 on some machines) are 1-2 ulp off the
# C library, and entries such as beta_0 = 1 - f(1/T)/f(0) amplify that to
# ~1e-12 relative, the tolerance the C++ test holds haze to.
_exp = np.vectorize(math.exp, otypes=[np.float64])
_cos = np.vectorize(math.cos, otypes=[np.float64])
_log = np.vectorize(math.log, otypes=[np.float64])


def _sigmoid(x):
    return 1.0 / (1.0 + _exp(-np.asarray(x, dtype=np.float64)))


def linear(T, start=1e-4, end=2e-2):
    """Betas evenly spaced from ``start`` to ``end`` (Ho et al. 2020)."""
    return np.linspace(start, end, T, dtype=np.float64)


def scaled_linear(T, start=8.5e-4, end=1.2e-2):
    """Betas whose square roots are evenly spaced (Stable Diffusion)."""
    return np.linspace(np.sqrt(start), np.sqrt(end), T, dtype=np.float64) ** 2


def cosine(T, s=0.008, max_beta=0.999):
    """Cosine alpha-bar schedule (Nichol & Dhariwal 2021), betas capped."""
    def f(u):
        return _cos((u + s) / (1.0 + s) * np.pi / 2.0) ** 2

    i = np.arange(T, dtype=np.float64)
    betas = 1.0 - f((i + 1.0) / T) / f(i / T)
    return np.minimum(betas, max_beta)


def sigmoid(T, start=-3.0, end=3.0, tau=1.0):
    """Sigmoid-on-alpha-bar schedule (Jabri, Fleet & Chen 2023)."""
    u = np.linspace(0.0, 1.0, T + 1, dtype=np.float64)
    v_start = _sigmoid(start / tau)
    v_end = _sigmoid(end / tau)
    ab = (v_end - _sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)
    ab = ab / ab[0]
    return np.clip(1.0 - ab[1:] / ab[:-1], 0.0, 0.999)


def sigmoid_beta(T, start=1e-4, end=2e-2):
    """Betas following a sigmoid over linspace(-6, 6, T) (GeoDiff style)."""
    return _sigmoid(np.linspace(-6.0, 6.0, T, dtype=np.float64)) * (end - start) + start


def zero_terminal_snr(betas):
    """Rescale betas so the terminal SNR is exactly zero.

    Lin et al. 2024, "Common diffusion noise schedules and sample steps are
    flawed", Algorithm 1.  The last beta becomes exactly 1.
    """
    betas = np.asarray(betas, dtype=np.float64)
    alphas = 1.0 - betas
    sqrt_ab = np.sqrt(np.cumprod(alphas))
    a0 = sqrt_ab[0]
    aT = sqrt_ab[-1]
    sqrt_ab = (sqrt_ab - aT) * a0 / (a0 - aT)
    ab = sqrt_ab ** 2
    alphas = np.concatenate([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


# ---------------------------------------------------------------------------
# derived tables
# ---------------------------------------------------------------------------

QUANTITIES = (
    "beta",
    "alpha",
    "alpha_bar",
    "alpha_bar_prev",
    "sqrt_alpha_bar",
    "sqrt_one_minus_alpha_bar",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef_x0",
    "posterior_mean_coef_xt",
    "snr",
    "sigma",
)


def tables(betas):
    """Return a dict of float64 arrays derived from ``betas`` (keys: QUANTITIES)."""
    beta = np.asarray(betas, dtype=np.float64)
    alpha = 1.0 - beta
    alpha_bar = np.cumprod(alpha)
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    one_minus_ab = 1.0 - alpha_bar
    posterior_variance = beta * (1.0 - alpha_bar_prev) / one_minus_ab
    with np.errstate(divide="ignore", invalid="ignore"):
        posterior_log_variance_clipped = _log(
            np.concatenate([posterior_variance[1:2], posterior_variance[1:]]))
        zero = alpha_bar == 0.0
        sigma = np.where(zero, np.inf,
                         np.sqrt(one_minus_ab / np.where(zero, 1.0, alpha_bar)))
    return {
        "beta": beta,
        "alpha": alpha,
        "alpha_bar": alpha_bar,
        "alpha_bar_prev": alpha_bar_prev,
        "sqrt_alpha_bar": np.sqrt(alpha_bar),
        "sqrt_one_minus_alpha_bar": np.sqrt(one_minus_ab),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_log_variance_clipped,
        "posterior_mean_coef_x0": beta * np.sqrt(alpha_bar_prev) / one_minus_ab,
        "posterior_mean_coef_xt": (1.0 - alpha_bar_prev) * np.sqrt(alpha) / one_minus_ab,
        "snr": alpha_bar / one_minus_ab,
        "sigma": sigma,
    }


# ---------------------------------------------------------------------------
# golden file
# ---------------------------------------------------------------------------

SCHEDULES = {
    "linear": (linear, (1e-4, 2e-2)),
    "scaled_linear": (scaled_linear, (8.5e-4, 1.2e-2)),
    "cosine": (cosine, (0.008, 0.999)),
    "sigmoid": (sigmoid, (-3.0, 3.0, 1.0)),
    "sigmoid_beta": (sigmoid_beta, (1e-4, 2e-2)),
}

# (kind, T, zero_terminal_snr, params); params None means the defaults.
CONFIGS = (
    [(kind, 1000, False, None) for kind in SCHEDULES]
    + [(kind, 50, False, None) for kind in SCHEDULES]
    + [
        ("linear", 1000, False, (1e-3, 3e-2)),
        ("cosine", 1000, False, (0.02, 0.5)),
        ("sigmoid", 1000, False, (-2.0, 4.0, 0.7)),
        ("linear", 1000, True, None),
        ("scaled_linear", 1000, True, None),
    ]
)

HEADER = """\
# haze golden values for diffusion noise schedules.
#
# Generated by tests/golden/schedules.py, an independent float64 NumPy
# reference (numpy {numpy}, python {python}).  Regenerate with
#     /usr/bin/python3 tests/golden/schedules.py
# Do not edit by hand.
#
# Columns (whitespace separated):
#   kind steps zero_terminal_snr params t quantity value
# kind              linear | scaled_linear | cosine | sigmoid | sigmoid_beta
# steps             number of timesteps T
# zero_terminal_snr 1 if the betas were rescaled with zero_terminal_snr()
#                   (Lin et al. 2024, Algorithm 1), else 0
# params            comma-separated schedule parameters (Python repr, which
#                   round-trips float64):
#                     linear, scaled_linear, sigmoid_beta: start,end
#                     cosine: s,max_beta
#                     sigmoid: start,end,tau
# t                 0-based timestep: 0, 1, T//2, T-1
# quantity          beta alpha alpha_bar alpha_bar_prev sqrt_alpha_bar
#                   sqrt_one_minus_alpha_bar posterior_variance
#                   posterior_log_variance_clipped posterior_mean_coef_x0
#                   posterior_mean_coef_xt snr sigma
# value             float64 printed with %.17g ("inf" for infinity)
"""


def _fmt_param(p):
    return repr(float(p))


def _fmt_value(v):
    v = float(v)
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return "%.17g" % v


def golden_lines():
    lines = []
    for kind, T, zsnr, params in CONFIGS:
        fn, defaults = SCHEDULES[kind]
        params = defaults if params is None else params
        betas = fn(T, *params)
        if zsnr:
            betas = zero_terminal_snr(betas)
        tab = tables(betas)
        pstr = ",".join(_fmt_param(p) for p in params)
        for t in (0, 1, T // 2, T - 1):
            for q in QUANTITIES:
                lines.append("%s %d %d %s %d %s %s" % (
                    kind, T, 1 if zsnr else 0, pstr, t, q, _fmt_value(tab[q][t])))
    return lines


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedules.txt")
    header = HEADER.format(numpy=np.__version__,
                           python=sys.version.split()[0])
    with open(out, "w") as fh:
        fh.write(header)
        fh.write("\n".join(golden_lines()))
        fh.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
