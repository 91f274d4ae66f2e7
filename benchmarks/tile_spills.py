#!/usr/bin/env python3
"""Checks that the register tiles' inner loops keep their accumulators in
registers: compiles the direct convolution's and the packed GEMM's tiles
to assembly for each ISA and counts, in every innermost loop that does
multiply-adds, the instructions that touch the stack.

    benchmarks/tile_spills.py [--compiler g++] [--aarch64]

A plain x86-64 build holds the SSE2 tiles and the AVX2 and AVX-512 clones
(simd_isa.hpp); -march=x86-64-v3 and -march=native give those builds' own
tiles; --aarch64 adds the NEON build (aarch64-linux-gnu-g++). Prints one
line per tile function and loop, and exits 1 if a float tile of AVX2,
AVX-512 or NEON spills (those are the ones that carry a U-Net; SSE2's and
double's are reported only).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = """
#include <haze/ops/conv.hpp>
namespace d = haze::ops::detail;
namespace bd = haze::backend::detail;
template const d::DirectKernels<float>& d::direct_kernels<float>();
template const d::DirectKernels<double>& d::direct_kernels<double>();
template const bd::GemmKernel<float>* bd::packed_gemm_kernel<float>(haze::backend::SimdIsa);
template const bd::GemmKernel<double>* bd::packed_gemm_kernel<double>(haze::backend::SimdIsa);
"""
TILES = re.compile(r"direct_image_block|direct_weight_grad_image|gemm_micro_tile")
FMA = re.compile(r"\b(v?fmadd|v?fmla|fmla|vfnmadd|mulp[sd]|addp[sd])")  # SSE2 has no FMA: mul + add
STACK = re.compile(r"\(%rsp\)|\(%rbp\)|\[sp|\bsp\]|\[x29")


def functions(asm):
    name, body = None, []
    for line in asm.splitlines():
        m = re.match(r"^(_Z[\w.]+):", line)
        if m:
            if name:
                yield name, body
            name, body = m.group(1), []
        elif name:
            body.append(line.strip())
    if name:
        yield name, body


def inner_loops(body):
    """Blocks from a label to a backward branch to it that contain no other label."""
    labels = {line[:-1]: i for i, line in enumerate(body) if re.match(r"^\.L\w+:$", line)}
    for i, line in enumerate(body):
        m = re.match(r"^(j\w+|b\.\w+|b|cbnz|cbz|tbnz)\s+.*?(\.L\w+)$", line)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            block = body[labels[m.group(2)] + 1:i + 1]
            if not any(re.match(r"^\.L\w+:$", b) for b in block):
                yield block


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiler", default="g++")
    parser.add_argument("--aarch64", action="store_true")
    args = parser.parse_args()
    include = os.path.join(HERE, "..", "include")
    builds = [("x86-64 (dispatch)", [args.compiler]), ("x86-64-v3", [args.compiler, "-march=x86-64-v3"]),
              ("native", [args.compiler, "-march=native"])]
    if args.aarch64:
        builds.append(("aarch64", ["aarch64-linux-gnu-g++"]))
    spills = 0
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "tiles.cpp")
        with open(src, "w") as f:
            f.write(SOURCE)
        for label, cmd in builds:
            out = os.path.join(tmp, "tiles.s")
            subprocess.run(cmd + ["-std=c++20", "-O3", "-DNDEBUG", "-fopenmp", "-I", include, "-isystem",
                                  "/usr/include/eigen3", "-S", src, "-o", out], check=True)
            asm = open(out).read()
            demangled = subprocess.run(["c++filt"], input="\n".join(n for n, _ in functions(asm)),
                                       capture_output=True, text=True).stdout.splitlines()
            for (name, body), pretty in zip(functions(asm), demangled):
                if not TILES.search(name):
                    continue
                for block in inner_loops(body):
                    fmas = sum(1 for b in block if FMA.search(b))
                    if fmas == 0:
                        continue
                    stack = sum(1 for b in block if STACK.search(b) and re.search(r"[xyz]mm|\bq\d|\bv\d", b))
                    sse2 = label.startswith("x86-64 (") and "simd_baseline" in pretty
                    spills += stack > 0 and "<float" in pretty and not sse2
                    short = re.sub(r"\(.*", "", pretty.replace("haze::", ""))
                    print(f"{label:18s} {short:60s} inner loop: {fmas:3d} multiply-adds, "
                          f"{stack:2d} vector stack accesses{'  <- spills' if stack else ''}")
    return 1 if spills else 0


if __name__ == "__main__":
    sys.exit(main())
