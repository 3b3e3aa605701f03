"""Does a code change leave learning unchanged? Compare the same Fig. 5/6 runs made before and after it.

    python experiments/learning_unchanged.py --before runs/fig5 --after runs/fig5_after --env nav2d

Both directories are `fig5_goal_reaching.py` / `fig6_general_tasks.py` output (ENV/STRATEGY/utdU run
directories). For every strategy present in both at the updates per env step `--utd`, it reports the
area under the success curve (return for families without success) and the final figure before and
after, each with its 95% bootstrap interval over seeds, and the interval of the difference after −
before. A change that alters random streams (not bitwise equal) cannot pair seeds, so the difference
is unpaired: each version's seeds are resampled on their own. "agree" = the interval contains 0.
Writes `results.json` and `table.md` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import strategy_curves

from hipi_jax.stats import bootstrap_diff_ci


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True, help="output directory of the runs before the change")
    p.add_argument("--after", type=Path, required=True, help="output directory of the same runs after it")
    p.add_argument("--env", default="nav2d", help="the env to compare (default: nav2d)")
    p.add_argument("--utd", type=float, default=1.0, help="updates per env step of the runs compared (default: 1)")
    p.add_argument(
        "--out", type=Path, default=Path("runs/learning_unchanged"), help="where to write results.json, table.md"
    )
    args = p.parse_args(argv)
    for name in ("before", "after"):
        root = getattr(args, name)
        if not (root / args.env).is_dir():
            p.error(f"--{name} {root} has no runs of {args.env!r} (expected {root}/{args.env}/STRATEGY/utdU)")
    return args


def compare(before: dict, after: dict) -> dict:
    """Per figure (area, final): both versions' mean and interval, and the unpaired difference's."""
    k = strategy_curves.score_key(before)
    out = {"metric": k, "seeds": [len(before[k]), len(after[k])]}
    for what in ("area", "final"):
        b, a = (np.asarray(e[k]).mean(1) if what == "area" else np.asarray(e[k])[:, -1] for e in (before, after))
        lo, hi = bootstrap_diff_ci(a, b)
        out[what] = {"before": before[f"{what}_{k}_mean"], "before_ci": before[f"{what}_{k}_ci"],
                     "after": after[f"{what}_{k}_mean"], "after_ci": after[f"{what}_{k}_ci"],
                     "diff": float(a.mean() - b.mean()), "diff_ci": (lo, hi), "agree": lo <= 0.0 <= hi}  # fmt: skip
    out["wall_s"] = [before["wall_s"], after["wall_s"]]
    return out


def main(argv=None) -> int:
    args = parse(argv)
    utd = f"utd{args.utd:g}"
    rows = {}
    for run in sorted((args.before / args.env).glob(f"*/{utd}/summary.json")):
        strategy = run.parent.parent.name
        other = args.after / args.env / strategy / utd
        if (other / "summary.json").exists():
            rows[strategy] = compare(strategy_curves._entry(run.parent), strategy_curves._entry(other))
    if not rows:
        print(
            f"learning_unchanged: no strategy of {args.env} has a finished {utd} run in both directories",
            file=sys.stderr,
        )
        return 2
    ci = lambda c: f"[{c[0]:.2f}, {c[1]:.2f}]"  # noqa: E731
    cell = lambda x, key: f"{x[key]:.2f} {ci(x[key + '_ci'])}"  # noqa: E731
    lines = [
        f"{args.env}, {utd}: before = `{args.before}`, after = `{args.after}`; 95% bootstrap intervals over seeds; "
        "difference after − before, unpaired",
        "",
        "| strategy | seeds | area before | area after | difference "
        "| final before | final after | difference | verdict |",
        "|---|---:|---|---|---|---|---|---|---|",
    ]
    for s, r in rows.items():
        a, f = r["area"], r["final"]
        verdict = "agree" if a["agree"] and f["agree"] else "**differ**"
        cells = [f"{x['diff']:+.2f} {ci(x['diff_ci'])}" for x in (a, f)]
        lines.append(f"| {s} | {r['seeds'][0]}, {r['seeds'][1]} | {cell(a, 'before')} | {cell(a, 'after')} "
                     f"| {cells[0]} "
                     f"| {cell(f, 'before')} | {cell(f, 'after')} | {cells[1]} | {verdict} |")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    saved = {"env": args.env, "utd": args.utd, "before": str(args.before), "after": str(args.after), "strategies": rows}
    (args.out / "results.json").write_text(json.dumps(saved, indent=1))
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
