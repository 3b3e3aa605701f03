"""One SAC update (sample → relabel → step, Alg. 2) before and after the #17 changes, timed in one
process: the old functions, loaded from a checkout of the earlier commit, are patched in while the
"before" programs are traced, so machine noise hits both alike.

    git worktree add /tmp/before beffa50     # the commit before the changes
    python benchmarks/before_after.py --before /tmp/before

Each change can be reverted alone (`--variants`): `sample` (replay indices from randint draws instead
of one draw of bits), `relabel` (a random permutation for the relabeled half, and the commanded
tasks' values evaluated again instead of read off the matrix's diagonal), `adam` (Adam per parameter
leaf instead of on the raveled parameters), `twin` (inverse RL scoring pairs with the min of both
critics instead of the first). Programs: a 64-update scan on the state of a `reacher_goal` run after
its warm-up (16 envs, B = 32), as `profile_update.py` builds it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from functools import partial
from pathlib import Path

import jax
import numpy as np
from common import first_seed, round_robin, timed, warm
from profile_update import scanned, stages

import hipi_jax.buffer
import hipi_jax.relabel
import hipi_jax.training
from hipi_jax import report
from hipi_jax.agents.sac import SAC
from hipi_jax.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
CHANGES = ("sample", "relabel", "adam", "twin")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True, help="a checkout of the commit before the changes")
    p.add_argument("--variants", default="all,twin",
                   help="comma-separated: 'all' (every change reverted) or one change of " + ", ".join(CHANGES) +
                   " reverted alone; 'after' is always timed (default: all,twin)")  # fmt: skip
    p.add_argument(
        "--cases",
        default="none:64,64;inverse_rl:64,64;inverse_rl:256,256",
        help="semicolon-separated STRATEGY:HIDDEN (default: none:64,64;inverse_rl:64,64;inverse_rl:256,256)",
    )
    p.add_argument("--calls", type=int, default=64, help="updates per timed scan (default: 64)")
    p.add_argument("--repeats", type=int, default=7, help="timed scans per program, round-robin (default: 7)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/before_after.json", help="JSON output")
    args = p.parse_args(argv)
    if not (args.before / "src/hipi_jax/buffer.py").exists():
        p.error(f"--before {args.before} is not a hipi-jax checkout (no src/hipi_jax/buffer.py)")
    for v in args.variants.split(","):
        if v not in ("all",) + CHANGES:
            p.error(f"--variants: {v!r} is not one of all, {', '.join(CHANGES)}")
    return args


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def reverted(old: dict, changes: set[str]):
    """The named changes undone: the earlier commit's functions in place of the current ones."""
    saved = (hipi_jax.buffer.sample, hipi_jax.training.relabel, hipi_jax.relabel.RULES, SAC.optimizer,
             SAC.soft_q_matrix, SAC.soft_backup_matrix)  # fmt: skip
    if "sample" in changes:
        hipi_jax.buffer.sample = old["buffer"].sample
    if "relabel" in changes:
        hipi_jax.training.relabel, hipi_jax.relabel.RULES = old["relabel"].relabel, old["relabel"].RULES
    if "adam" in changes:
        SAC.optimizer = old["sac"].SAC.optimizer
    if "twin" in changes:
        SAC.soft_q_matrix, SAC.soft_backup_matrix = old["sac"].SAC.soft_q_matrix, old["sac"].SAC.soft_backup_matrix
    try:
        yield
    finally:
        (hipi_jax.buffer.sample, hipi_jax.training.relabel, hipi_jax.relabel.RULES, SAC.optimizer,
         SAC.soft_q_matrix, SAC.soft_backup_matrix) = saved  # fmt: skip


def main(argv=None) -> int:
    args = parse(argv)
    src = args.before / "src/hipi_jax"
    old = {"buffer": load("before_buffer", src / "buffer.py"), "relabel": load("before_relabel", src / "relabel.py"),
           "sac": load("before_sac", src / "agents/sac.py")}  # fmt: skip
    variants = {v: set(CHANGES) if v == "all" else {v} for v in args.variants.split(",")} | {"after": set()}
    compiled_by = {}
    for case in args.cases.split(";"):
        strategy, hidden = case.split(":")
        for variant, changes in variants.items():
            with reverted(old, changes):
                config = TrainConfig.from_options(env="reacher_goal", relabel=strategy, num_envs=16, batch_size=32,
                                                  hidden=tuple(int(h) for h in hidden.split(",")), buffer_size=100_000,
                                                  warmup_steps=2_000, eval_episodes=1)  # fmt: skip
                tr, _, state = warm(config)
                state = first_seed(state)
                compiled = (
                    scanned(stages(tr, state)["update"], args.calls).lower(state, jax.random.PRNGKey(0)).compile()
                )
                timed(compiled, state, jax.random.PRNGKey(0))
                compiled_by[case, variant] = partial(lambda c, s, i: c(s, jax.random.PRNGKey(1 + i)), compiled, state)
            print(f"{case} / {variant}: compiled", flush=True)
    times = round_robin(compiled_by, args.repeats)
    rows = []
    for (case, variant), ts in times.items():
        us = 1e6 * float(np.median(ts)) / args.calls
        rows.append({"case": case, "variant": variant, "us_per_update": us})
    for r in rows:
        after = next(x for x in rows if x["case"] == r["case"] and x["variant"] == "after")["us_per_update"]
        r["vs_after"] = r["us_per_update"] / after
        print(f"{r['case']:22s} {r['variant']:8s} {r['us_per_update']:8.0f} µs  {r['vs_after']:.3f}× after")
    report.write_benchmark(args.out, {k: str(v) for k, v in vars(args).items()}, rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
