"""Fig. 2: the partition function normalizes tasks of different reward scale.

Two trajectories on a line: τ1 walks right to x = +1, τ2 walks left to x = −1 (T steps each). Two
linear tasks r = ψᵀφ with φ(s) = (1, x): ψ1 = (10, 1) pays a large reward everywhere (an "easy" task
of large scale) and prefers the right; ψ2 = (0, −1) prefers the left at a small scale. Under ψ1 both
trajectories earn more than under ψ2, so assigning each trajectory the task under which it earned
the most gives ψ1 to both; inverse RL subtracts log Z(ψ) (Eq. 7, Alg. 1) and assigns τ1 → ψ1,
τ2 → ψ2. The returns come from the library's `bc.trajectory_returns` and the posterior from
`relabel.inverse_rl_log_probs`; each seed draws `--draws` relabelings per trajectory from it.

    python experiments/fig2_partition.py --out runs/fig2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax import bc, report
from hipi_jax.dataset import Dataset
from hipi_jax.relabel import inverse_rl_log_probs, log_partition
from hipi_jax.tasks import Linear

TASKS = np.array([[10.0, 1.0], [0.0, -1.0]], np.float32)  # ψ1: large scale, prefers right; ψ2: small, left


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/fig2_partition"), help="output directory")
    p.add_argument("--steps", type=int, default=10, help="steps per trajectory T")
    p.add_argument("--seed", type=int, default=0, help="base random seed")
    p.add_argument("--seeds", type=int, default=3, help="seeds; each draws --draws relabelings per trajectory")
    p.add_argument("--draws", type=int, default=1000, help="relabelings drawn per trajectory and seed")
    args = p.parse_args(argv)
    for name in ("steps", "seeds", "draws"):
        if getattr(args, name) < 1:
            p.exit(2, f"fig2_partition: error: --{name} {getattr(args, name)} must be >= 1\n")
    return args


def trajectories(steps: int) -> Dataset:
    """τ1: x = t/T to the right, τ2: x = −t/T to the left; features φ = (1, x)."""
    x = np.arange(1, steps + 1, dtype=np.float32) / steps
    pos = np.stack([x, -x])  # [2, T]
    features = np.stack([np.ones_like(pos), pos], axis=-1)  # [2, T, 2]
    return Dataset(obs=pos[..., None], actions=np.zeros((2, steps, 1), np.float32), features=features,
                   mask=np.ones((2, steps), bool), tasks=None, env="line")  # fmt: skip


def main(argv=None) -> int:
    args = parse(argv)
    family = Linear(low=[-10.0, -1.0], high=[10.0, 1.0])
    returns = np.asarray(bc.trajectory_returns(family, trajectories(args.steps), jnp.asarray(TASKS)))  # [τ, ψ]
    results = {
        "tasks": TASKS.tolist(),
        "returns": returns.tolist(),
        "log_z": np.asarray(log_partition(returns)).tolist(),
    }
    for name, use_partition in (("without_log_z", False), ("with_log_z", True)):
        log_q = inverse_rl_log_probs(jnp.asarray(returns), use_partition=use_partition)
        keys = jax.random.split(jax.random.PRNGKey(args.seed), args.seeds)
        draws = jax.vmap(lambda k, lq=log_q: jax.random.categorical(k, lq, axis=-1, shape=(args.draws, 2)))(keys)
        share = np.stack([(np.asarray(draws) == j).mean(axis=1) for j in range(2)], axis=-1)  # [seed, τ, ψ]
        results[name] = {
            "q": np.exp(np.asarray(log_q)).tolist(),
            "assigned_task": np.asarray(log_q).argmax(axis=1).tolist(),
            "drawn_share_mean": share.mean(0).tolist(),
            "drawn_share_std": share.std(0).tolist(),
        }
    results["claim_reproduced"] = (results["without_log_z"]["assigned_task"] == [0, 0]
                                   and results["with_log_z"]["assigned_task"] == [0, 1])  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", {"args": {k: str(v) for k, v in vars(args).items()}, **results})
    plot(results, args.out / "fig2_partition.png")
    for name in ("without_log_z", "with_log_z"):
        pairs = ", ".join(f"τ{i + 1} → ψ{j + 1}" for i, j in enumerate(results[name]["assigned_task"]))
        print(f"{name.replace('_', ' ')}: {pairs}")
    print(f"returns [τ, ψ] = {returns.round(2).tolist()}, log Z = {np.round(results['log_z'], 2).tolist()}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'fig2_partition.png'}")
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, name, title in zip(
        axes, ("without_log_z", "with_log_z"), ("without log Z", "with log Z (inverse RL)"), strict=True
    ):
        q = np.asarray(results[name]["q"])
        ax.imshow(q, vmin=0, vmax=1, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"R={results['returns'][i][j]:.1f}\nq={q[i, j]:.2f}", ha="center", va="center",
                        color="white" if q[i, j] > 0.5 else "black")  # fmt: skip
            j = results[name]["assigned_task"][i]
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=3, ec="black"))
        ax.set_xticks([0, 1], ["ψ1 (scale 10)", "ψ2 (scale 1)"])
        ax.set_yticks([0, 1], ["τ1 (right)", "τ2 (left)"])
        ax.set_title(title)
    fig.suptitle("Fig. 2: q(ψ | τ); black border = assigned task")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
