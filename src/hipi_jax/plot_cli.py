"""`hipi-plot RUN_DIR... --out FILE`: several hipi-train runs' learning curves on one figure.

Each run directory (or each sweep value of one) is a line: the mean over its seeds, shaded ± 1 std,
of eval_return, eval_success and every relabeling diagnostic the runs record (`report.plot_curves`,
the panels of a run's own curves.png), then a table of each line's last evaluation: the interquartile
mean over seeds with its 95% bootstrap interval (`stats.iqm_ci`, SciPy). Reads only config.json and
metrics.jsonl. Bad input prints one line and exits with code 2 before anything is written.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

from hipi_jax import console, rundir


def parser():
    from hipi_jax import __version__

    p = console.OneLineParser(
        prog="hipi-plot",
        description="Plot the learning curves of several hipi-train runs on one figure (mean over each run's seeds, "
        "shaded ± 1 std).",
    )
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="hipi-train --out directories")
    p.add_argument("--version", action="version", version=f"hipi-jax {__version__}")
    p.add_argument("--out", type=Path, required=True, help="the figure to write (.png)")
    p.add_argument("--labels", default=None, help="comma-separated, one per RUN_DIR (default: the directory names)")
    p.add_argument("--title", default="", help="the figure's title")
    return p


_fail = partial(console.fail, "hipi-plot")


def curves(run_dir: Path, label: str) -> dict[str, list[dict]]:
    """label -> records for each sweep value of the run in `run_dir`; ValueError (one line) when unreadable."""
    from hipi_jax.config import TrainConfig
    from hipi_jax.runner import split_runs

    try:
        config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        records = rundir.read_jsonl(run_dir / "metrics.jsonl")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise ValueError(f"{run_dir} is not a readable hipi-train run ({type(e).__name__}: {e})") from None
    if not any("eval_return" in r for r in records):
        raise ValueError(f"{run_dir}/metrics.jsonl holds no evaluation yet")
    return {f"{label}: {value}": recs for value, recs in split_runs(records, config).items()}


def final_table(lines: dict[str, list[dict]]) -> str:
    """Each curve's last evaluation: env steps, seeds, and for return and success the IQM over seeds with
    its 95% percentile-bootstrap interval over seeds (— below 2 seeds)."""
    from hipi_jax.stats import iqm, iqm_ci

    def cell(values) -> str:
        ci = iqm_ci(values)
        return f"{iqm(values):.3f} " + (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "—")

    rows = [("curve", "env steps", "seeds", "return: IQM [95% CI]", "success: IQM [95% CI]")]
    for label, records in lines.items():
        last = [r for r in records if "eval_return" in r][-1]
        rows.append((label, f"{last['env_steps']:,}", str(len(last["eval_return"])), cell(last["eval_return"]),
                     cell(last["eval_success"])))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    labels = args.labels.split(",") if args.labels is not None else [d.resolve().name for d in args.run_dirs]
    if len(labels) != len(args.run_dirs):
        _fail(f"--labels gives {len(labels)} labels for {len(args.run_dirs)} run directories; give one per RUN_DIR")
    if len(set(labels)) < len(labels):
        _fail(f"the labels {', '.join(labels)} repeat; name the runs apart with --labels")
    if args.out.suffix.lower() != ".png":
        _fail(f"--out {args.out}: must end in .png")
    from hipi_jax import report

    if problem := rundir.output_file("--out", args.out, args.run_dirs):
        _fail(problem)
    lines: dict[str, list[dict]] = {}
    for run_dir, label in zip(args.run_dirs, labels, strict=True):
        try:
            lines |= curves(run_dir, label)
        except ValueError as e:
            _fail(str(e))
    report.plot_curves(lines, args.out, title=args.title)
    print(f"hipi-plot: wrote {args.out}: {len(lines)} curves, the mean over seeds shaded ± 1 std")
    print("last evaluation, interquartile mean (IQM) over seeds with its 95% percentile-bootstrap interval over seeds:")
    print(final_table(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
