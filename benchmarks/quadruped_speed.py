"""Env steps per second of the quadruped under each physics simplification alone and combined, as ratios
to the suite's own settings, measured in one process with the timed calls interleaved (baseline,
variant, baseline, variant, …) so that background load hits every variant alike.

    python benchmarks/quadruped_speed.py                  # baseline and the env's physics (FAST), 16 envs
    python benchmarks/quadruped_speed.py --variants all   # every simplification alone, and combined

Each variant is a `quadruped.Physics` (see `VARIANTS`); every program is one jitted `lax.scan` of
`--steps` vector steps of `quadruped_goal` with uniform random actions and auto-reset
(`env_steps.first_rollout`). A variant's speed-up is the median over repeats of (time of the baseline
call) / (time of the variant's call right after it); env steps/s are from the median call time.
Prints a Markdown table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed  # noqa: E402
from env_steps import first_rollout  # noqa: E402

from hipi_jax import report  # noqa: E402
from hipi_jax.envs.quadruped import FAST, SUITE, Quadruped, unit_circle_goals  # noqa: E402

VARIANTS = {
    "baseline": SUITE,
    "floor_contacts_only": dataclasses.replace(SUITE, self_contacts=False),
    "contact_cap_8": dataclasses.replace(SUITE, max_contact_points=8),
    "iterations_8_ls_8": dataclasses.replace(SUITE, iterations=8, ls_iterations=8),
    "cg": dataclasses.replace(SUITE, solver="CG"),
    # MJX has elliptic cones for condim 3 only: the suite's self-contacts are frictionless (condim 1)
    "elliptic": dataclasses.replace(SUITE, self_contacts=False, cone="elliptic"),
    "implicitfast": dataclasses.replace(SUITE, integrator="implicitfast"),
    "no_eulerdamp": dataclasses.replace(SUITE, eulerdamp=False),
    "no_fusion_emitters": dataclasses.replace(SUITE, fusion_emitters=False),
    "fast": FAST,
}


def describe(physics) -> str:
    """The fields of `physics` that differ from the suite's."""
    changed = {f.name: getattr(physics, f.name) for f in dataclasses.fields(physics)}
    return ", ".join(f"{k}={v}" for k, v in changed.items() if v != getattr(SUITE, k)) or "suite settings"


def prepare(physics, num_envs: int, steps: int) -> dict:
    """The variant's compiled rollout and the state after its first call (compilation timed)."""
    roll, state, first_call_s = first_rollout(
        Quadruped(task_family=unit_circle_goals(), physics=physics), num_envs, steps
    )
    return {"roll": roll, "state": state, "first_call_s": first_call_s, "times_s": [], "ratios": []}


def timed_call(run: dict, key) -> float:
    run["state"], sec = timed(run["roll"], run["state"], key)
    run["times_s"].append(sec)
    return sec


def main(argv=None) -> int:
    variants = "; ".join(f"{k} ({describe(v)})" for k, v in VARIANTS.items())
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=f"variants: {variants}"
    )
    p.add_argument("--variants", default="fast", help="comma-separated variant names, or 'all' (baseline always runs)")
    p.add_argument("--num-envs", type=int, default=16, help="parallel envs")
    p.add_argument("--steps", type=int, default=50, help="vector steps per timed call")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per variant, interleaved (medians reported)")
    p.add_argument("--compilation-cache", type=Path, help="persistent XLA cache directory (reruns skip compiling)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/quadruped_speed.json"), help="JSON output")
    args = p.parse_args(argv)
    if args.compilation_cache:
        jax.config.update("jax_compilation_cache_dir", str(args.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    chosen = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    names = ["baseline"] + [n for n in chosen if n != "baseline"]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    runs = {}
    for name in names:
        runs[name] = prepare(VARIANTS[name], args.num_envs, args.steps)
        print(f"{name}: compiled and first call in {runs[name]['first_call_s']:.1f} s", flush=True)
    for i in range(args.repeats):  # interleaved: baseline, variant, baseline, variant, …
        for name in names[1:]:
            base_s = timed_call(runs["baseline"], jax.random.key(100 + i))
            runs[name]["ratios"].append(base_s / timed_call(runs[name], jax.random.key(100 + i)))
        ratios = ", ".join(f"{n} {runs[n]['ratios'][-1]:.2f}x" for n in names[1:])
        print(f"repeat {i + 1}/{args.repeats}: {ratios}", flush=True)
    rows = []
    for name in names:
        run, median_s = runs[name], float(np.median(runs[name]["times_s"]))
        rows.append(
            {
                "variant": name,
                "physics": dataclasses.asdict(VARIANTS[name]),
                "changes": describe(VARIANTS[name]),
                "env_steps_per_s": args.num_envs * args.steps / median_s,
                "speedup": float(np.median(run["ratios"])) if run["ratios"] else 1.0,  # (baseline call) / (next call)
                "speedups": run["ratios"],
                "first_call_s": run["first_call_s"],
                "times_s": run["times_s"],
            }
        )
    print(f"\n| variant | changes | env steps/s at {args.num_envs} envs | × baseline | compile + first call (s) |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['variant']}` | {r['changes']} | {r['env_steps_per_s']:,.0f} | {r['speedup']:.2f} "
              f"| {r['first_call_s']:.0f} |")  # fmt: skip
    report.write_benchmark(args.out, vars(args), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
