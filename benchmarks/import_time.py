"""``import evalkit`` against ``import httpx``, measured in the same run.

Run: ``python benchmarks/import_time.py [--runs 15]``. Each sample is a fresh
interpreter; the ratio of medians is what the issue targets (<= 2x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys


def sample(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-X", "frozen_modules=on", "-c", code],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip()) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"httpx": [], "evalkit": [], "evalkit.providers": []}
    for _ in range(args.runs):  # interleave so drift hits all three alike
        for module in results:
            results[module].append(sample(module))
    base = statistics.median(results["httpx"])
    print(f"{'module':<20}{'median ms':>12}{'ratio vs httpx':>16}")
    for module, values in results.items():
        median = statistics.median(values)
        print(f"{module:<20}{median:>12.2f}{median / base:>16.2f}")


if __name__ == "__main__":
    main()
