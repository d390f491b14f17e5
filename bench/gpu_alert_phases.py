#!/usr/bin/env python3
"""Phased GPU load for bench/gpu_alert_scenario.sh: idle, then compute (matmul loop), then
memory held near full with the GPU idle, then everything released. Prints one JSON line per
phase change with a wall-clock timestamp, so the scenario can line alerts up with causes.

Usage: gpu_alert_phases.py --idle 15 --compute 40 --memory 40 --cooldown 30 [--memory-fraction 0.93]
"""
import argparse
import json
import time

import torch


def mark(phase: str) -> None:
    print(json.dumps({"phase": phase, "t": time.time()}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--idle", type=float, default=15)
    p.add_argument("--compute", type=float, default=40)
    p.add_argument("--memory", type=float, default=40)
    p.add_argument("--cooldown", type=float, default=30)
    p.add_argument("--memory-fraction", type=float, default=0.93)
    p.add_argument("--device", type=int, default=0)
    a = p.parse_args()
    dev = torch.device(f"cuda:{a.device}")
    torch.cuda.init()
    mark("idle")
    time.sleep(a.idle)

    mark("compute")
    x = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    y = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    end = time.monotonic() + a.compute
    while time.monotonic() < end:
        for _ in range(20):
            z = x @ y
        torch.cuda.synchronize(dev)
    del x, y, z
    torch.cuda.empty_cache()

    mark("memory")
    free, total = torch.cuda.mem_get_info(dev)
    want = int(total * a.memory_fraction) - (total - free)
    ballast = torch.empty(max(want, 0), dtype=torch.uint8, device=dev)
    ballast.fill_(1)
    torch.cuda.synchronize(dev)
    time.sleep(a.memory)
    del ballast
    torch.cuda.empty_cache()

    mark("cooldown")
    time.sleep(a.cooldown)
    mark("end")


if __name__ == "__main__":
    main()
