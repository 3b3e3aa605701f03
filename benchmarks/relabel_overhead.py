"""What HIPI-RL's B x K relabeling kernel costs: SAC updates/s (sample -> relabel -> update, env
stepping excluded) with `inverse_rl` vs `none`, for batch sizes B and network widths, and the curve
over the number of candidate tasks K (`--num-candidates`) at the largest B. Also the kernel's achieved
FLOP/s (XLA's FLOP count of the critic on all B x K pairs, over its measured time) against a plain
float32 matmul on the same machine. Every program is compiled first, then all are timed round-robin
in one process, so machine noise hits them alike; medians are reported.

    python benchmarks/relabel_overhead.py            # B in 32..256, (64,64) and (256,256), K curve
    python benchmarks/relabel_overhead.py --quick    # CI-size
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from common import first_seed, timed, warm

from hipi_jax import buffer, report, training
from hipi_jax.config import TrainConfig
from hipi_jax.relabel import propose

ROOT = Path(__file__).resolve().parent.parent
SCAN = 8  # updates (or kernel calls) per timed, compiled call


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="nav2d", help="registry name of the environment that fills the buffer")
    p.add_argument("--batch-sizes", default="32,64,128,256", help="comma-separated replay batch sizes B")
    p.add_argument("--hidden", default="64,64;256,256", help="network widths to try, ';'-separated")
    p.add_argument("--candidates", default="8,16,32,64,128", help="K values for the curve at the largest B (+ K = B)")
    p.add_argument(
        "--strategies",
        default="inverse_rl",
        help="comma-separated --relabel strategies timed against none at every B and width, e.g. "
        "inverse_rl,advantage,air (the K curve is inverse_rl's) (default: inverse_rl)",
    )
    p.add_argument("--seconds", type=float, default=1.0, help="target time per timed repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per program (median reported)")
    p.add_argument("--quick", action="store_true", help="CI-size: B 32,64, (64,64) only, K 8,32, 2 repeats")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/relabel_overhead.json", help="JSON output")
    args = p.parse_args(argv)
    from hipi_jax.relabel import STRATEGIES

    if bad := [s for s in args.strategies.split(",") if s not in STRATEGIES]:
        p.error(f"--strategies: {bad[0]!r} is unknown; valid: {', '.join(STRATEGIES)}")
    if args.quick:
        args.batch_sizes, args.hidden, args.candidates, args.repeats, args.seconds = "32,64", "64,64", "8,32", 2, 0.3
    return args


def update_program(config: TrainConfig) -> dict:
    """`SCAN` jitted updates of one seed from a buffer filled by the warm-up and, for inverse RL, the
    kernel alone (critic on B x K pairs, then the softmax draw) with XLA's FLOP count of one call."""
    tr, _, state = warm(config)
    body = lambda s, _: training.update(tr, s)
    updates = jax.jit(jax.vmap(lambda s: jax.lax.scan(body, s, None, length=SCAN)[0]), donate_argnums=0)
    p = {"updates": updates, "state": updates(state), "times": [], "kernel_times": []}  # the first call compiles
    if config.relabel.strategy != "none":
        one = first_seed(p["state"])
        spec = config.relabel
        agent = training.agent_of(tr, one.hyper)
        values = agent.relabel_values(one.agent, spec.value_estimator) if spec.value_estimator else None
        family = tr.env.task_family

        def kernel(key, sample):
            return propose(spec, key, sample, family, 1.0, values, one.hyper.gamma).task

        keys = jax.random.split(jax.random.key(0), SCAN)
        steps = tr.env.max_steps if spec.rule.trajectory_level else 0
        samples = jax.vmap(lambda key: buffer.sample(one.buffer, key, config.run.batch_size, steps))(
            keys
        )  # one per call
        first = jax.tree.map(lambda x: x[0], samples)
        cost = jax.jit(kernel).lower(keys[0], first).compile().cost_analysis()
        p["flops"] = float((cost[0] if isinstance(cost, list) else cost)["flops"])
        total = lambda c, xs: (c + kernel(*xs).sum(), None)
        p["kernel"] = jax.jit(lambda keys, samples: jax.lax.scan(total, 0.0, (keys, samples))[0])
        p["kernel_args"] = (keys, samples)
        jax.block_until_ready(p["kernel"](keys, samples))
    return p


def advance(p: dict) -> training.TrainState:
    """Run program `p`'s `calls` scans of updates, one after another, on its state."""
    for _ in range(p["calls"]):
        p["state"] = p["updates"](p["state"])
    return p["state"]


def main(argv=None) -> int:
    args = parse(argv)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    widths = [tuple(int(w) for w in h.split(",")) for h in args.hidden.split(";")]
    cases = [(h, b, s, 0) for h in widths for b in batches for s in ("none", *args.strategies.split(","))]
    big = max(batches)
    cases += [(widths[0], big, "inverse_rl", k) for k in map(int, args.candidates.split(",")) if k < big]
    programs = {}
    for hidden, batch, strategy, k in cases:
        config = TrainConfig.from_options(
            env=args.env,
            relabel=strategy,
            batch_size=batch,
            hidden=hidden,
            num_candidates=k,
            num_envs=16,
            warmup_steps=max(1_000, batch),
            env_steps=10**6,
            buffer_size=100_000,
        )
        p, compile_s = timed(update_program, config)
        programs[(hidden, batch, strategy, k)] = p
        p["state"], once = timed(p["updates"], p["state"])
        p["calls"] = max(1, round(args.seconds / once))
        print(f"compiled {strategy} B={batch} K={k or batch} hidden={hidden} in {compile_s:.1f} s", flush=True)
    for _ in range(args.repeats):
        for p in programs.values():
            _, sec = timed(advance, p)
            p["times"].append(sec / (p["calls"] * SCAN))
            if "kernel" in p:
                p["kernel_times"].append(timed(p["kernel"], *p["kernel_args"])[1] / SCAN)

    rows = []
    for (hidden, batch, strategy, k), p in programs.items():
        sec = float(np.median(p["times"]))
        base = float(np.median(programs[(hidden, batch, "none", 0)]["times"]))
        row = {"hidden": list(hidden), "batch_size": batch, "strategy": strategy, "num_candidates": k or batch,
               "updates_per_s": 1 / sec, "time_ratio_to_none": sec / base, "update_s_all": p["times"]}  # fmt: skip
        if "kernel" in p:
            kernel_s = float(np.median(p["kernel_times"]))
            row.update(kernel_s=kernel_s, kernel_flops=p["flops"], kernel_gflop_per_s=p["flops"] / kernel_s / 1e9)
        rows.append(row)
    matmul = matmul_gflops(args.repeats)
    print(f"\nplain float32 matmul (1024 x 256 @ 256 x 256): {matmul:.1f} GFLOP/s")
    print("| hidden | B | K | strategy | updates/s | time vs none | kernel GFLOP/s | vs matmul |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        g = r.get("kernel_gflop_per_s")
        kernel = f"{g:.1f} | {g / matmul:.2f}" if g else "– | –"
        k = r["num_candidates"] if r["strategy"] != "none" else "–"
        print(f"| {tuple(r['hidden'])} | {r['batch_size']} | {k} | {r['strategy']} | {r['updates_per_s']:,.0f} "
              f"| {r['time_ratio_to_none']:.2f}x | {kernel} |")  # fmt: skip
    report.write_benchmark(args.out, {**vars(args), "matmul_gflop_per_s": matmul}, rows)
    print(f"wrote {args.out}")
    return 0


def matmul_gflops(repeats: int) -> float:
    """GFLOP/s of float32 matmuls the size of one hidden layer over 1024 (sample, task) pairs, chained
    (each uses the last one's output, so none can be hoisted or skipped)."""
    x = jax.random.normal(jax.random.key(0), (1024, 256), jnp.float32)
    w = jax.random.normal(jax.random.key(1), (256, 256), jnp.float32) / 16
    f = jax.jit(lambda x, w: jax.lax.scan(lambda x, _: (jnp.tanh(x @ w), None), x, None, length=64)[0])
    jax.block_until_ready(f(x, w))
    sec = float(np.median([timed(f, x, w)[1] for _ in range(repeats)]))
    return 64 * 2 * 1024 * 256 * 256 / sec / 1e9


if __name__ == "__main__":
    sys.exit(main())
