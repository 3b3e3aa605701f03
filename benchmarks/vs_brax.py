"""hipi-jax vs Brax's SAC trainer (`brax.training.agents.sac.train`), the fused JAX peer, on the same
MuJoCo Playground physics (ReacherEasy, `impl="jax"`): whole-training env steps/s and updates/s,
compilation reported apart. Brax runs in its own venv (`make peers`), as a subprocess, alternating
with hipi-jax (`none` and `inverse_rl`) so that machine noise hits every program alike.

    python benchmarks/vs_brax.py                 # 2 alternations, 20k env steps per timed epoch
    python benchmarks/vs_brax.py --quick         # CI-size

Matched: 16 envs and batch 32 by default (`--num-envs`, `--batch-size`), (64, 64) networks, replay
100k, 1k prefill, and one update per vector step of all envs (Brax's `grad_updates_per_step=1` =
hipi-jax `--updates-per-env-step 1/num_envs`).
Both exclude evaluation from their throughput; Brax's figure is its own `training/sps` of the epochs
after the first (which compiles), hipi-jax's is `summary.json`'s `env_steps_per_s` (compiled chunks).
hipi-jax's reacher_goal steps the same Playground model; its episodes also end on reaching the goal.
Brax restarts every env from its first start (AutoResetWrapper): hipi-jax `--starts reuse` does the
same, `--starts fresh` (its default) draws a new start every episode.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from common import ROOT, alternate, ratio_rows, run_hipi, run_peer

from hipi_jax import report


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="alternations of brax and the hipi-jax programs")
    p.add_argument("--epoch-steps", type=int, default=20_000, help="env steps per timed epoch / chunk")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per run (brax runs one more, which compiles)")
    p.add_argument("--num-envs", type=int, default=16, help="parallel envs of both programs (default: 16)")
    p.add_argument("--batch-size", type=int, default=32, help="SGD batch size of both programs (default: 32)")
    p.add_argument("--quick", action="store_true", help="CI-size: 1 alternation, 4k-step epochs")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vs_brax.json", help="JSON output")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.epoch_steps = 1, 4_000
    return args


PROGRAMS = {  # hipi-jax programs: name -> overrides
    "hipi-jax none, --starts reuse": {"relabel": "none", "starts": "reuse"},
    "hipi-jax none, --starts fresh": {"relabel": "none", "starts": "fresh"},
    "hipi-jax inverse_rl, --starts reuse": {"relabel": "inverse_rl", "starts": "reuse"},
}


def main(argv=None) -> int:
    args = parse(argv)
    sizes = {"num_envs": args.num_envs, "batch_size": args.batch_size}
    brax = ["--epoch-steps", str(args.epoch_steps), "--epochs", str(args.epochs + 1)]
    brax += ["--num-envs", str(args.num_envs), "--batch-size", str(args.batch_size)]
    programs = {"brax": lambda: run_peer("brax", "brax_sac.py", *brax)}
    for name, overrides in PROGRAMS.items():  # one update per vector step of all envs, as Brax's
        programs[name] = partial(run_hipi, args.epoch_steps, args.epochs, updates_per_env_step=1 / args.num_envs,
                                 **sizes, **overrides)  # fmt: skip
    runs = alternate(args.repeats, programs)
    peer = runs["brax"][0]
    rows = ratio_rows(runs, "brax", f"{peer['peer']} (jax {peer['jax']})", "ratio_to_brax")
    print("\n| program | env steps/s | updates/s | compile s | vs Brax |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['program']} | {r['env_steps_per_s']:,.0f} | {r['updates_per_s']:,.0f} | {r['compile_s']:.0f} "
              f"| {r['ratio_to_brax']:.2f}x |")  # fmt: skip
    report.write_benchmark(args.out, vars(args), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
