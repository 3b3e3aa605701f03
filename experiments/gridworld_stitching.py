"""Fig. 4: relabeling with inverse RL stitches crossing trajectories.

A `--size` × `--size` gridworld (`envs.gridworld`) and a dataset of two trajectories that cross:
τ1 walks right along a row from A to B, τ2 walks down a column from C to D (the row and the column
come from the seed). Each trajectory was commanded to reach its own end. Tabular Q-learning on the
data, for every goal cell, after relabeling with

- `final`: each transition keeps its trajectory's final state (HER's final strategy; here also the
  commanded goal);
- `future`: each transition also gets every later state of its trajectory as a goal (HER's future);
- `inverse_rl`: `--rounds` rounds of HIPI: score every (transition, goal) pair with the one-step
  backup Q̃(s, a, g) = r_g(s') + γ (1 − done) max_a' Q(s', a', g), relabel each transition with
  `--draws` goals drawn from q(g | s, a) ∝ exp(Q̃ − log Z(g)) (`relabel.inverse_rl_log_probs`, log Z
  over the dataset), and Q-learn again on the original and the relabeled pairs.

The candidate tasks of inverse RL are the data's commanded goals, B and D (Alg. 1). Success: the
greedy policy of Q(·, ·, g) walks from a start onto g within the episode limit, for the four (start,
goal) pairs A→B, A→D, C→B, C→D; a goal counts as reached (`success_per_goal`) when both starts get
there. Only stitching at the crossing gives A→D and C→B.

    python experiments/gridworld_stitching.py --out runs/gridworld_stitching --size 7 --seed 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from hipi_jax import report
from hipi_jax.envs.gridworld import MOVES, GridWorld, all_cells
from hipi_jax.relabel import inverse_rl_log_probs

RIGHT, DOWN = 3, 1
STRATEGIES = ("final", "future", "inverse_rl")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/gridworld_stitching"), help="output directory")
    p.add_argument("--size", type=int, default=5, help="grid side length (>= 3)")
    p.add_argument("--seed", type=int, default=0, help="seed i of --seeds uses seed + i (placement and draws)")
    p.add_argument("--seeds", type=int, default=3, help="independent placements / relabelings")
    p.add_argument("--gamma", type=float, default=0.9, help="discount of the tabular Q-learning")
    p.add_argument("--rounds", type=int, default=0, help="inverse-RL relabel/Q-learn rounds (0 = 2 x size)")
    p.add_argument("--draws", type=int, default=8, help="goals drawn per transition in each inverse-RL round")
    args = p.parse_args(argv)
    if args.size < 3:
        p.exit(2, f"gridworld_stitching: error: --size {args.size} must be >= 3 (two trajectories must cross)\n")
    for name in ("seeds", "draws"):
        if getattr(args, name) < 1:
            p.exit(2, f"gridworld_stitching: error: --{name} {getattr(args, name)} must be >= 1\n")
    if not 0 < args.gamma < 1:
        p.exit(2, f"gridworld_stitching: error: --gamma {args.gamma} must be in (0, 1)\n")
    args.rounds = args.rounds or 2 * args.size
    return args


def dataset(env: GridWorld, row: int, col: int) -> dict[str, np.ndarray]:
    """The two trajectories' transitions: τ1 right along `row` from (row, 0), τ2 down `col` from (0, col)."""
    states, actions, nexts, traj = [], [], [], []
    for i, (start, action) in enumerate((((row, 0), RIGHT), ((0, col), DOWN))):
        cell = jnp.asarray(start, jnp.int32)
        for _ in range(env.size - 1):
            nxt = env.sim_step(cell, action, None)[0]
            states.append(np.asarray(cell))
            actions.append(action)
            nexts.append(np.asarray(nxt))
            traj.append(i)
            cell = nxt
    return {"s": np.asarray(states), "a": np.asarray(actions), "s2": np.asarray(nexts), "traj": np.asarray(traj)}


def index(cells: np.ndarray, size: int) -> np.ndarray:
    return cells[..., 0] * size + cells[..., 1]


def q_learning(data, labels: np.ndarray, reward: np.ndarray, done: np.ndarray, size: int, gamma: float):
    """Tabular Q-learning (value iteration) on the labeled (transition, goal) pairs: Q [S, A, G].
    Pairs never seen keep the pessimistic value −1 / (1 − γ) (the return of never arriving)."""
    n_s, n_a = size * size, MOVES.shape[0]
    q = np.full((n_s, n_a, n_s), -1 / (1 - gamma))
    s, a, s2 = index(data["s"], size), data["a"], index(data["s2"], size)
    t_idx, g_idx = np.nonzero(labels)
    for _ in range(4 * size):
        target = reward[t_idx, g_idx] + gamma * (1 - done[t_idx, g_idx]) * q[s2[t_idx], :, g_idx].max(axis=-1)
        q[s[t_idx], a[t_idx], g_idx] = target
    return q


def backup_values(q, data, reward, done, size: int, gamma: float) -> np.ndarray:
    """Q̃(s_t, a_t, g) for every transition t and goal g: [T, G]."""
    next_v = q[index(data["s2"], size)].max(axis=1)  # [T, G]
    return reward + gamma * (1 - done) * next_v


def greedy_success(q, env: GridWorld, start, goals: np.ndarray) -> np.ndarray:
    """Does the greedy policy of Q(·, ·, g) walk from `start` onto g within `env.max_steps`? [len(goals)]"""
    size, out = env.size, []
    for g in goals:
        cell, gi = np.asarray(start), index(g, size)
        for _ in range(env.max_steps):
            if np.array_equal(cell, g):
                break
            cell = np.clip(cell + MOVES[int(q[index(cell, size), :, gi].argmax())], 0, size - 1)
        out.append(bool(np.array_equal(cell, g)))
    return np.asarray(out)


def run_seed(args, seed: int) -> dict:
    env = GridWorld(size=args.size)
    rng = np.random.default_rng(seed)
    row, col = (int(x) for x in rng.integers(1, args.size - 1, size=2))
    data = dataset(env, row, col)
    goals = all_cells(args.size).astype(np.int32)  # every cell is a task
    family = env.task_family
    feats = jnp.asarray(data["s2"], jnp.float32)[:, None]
    reward = np.asarray(family.reward(feats, None, jnp.asarray(goals, jnp.float32)[None]))  # [T, G]
    done = np.asarray(family.terminal(feats, jnp.asarray(goals, jnp.float32)[None]), np.float64)
    t = np.arange(len(data["a"]))
    final = np.stack([data["s2"][data["traj"] == i][-1] for i in range(2)])[data["traj"]]
    commanded = np.zeros((len(t), len(goals)), bool)
    commanded[t, index(final, args.size)] = True

    labels = {"final": commanded}
    future = commanded.copy()
    for i in t:  # every later state of the same trajectory
        later = (data["traj"] == data["traj"][i]) & (t >= i)
        future[i, index(data["s2"][later], args.size)] = True
    labels["future"] = future

    # Alg. 1's candidates: the commanded tasks of the data, B and D
    candidates = np.unique(index(final, args.size))
    key = jax.random.PRNGKey(seed)
    relabeled = commanded.copy()
    for _ in range(args.rounds):
        q = q_learning(data, relabeled, reward, done, args.size, args.gamma)
        values = backup_values(q, data, reward, done, args.size, args.gamma)[:, candidates]
        key, k = jax.random.split(key)
        log_q = inverse_rl_log_probs(jnp.asarray(values))
        drawn = np.asarray(jax.random.categorical(k, log_q, axis=-1, shape=(args.draws, len(t))))  # [M, T]
        relabeled = commanded.copy()
        relabeled[np.broadcast_to(t, drawn.shape), candidates[drawn]] = True
    labels["inverse_rl"] = relabeled

    starts = {"A": np.asarray([row, 0]), "C": np.asarray([0, col])}
    goals_named = {"B": np.asarray([row, args.size - 1]), "D": np.asarray([args.size - 1, col])}
    out = {"row": row, "col": col, **{k: v.tolist() for k, v in {**starts, **goals_named}.items()}, "strategies": {}}
    for name, lab in labels.items():
        q = q_learning(data, lab, reward, done, args.size, args.gamma)
        reached = {f"{s}->{g}": bool(greedy_success(q, env, start, goal[None])[0])
                   for s, start in starts.items() for g, goal in goals_named.items()}  # fmt: skip
        out["strategies"][name] = {
            # a goal counts as reached when the greedy policy gets there from both starts, A and C
            "success_per_goal": {
                f"{g[0]},{g[1]}": int(reached[f"A->{n}"] and reached[f"C->{n}"]) for n, g in goals_named.items()
            },  # fmt: skip
            "success_per_start_and_goal": {k: int(v) for k, v in reached.items()},
            "success_rate": float(np.mean(list(reached.values()))),
            "relabeled_pairs": int(lab.sum()),
        }
    return out


def main(argv=None) -> int:
    args = parse(argv)
    seeds = [run_seed(args, args.seed + i) for i in range(args.seeds)]
    summary = {}
    for name in STRATEGIES:
        rates = [s["strategies"][name]["success_rate"] for s in seeds]
        summary[name] = {"success_rate_mean": float(np.mean(rates)), "success_rate_std": float(np.std(rates))}
        print(f"{name:>10}: (start, goal) pairs reached {np.mean(rates):.2f} ± {np.std(rates):.2f} "
              f"over {args.seeds} placement(s)")  # fmt: skip
    # results.json: per strategy, seed 0's success_per_goal and success_rate (the issue's schema), then all seeds
    first = seeds[0]["strategies"]
    results = {name: {**first[name], **summary[name]} for name in STRATEGIES}
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", {"args": {k: str(v) for k, v in vars(args).items()},
                                                  **results, "seeds": seeds})  # fmt: skip
    plot(seeds[0], args.size, args.out / "gridworld_stitching.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'gridworld_stitching.png'}")
    return 0


def plot(seed: dict, size: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(STRATEGIES), figsize=(3.6 * len(STRATEGIES), 3.8))
    for ax, name in zip(axes, STRATEGIES, strict=True):
        res = seed["strategies"][name]
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
        ax.set_xticks(range(size))
        ax.set_yticks(range(size))
        ax.grid(True, lw=0.3)
        for pair, ok in res["success_per_start_and_goal"].items():
            start, goal = pair.split("->")
            (r0, c0), (r1, c1) = seed[start], seed[goal]
            color = "tab:green" if ok else "tab:red"
            style = {"arrowstyle": "->", "color": color, "lw": 1.5, "ls": "-" if ok else ":"}
            ax.annotate("", (c1, r1), (c0, r0), arrowprops={**style, "connectionstyle": "arc3,rad=0.25"})
        (a_r, a_c), (b_r, b_c), (c_r, c_c), (d_r, d_c) = seed["A"], seed["B"], seed["C"], seed["D"]
        ax.annotate("", (b_c, b_r), (a_c, a_r), arrowprops={"arrowstyle": "->", "color": "grey", "lw": 2})
        ax.annotate("", (d_c, d_r), (c_c, c_r), arrowprops={"arrowstyle": "->", "color": "grey", "lw": 2})
        for label, (r, c) in zip("ABCD", (seed["A"], seed["B"], seed["C"], seed["D"]), strict=True):
            ax.text(c, r, label, ha="center", va="center", fontweight="bold")
        ax.set_title(f"{name}: {res['success_rate']:.0%} of (start, goal) pairs")
    fig.suptitle("Fig. 4: data (grey) A→B, C→D; greedy policy reaches the goal (green) or not (red, dotted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
