#!/usr/bin/env python3
"""Keeps one NVIDIA GPU busy with a PyTorch matmul loop for a fixed time, so the agent's GPU
values can be compared with nvidia-smi under real load. Prints the achieved TFLOP/s.

Usage: gpu_matmul_load.py [--seconds 60] [--size 8192] [--device 0] [--alloc-gib 4]
"""
import argparse
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--alloc-gib", type=float, default=4.0, help="extra memory held, to move memory.used")
    args = p.parse_args()
    dev = torch.device(f"cuda:{args.device}")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    a = torch.randn(args.size, args.size, device=dev, dtype=dtype)
    b = torch.randn(args.size, args.size, device=dev, dtype=dtype)
    ballast = torch.empty(int(args.alloc_gib * 2**30), dtype=torch.uint8, device=dev)
    ballast.fill_(1)
    torch.cuda.synchronize(dev)
    start = time.monotonic()
    iters = 0
    while time.monotonic() - start < args.seconds:
        for _ in range(20):
            c = a @ b
        torch.cuda.synchronize(dev)
        iters += 20
    elapsed = time.monotonic() - start
    flops = 2 * args.size**3 * iters / elapsed
    print(f"matmul {args.size}x{args.size} {dtype}: {iters} iterations in {elapsed:.1f} s, {flops/1e12:.1f} TFLOP/s", flush=True)
    del c, ballast


if __name__ == "__main__":
    main()
