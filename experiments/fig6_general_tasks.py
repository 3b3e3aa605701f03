"""Fig. 6: relabeling for general task families. inverse_rl vs random vs none on reacher_discrete
(32 target goals), walker_linear (linear rewards ψᵀφ), arm_reach_margin and sawyer_reach_margin (goal +
margin, Jaco and Sawyer), as
learning curves of return (or success where the family has one). `--envs desk` runs HIPI-RL on the
desk's nine discrete tasks (App. C.11's RL experiment; not part of the default list).

    python experiments/fig6_general_tasks.py --out runs/fig6                  # CPU budgets (CPU below)
    python experiments/fig6_general_tasks.py --paper-scale --out runs/fig6_paper   # GPU-sized

Writes OUT/ENV/STRATEGY/utdU/{config.json,metrics.jsonl,summary.json}, OUT/results.json and OUT/fig6.png
(or OUT/<out name>.png). Complete runs are not run again; --updates-per-env-step 1,3 runs App. C.1's
protocol (see strategy_curves.py).
"""

from __future__ import annotations

import sys

import strategy_curves

ENVS = "reacher_discrete,walker_linear,arm_reach_margin,sawyer_reach_margin"
STRATEGIES = "none,random,inverse_rl"
CPU = {
    "reacher_discrete": {},
    "walker_linear": {},
    "arm_reach_margin": {},
    "sawyer_reach_margin": {},
    "desk": {},
}  # the presets' CPU budgets
PAPER = {env: {"env_steps": 1_000_000} for env in CPU}


def main(argv=None) -> int:
    return strategy_curves.main(
        argv, "fig6_general_tasks", __doc__, ENVS, STRATEGIES, CPU, PAPER, "Fig. 6: general task families"
    )


if __name__ == "__main__":
    sys.exit(main())
