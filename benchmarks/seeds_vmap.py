"""S seeds as one vmapped program vs S sequential runs: time of one compiled chunk with S seeds
against S times the 1-seed chunk (what S runs one after another cost, compilation apart), all
programs timed round-robin in one process. Compile times are reported apart: sequential runs pay
them S times, the vmapped program once.

    python benchmarks/seeds_vmap.py              # nav2d, inverse_rl, S in 1, 2, 4, 8
    python benchmarks/seeds_vmap.py --quick      # CI-size
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import round_robin, warm

from hipi_jax import report
from hipi_jax.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="nav2d", help="registry name of the environment")
    p.add_argument("--relabel", default="inverse_rl", help="relabel strategy")
    p.add_argument("--seeds", default="1,2,4,8", help="comma-separated seed counts S (1 is the baseline)")
    p.add_argument("--chunk-steps", type=int, default=4_000, help="env steps per seed in one timed chunk")
    p.add_argument("--repeats", type=int, default=5, help="timed chunks per program (median reported)")
    p.add_argument("--quick", action="store_true", help="CI-size: S in 1, 2, 1k-step chunks, 2 repeats")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/seeds_vmap.json", help="JSON output")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.chunk_steps, args.repeats = "1,2", 1_000, 2
    return args


def main(argv=None) -> int:
    args = parse(argv)
    counts = sorted({1, *map(int, args.seeds.split(","))})
    by_seeds = {}
    for s in counts:
        config = TrainConfig.from_options(env=args.env, relabel=args.relabel, seeds=s, eval_every=args.chunk_steps,
                                          warmup_steps=1_000, env_steps=10**6)  # fmt: skip
        _, prog, state = warm(config)
        t0 = time.perf_counter()
        chunk, compile_s = prog.chunk.lower(state).compile(), time.perf_counter() - t0
        by_seeds[s] = {"chunk": chunk, "state": state, "compile_s": compile_s}
        print(f"compiled S={s} in {compile_s:.1f} s", flush=True)

    def chunk_of(p: dict) -> Callable[[int], object]:
        def call(_):
            p["state"], _ = p["chunk"](p["state"])
            return p["state"]

        return call

    for s, times in round_robin({s: chunk_of(p) for s, p in by_seeds.items()}, args.repeats).items():
        by_seeds[s]["times"] = times
    one = float(np.median(by_seeds[1]["times"]))
    rows = []
    for s, p in by_seeds.items():
        sec = float(np.median(p["times"]))
        rows.append({"seeds": s, "chunk_s": sec, "sequential_chunk_s": s * one, "speedup_vs_sequential": s * one / sec,
                     "env_steps_per_s": s * args.chunk_steps / sec, "compile_s": p["compile_s"],
                     "chunk_s_all": p["times"]})  # fmt: skip
    print("\n| seeds | vmapped chunk s | sequential s | speed-up | env steps/s (all seeds) | compile s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        speedup = f"{r['speedup_vs_sequential']:.2f}x"
        print(f"| {r['seeds']} | {r['chunk_s']:.2f} | {r['sequential_chunk_s']:.2f} | {speedup} "
              f"| {r['env_steps_per_s']:,.0f} | {r['compile_s']:.1f} |")  # fmt: skip
    report.write_benchmark(args.out, vars(args), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
