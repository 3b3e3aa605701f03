"""Throughput of the fused training loop: env steps/s and updates/s of compiled chunks, for several
(relabel strategy, batch size) pairs measured in ONE process, interleaved round-robin so that machine
noise hits every configuration alike; the ratio to the first strategy is the robust figure.

    python benchmarks/loop_throughput.py                      # nav2d, none vs inverse_rl, batch 32 and 256
    python benchmarks/loop_throughput.py --env point_goal --batch-sizes 32,64,128,256 --repeats 7

Prints a Markdown table and writes JSON (machine, versions, configs, per-repeat times) to --out.
Compilation, warm-up and evaluation are excluded; each timed call is one chunk of `--chunk-steps`
environment steps per seed with `--updates-per-env-step` updates per step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from hipi_jax import report, train
from hipi_jax.config import TrainConfig


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="nav2d", help="registry name of the environment")
    p.add_argument("--strategies", default="none,inverse_rl", help="comma-separated relabel strategies")
    p.add_argument("--batch-sizes", default="32,256", help="comma-separated replay batch sizes")
    p.add_argument("--seeds", type=int, default=1, help="vmapped seeds per program")
    p.add_argument("--num-envs", type=int, default=16, help="parallel envs per seed")
    p.add_argument("--hidden", default="32,32", help="hidden widths of actor and critic")
    p.add_argument("--updates-per-env-step", type=float, default=1.0, help="gradient updates per env step")
    p.add_argument("--chunk-steps", type=int, default=4_000, help="env steps per seed in one timed chunk")
    p.add_argument("--repeats", type=int, default=5, help="timed chunks per configuration (median reported)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/loop_throughput.json"), help="JSON output")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    strategies, batch_sizes = args.strategies.split(","), [int(b) for b in args.batch_sizes.split(",")]
    programs = {}
    for batch in batch_sizes:
        for strategy in strategies:
            config = TrainConfig(
                env=args.env,
                relabel=strategy,
                batch_size=batch,
                seeds=args.seeds,
                num_envs=args.num_envs,
                hidden=tuple(int(w) for w in args.hidden.split(",")),
                updates_per_env_step=args.updates_per_env_step,
                eval_every=args.chunk_steps,
                warmup_steps=max(batch, 1_000),
                env_steps=10**9,
                buffer_size=100_000,
            )
            prog = train.programs(train.build(config))
            state = prog.init(train.seed_keys(0, args.seeds))
            state = prog.warmup(state)
            t0 = time.perf_counter()
            chunk = prog.chunk.lower(state).compile()
            compile_s = time.perf_counter() - t0
            state, _ = jax.block_until_ready(chunk(state))  # one untimed call
            programs[(strategy, batch)] = {"config": config, "chunk": chunk, "state": state, "compile_s": compile_s}
            print(f"compiled {strategy} batch {batch} in {compile_s:.1f} s", flush=True)

    times = {k: [] for k in programs}
    for _ in range(args.repeats):
        for key, p in programs.items():
            t0 = time.perf_counter()
            p["state"], metrics = jax.block_until_ready(p["chunk"](p["state"]))
            times[key].append(time.perf_counter() - t0)

    rows = []
    for (strategy, batch), p in programs.items():
        cfg, sec = p["config"], float(np.median(times[(strategy, batch)]))
        steps = args.seeds * cfg.iterations_per_chunk * cfg.num_envs
        updates = args.seeds * cfg.iterations_per_chunk * cfg.updates_per_iteration
        base = float(np.median(times[(strategies[0], batch)]))
        rows.append(
            {
                "strategy": strategy,
                "batch_size": batch,
                "env_steps_per_s": steps / sec,
                "updates_per_s": updates / sec,
                "time_ratio_to_" + strategies[0]: sec / base,
                "chunk_s_median": sec,
                "chunk_s_all": times[(strategy, batch)],
                "compile_s": p["compile_s"],
            }
        )
    ratio = "time_ratio_to_" + strategies[0]
    print(
        f"\n{args.env}, {args.seeds} seed(s) x {args.num_envs} envs, hidden {args.hidden}, "
        f"{args.updates_per_env_step} updates/env step, {jax.devices()[0].device_kind}"
    )
    print(f"| strategy | batch | env steps/s | updates/s | time vs {strategies[0]} |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['strategy']} | {r['batch_size']} | {r['env_steps_per_s']:,.0f} | {r['updates_per_s']:,.0f} "
            f"| {r[ratio]:.2f}x |"
        )
    report.write_benchmark(args.out, vars(args), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
