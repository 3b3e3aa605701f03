"""hipi-jax vs a Python-loop SAC, the way the paper's code ran (one env, one update per env step,
Python between steps): SBX (Stable Baselines JAX) SAC on Gymnasium's MuJoCo `Reacher-v5`, in its own
venv (`make peers`), alternating with hipi-jax on reacher_goal (the same two-link reacher on MJX).

    python benchmarks/vs_python_loop.py          # 2 alternations
    python benchmarks/vs_python_loop.py --quick  # CI-size

Matched: batch 32, (64, 64) networks, twin critics, replay 100k, 1k random steps first, one update per
env step. hipi-jax runs its default 16 parallel envs (16 updates per vector step) and, to show what
the fused loop alone buys, 1 env. Throughput excludes compilation and evaluation on both sides.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from common import ROOT, alternate, ratio_rows, run_hipi, run_peer

from hipi_jax import report

PROGRAMS = {  # name -> hipi-jax overrides
    "hipi-jax none, 16 envs": {"relabel": "none"},
    "hipi-jax inverse_rl, 16 envs": {"relabel": "inverse_rl"},
    "hipi-jax none, 1 env": {"relabel": "none", "num_envs": 1},
}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="alternations of all programs")
    p.add_argument("--steps", type=int, default=4_000, help="timed env steps per run")
    p.add_argument("--quick", action="store_true", help="CI-size: 1 alternation, 1k steps")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vs_python_loop.json", help="JSON output")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.steps = 1, 1_000
    return args


def main(argv=None) -> int:
    args = parse(argv)
    programs = {"sbx": lambda: run_peer("sbx", "sbx_sac.py", "--steps", str(args.steps))}
    for name, overrides in PROGRAMS.items():
        envs = overrides.get("num_envs", 16)
        steps = args.steps // 2 // envs * envs  # two chunks, whole vector steps
        programs[name] = partial(run_hipi, steps, 2, updates_per_env_step=1.0, **overrides)
    runs = alternate(args.repeats, programs)
    peer = runs["sbx"][0]
    rows = ratio_rows(runs, "sbx", f"{peer['peer']} ({peer['env']})", "ratio_to_sbx")
    print("\n| program | env steps/s | updates/s | vs SBX |\n|---|---:|---:|---:|")
    for r in rows:
        sps, ups = f"{r['env_steps_per_s']:,.0f}", f"{r['updates_per_s']:,.0f}"
        print(f"| {r['program']} | {sps} | {ups} | {r['ratio_to_sbx']:.1f}x |")
    report.write_benchmark(args.out, vars(args), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
