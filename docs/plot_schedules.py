#!/usr/bin/env python3
"""Plot alpha_bar(t) and log-SNR(t) for haze's noise schedules.

Uses the float64 reference in tests/golden/schedules.py and writes
docs/schedules.png.  Run with

    /usr/bin/python3 docs/plot_schedules.py
"""

import os
import sys

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "tests", "golden"))

from schedules import (  # noqa: E402
    cosine, linear, scaled_linear, sigmoid, sigmoid_beta, tables,
    zero_terminal_snr)

T = 1000


def main():
    curves = [
        ("linear", linear(T)),
        ("scaled_linear", scaled_linear(T)),
        ("cosine", cosine(T)),
        ("sigmoid", sigmoid(T)),
        ("sigmoid_beta", sigmoid_beta(T)),
        ("linear + zero-terminal-SNR", zero_terminal_snr(linear(T))),
    ]
    t = np.arange(T)

    fig, (ax_ab, ax_snr) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    log_snr_floor = None
    finite_min = np.inf
    data = []
    for name, betas in curves:
        ab = tables(betas)["alpha_bar"]
        with np.errstate(divide="ignore"):
            log_snr = np.log(ab / (1.0 - ab))
        finite_min = min(finite_min, np.min(log_snr[np.isfinite(log_snr)]))
        data.append((name, ab, log_snr))
    # The zero-terminal-SNR curve ends at -inf; clip it just below the
    # lowest finite value so the last point still shows.
    log_snr_floor = np.floor(finite_min) - 2.0

    for name, ab, log_snr in data:
        style = "--" if "zero" in name else "-"
        ax_ab.plot(t, ab, style, lw=1.6, label=name)
        ax_snr.plot(t, np.maximum(log_snr, log_snr_floor), style, lw=1.6,
                    label=name)

    ax_ab.set_title(r"Cumulative signal $\bar\alpha_t$")
    ax_ab.set_xlabel("timestep t")
    ax_ab.set_ylabel(r"$\bar\alpha_t$")
    ax_ab.set_xlim(0, T - 1)
    ax_ab.set_ylim(-0.02, 1.02)
    ax_ab.grid(alpha=0.3)
    ax_ab.legend(fontsize=8)

    ax_snr.set_title(r"log-SNR $\log(\bar\alpha_t / (1-\bar\alpha_t))$")
    ax_snr.set_xlabel("timestep t")
    ax_snr.set_ylabel("log-SNR")
    ax_snr.set_xlim(0, T - 1)
    ax_snr.grid(alpha=0.3)
    ax_snr.legend(fontsize=8,
                  title="zero-SNR end (-inf) clipped to %g" % log_snr_floor,
                  title_fontsize=7)

    fig.suptitle("haze noise schedules (defaults, T = %d)" % T)
    fig.tight_layout()
    out = os.path.join(HERE, "schedules.png")
    fig.savefig(out)
    print("wrote", out)


if __name__ == "__main__":
    main()
