#!/usr/bin/env python3
"""Golden numbers for haze::train::AdamW from torch.optim.AdamW, in float64.

Two parameters, a weight [3, 4] (decayed) and a bias [4] (not decayed, as
haze's default), take three steps with the learning rates below and the
gradients written to the file; after each step the parameters are written.

    /usr/bin/python3 tests/golden/train_golden.py   ->  tests/golden/nn/adamw.txt

Format as in nn_golden.py: "full <name> <rank> <dims..> <values..>".
"""

import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
LRS = [1e-2, 5e-3, 2e-2]
OPTIONS = dict(betas=(0.9, 0.99), eps=1e-6)
WEIGHT_DECAY = 0.1


def line(name, t):
    dims = " ".join(str(d) for d in t.shape)
    values = " ".join("%.17g" % v for v in t.flatten().tolist())
    return f"full {name} {t.dim()} {dims} {values}\n"


def main():
    g = torch.Generator().manual_seed(5)
    weight = torch.nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
    bias = torch.nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
    out = ["# torch.optim.AdamW, betas (0.9, 0.99), eps 1e-6, weight decay 0.1 on the weight only\n",
           "# learning rates per step: " + " ".join(str(lr) for lr in LRS) + "\n",
           line("weight.initial", weight.detach()), line("bias.initial", bias.detach())]
    opt = torch.optim.AdamW([{"params": [weight], "weight_decay": WEIGHT_DECAY},
                             {"params": [bias], "weight_decay": 0.0}], lr=LRS[0], **OPTIONS)
    for step, lr in enumerate(LRS, start=1):
        for group in opt.param_groups:
            group["lr"] = lr
        weight.grad = torch.randn(3, 4, generator=g, dtype=torch.float64)
        bias.grad = torch.randn(4, generator=g, dtype=torch.float64)
        out += [line(f"weight.grad{step}", weight.grad), line(f"bias.grad{step}", bias.grad)]
        opt.step()
        out += [line(f"weight.step{step}", weight.detach()), line(f"bias.step{step}", bias.detach())]
    with open(os.path.join(HERE, "nn", "adamw.txt"), "w") as f:
        f.writelines(out)


if __name__ == "__main__":
    main()
