"""Fig. 8: the partition function in HIPI-BC. HIPI-BC with and without log Z, on the data as it is and
with --reward-bias added to the first candidate task's per-step reward. With log Z a bias that is
constant per task cancels; without it the biased task takes the trajectories.

    python experiments/fig8_partition_ablation.py --out runs/fig8 --demos runs/fig7   # reuse Fig. 7's data
    python experiments/fig8_partition_ablation.py --out runs/fig8                     # train the experts here

Same budgets and flags as fig7_bc.py (one seed gives the same dataset in both). Writes
OUT/results.json and OUT/fig8_partition_ablation.png after every domain.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import fig7_bc

from hipi_jax import bc, report


def configs(spec: dict, bias: float) -> dict[str, bc.BCConfig]:
    out = {}
    for method in ("hipi", "hipi_no_partition"):
        for suffix, b in (("", 0.0), (" + bias", bias)):
            out[method + suffix] = bc.BCConfig.of(
                method=method, eval_episodes=spec["eval_episodes"], reward_bias=b, **{**fig7_bc.BC, **spec["bc"]}
            )
    return out


def plot(results: dict, out: Path, bias: float) -> None:
    report.plot_bars({env: r["methods"] for env, r in results.items()}, out / "fig8_partition_ablation.png",
                     title=f"reward bias {bias} on one task (Fig. 8)")  # fmt: skip


def main(argv=None) -> int:
    p = fig7_bc.parser(__doc__)
    p.add_argument("--reward-bias", type=float, default=1.0, help="per-step bias on candidate task 1 (default: 1.0)")
    args = fig7_bc.parse(p, argv)
    if not math.isfinite(args.reward_bias):
        p.error(f"--reward-bias {args.reward_bias} must be a finite number")
    return fig7_bc.sweep_domains(
        args, lambda spec: configs(spec, args.reward_bias), lambda results, out: plot(results, out, args.reward_bias)
    )


if __name__ == "__main__":
    sys.exit(main())
