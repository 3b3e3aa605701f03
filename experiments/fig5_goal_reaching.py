"""Fig. 5: relabeling for goal reaching. inverse_rl vs final vs future vs random vs none on nav2d,
reacher_goal, finger_goal, quadruped_goal, arm_reach (Jaco) and sawyer_reach, and the sparse variants
(reacher_goal_hard, arm_reach_hard, sawyer_reach_hard), as learning curves of success; beside them the
authors' released code emulated
(final_released, future_released, inverse_rl_released) and inverse RL with each sample's future goals
as extra candidates (inverse_rl@tasks+future). App. C.1's protocol: --updates-per-env-step 1,3,10
runs each value and reports each strategy at its best (see strategy_curves.py).

    python experiments/fig5_goal_reaching.py --out runs/fig5                  # CPU budgets (CPU below)
    python experiments/fig5_goal_reaching.py --envs nav2d --seeds 5 --updates-per-env-step 1,3
    python experiments/fig5_goal_reaching.py --paper-scale --out runs/fig5_paper   # GPU-sized

Writes OUT/ENV/STRATEGY/utdU/{config.json,metrics.jsonl,summary.json}, OUT/results.json and OUT/fig5.png
(or OUT/<out name>.png). Complete pairs are not run again (see strategy_curves.py).
"""

from __future__ import annotations

import sys

import strategy_curves

ENVS = ",".join(
    ["nav2d", "reacher_goal", "finger_goal", "quadruped_goal", "arm_reach", "sawyer_reach"]
    + ["reacher_goal_hard", "arm_reach_hard", "sawyer_reach_hard"]
)
STRATEGIES = (
    "none,random,final,future,inverse_rl,final_released,future_released,inverse_rl_released,inverse_rl@tasks+future"
)
# CPU budgets: env steps per seed (the presets' networks and other settings); --paper-scale: App. C
CPU = {"nav2d": {"env_steps": 300_000}} | {env: {} for env in ENVS.split(",")[1:]}
PAPER = {env: {"env_steps": 1_000_000} for env in CPU} | {"quadruped_goal": {"env_steps": 3_000_000}}


def main(argv=None) -> int:
    return strategy_curves.main(
        argv, "fig5_goal_reaching", __doc__, ENVS, STRATEGIES, CPU, PAPER, "Fig. 5: goal reaching"
    )


if __name__ == "__main__":
    sys.exit(main())
