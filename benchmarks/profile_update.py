"""Where the time of one training iteration goes: each stage of the fused loop (collect → sample →
relabel → SAC update, Alg. 2) compiled alone as a scan of `--calls` calls on the state of a run after
its warm-up, timed round-robin in one process (medians of `--repeats`), with XLA's FLOP and byte counts
of one call.

    python benchmarks/profile_update.py          # reacher_goal, none and inverse_rl, the vs_brax sizes
    python benchmarks/profile_update.py --relabel inverse_rl --hidden 256,256

Stages: `collect` (policy sample, env step, buffer insert, auto-reset of all envs) and each of those
four alone (`collect: policy`, `collect: env step` on uniform actions, `collect: buffer insert`,
`collect: auto-reset`; what the four leave of `collect` is `collect: rest (by difference)`: the
bookkeeping, key splits and the state's copies), `sample` (replay
sample with the hindsight goals), `sample + relabel` (proposal and reward recomputation), `relabel:
values` (sample, then the estimator on all B × K pairs; strategies that score candidates only), the SAC
parts `critic`, `actor` (each with its own sample and relabel: the step alone is the difference),
`alpha` and `target` (Polyak), and the whole `update` and `iteration` (collect +
updates_per_iteration updates). Each scan carries what its stage advances, as the loop does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import first_seed, round_robin, timed, warm

from hipi_jax import buffer, report, training
from hipi_jax.agents.sac import grad_step
from hipi_jax.config import TrainConfig
from hipi_jax.envs.base import auto_reset
from hipi_jax.relabel import candidate_tasks, relabel
from hipi_jax.types import Transition

ROOT = Path(__file__).resolve().parent.parent


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="reacher_goal", help="registry name of the environment (default: reacher_goal)")
    p.add_argument("--relabel", default="none,inverse_rl", help="comma-separated strategies (default: none,inverse_rl)")
    p.add_argument("--num-envs", type=int, default=16, help="parallel envs (default: 16, as vs_brax)")
    p.add_argument("--batch-size", type=int, default=32, help="replay batch B (default: 32)")
    p.add_argument("--hidden", default="64,64", help="network widths (default: 64,64)")
    p.add_argument("--calls", type=int, default=64, help="calls of a stage per compiled, timed scan (default: 64)")
    p.add_argument("--repeats", type=int, default=5, help="timed scans per stage, round-robin (default: 5)")
    p.add_argument("--quick", action="store_true", help="CI-size: 8 calls per scan, 2 repeats")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/profile_update.json", help="JSON output")
    args = p.parse_args(argv)
    if args.quick:
        args.calls, args.repeats = 8, 2
    for name in ("num_envs", "batch_size", "calls", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


Stage = tuple[Callable, Callable]  # (init(state) -> carry, step(state, carry, key) -> (carry, output))


def advances_state(f: Callable) -> Stage:
    """f(state, key) -> state: the scan carries the whole state, as the training loop does."""
    return lambda s: s, lambda _, c, k: (f(c, k), None)


def advances_agent(f: Callable) -> Stage:
    """f(state, key) -> agent state: the scan carries the agent's state only."""
    return lambda s: s.agent, lambda s, c, k: (f(s.replace(agent=c), k), None)


def reads(f: Callable) -> Stage:
    """f(state, key) -> output: nothing is carried, the state is a constant of the loop (carrying it
    would cost a copy per call on the CPU)."""
    return lambda s: (), lambda s, c, k: (c, f(s, k))


def stages(tr: training.Trainer, state: training.TrainState) -> dict[str, Stage]:
    """Every stage of one training iteration (module docstring)."""
    cfg, family = tr.config, tr.env.task_family
    spec = cfg.relabel
    agent = training.agent_of(tr, state.hyper)
    steps = tr.env.max_steps if spec.rule.trajectory_level else 0
    sample = lambda s, k: buffer.sample(s.buffer, k, cfg.run.batch_size, steps)  # noqa: E731
    values = lambda s: agent.relabel_values(s.agent, spec.value_estimator) if spec.value_estimator else None  # noqa: E731

    def relabeled(s, k):
        return relabel(k, sample(s, k), spec, family, s.hyper.relabel_fraction, values(s), s.hyper.gamma)[0]

    def values_only(s, k):
        smp = sample(s, k)
        tasks = candidate_tasks(k, smp, family, spec)
        tr_ = smp.transition
        reward = jnp.zeros((tr_.obs.shape[0], tasks.shape[0]))
        return values(s)(k, tr_.obs, tr_.action, tr_.next_obs, tasks[None], reward, reward)

    def critic(s, k):
        a = s.agent
        p, o, _, _ = grad_step(agent.critic_loss, a.critic_params, a.critic_opt, agent.optimizer, a, relabeled(s, k), k)
        return a.replace(critic_params=p, critic_opt=o)

    def actor(s, k):
        a = s.agent
        p, o, _, _ = grad_step(agent.actor_loss, a.actor_params, a.actor_opt, agent.optimizer, a, relabeled(s, k), k)
        return a.replace(actor_params=p, actor_opt=o)

    def alpha(s, k):
        a = s.agent
        p, o, _, _ = grad_step(agent.alpha_loss, a.log_alpha, a.alpha_opt, agent.optimizer, jax.random.uniform(k))
        return a.replace(log_alpha=p, alpha_opt=o)

    def target(s, k):
        a = s.agent
        return a.replace(
            target_critic_params=optax.incremental_update(a.critic_params, a.target_critic_params, agent.config.tau)
        )

    env, n = tr.env, cfg.run.num_envs

    def env_step(s, k):  # the vector step alone, on uniform actions
        return jax.vmap(env.step)(s.env_state, jax.random.uniform(k, (n, env.action_dim), minval=-1.0, maxval=1.0))

    def insert(s, buf, k):  # the buffer write of one vector step (the state's own env step, stored again)
        es = s.env_state
        stored = Transition(obs=es.obs, action=jnp.zeros((n, env.action_dim)), next_obs=es.obs,
                            obs_features=es.features, features=es.features, task=es.task)  # fmt: skip
        return buffer.insert(buf, stored, es.t, jax.random.bernoulli(k, 0.05, (n,)))

    out = {
        "collect": advances_state(lambda s, k: training.collect(tr, s.replace(key=k))),
        "collect: policy": reads(lambda s, k: tr.agent.act(s.agent.actor_params, k, s.env_state.obs, s.env_state.task)),
        "collect: env step": reads(env_step),
        "collect: buffer insert": (lambda s: s.buffer, lambda s, c, k: (insert(s, c, k), None)),
        "collect: auto-reset": reads(
            lambda s, k: jax.vmap(partial(auto_reset, env))(s.env_state, jax.random.split(k, n))
        ),
        "sample": reads(sample),
        "sample + relabel": reads(relabeled),
        "critic (sample + relabel + step)": advances_agent(critic),
        "actor (sample + relabel + step)": advances_agent(actor),
        "alpha": advances_agent(alpha),
        "target": advances_agent(target),
        "update": advances_state(lambda s, k: training.update(tr, s.replace(key=k))[0]),
        "iteration": advances_state(lambda s, k: training.iteration(tr, s.replace(key=k))[0]),
    }
    if spec.value_estimator:
        out["relabel: values (sample + B x K)"] = reads(values_only)
    return out


def scanned(stage: Stage, calls: int):
    """`calls` calls of `stage` in one jitted scan: (state, key) -> (carry, checksum of the outputs), both
    returned so that XLA cannot drop any of the work."""
    init, step = stage

    def program(state, key):
        def body(c, key):
            carry, acc = c
            carry, out = step(state, carry, key)
            leaves = jax.tree.leaves(out) if out is not None else [jnp.zeros(())]
            return (carry, acc + sum(jnp.sum(x.astype(jnp.float32)) for x in leaves)), None

        return jax.lax.scan(body, (init(state), jnp.zeros(())), jax.random.split(key, calls))[0]

    return jax.jit(program)


def main(argv=None) -> int:
    args = parse(argv)
    stage_programs, rows, iterations = {}, {}, {}
    for strategy in args.relabel.split(","):
        hidden = tuple(int(h) for h in args.hidden.split(","))
        config = TrainConfig.from_options(env=args.env, relabel=strategy, num_envs=args.num_envs, hidden=hidden,
                                          batch_size=args.batch_size, buffer_size=100_000, warmup_steps=2_000,
                                          eval_episodes=1)  # fmt: skip
        tr, _, state = warm(config)
        state = first_seed(state)
        iterations[strategy] = config.updates_per_iteration
        for name, stage in stages(tr, state).items():
            t0 = time.perf_counter()
            compiled = scanned(stage, args.calls).lower(state, jax.random.PRNGKey(0)).compile()
            cost = compiled.cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            timed(compiled, state, jax.random.PRNGKey(0))
            stage_programs[strategy, name] = partial(lambda c, s, i: c(s, jax.random.PRNGKey(1 + i)), compiled, state)
            rows[strategy, name] = {"relabel": strategy, "stage": name, "compile_s": time.perf_counter() - t0,
                                    "flops_per_call": float(cost.get("flops", 0.0)),  # one loop body
                                    "bytes_per_call": float(cost.get("bytes accessed", 0.0))}  # fmt: skip
            print(f"{strategy} / {name}: compiled in {rows[strategy, name]['compile_s']:.1f} s", flush=True)
    for key, times in round_robin(stage_programs, args.repeats).items():
        rows[key]["times_s"] = times
        rows[key]["us_per_call"] = 1e6 * float(np.median(times)) / args.calls
    out = []
    for strategy in iterations:
        mine = {name: r for (s, name), r in rows.items() if s == strategy}
        base = mine["sample + relabel"]["us_per_call"]
        for name in [n for n in mine if n.endswith("(sample + relabel + step)")]:  # the step alone, by difference
            net = name.split(" (")[0] + " step (by difference)"
            mine[net] = {"relabel": strategy, "stage": net, "us_per_call": mine[name]["us_per_call"] - base}
        parts = [mine[name]["us_per_call"] for name in mine if name.startswith("collect: ")]
        rest = mine["collect"]["us_per_call"] - sum(parts)
        mine["collect: rest (by difference)"] = {"relabel": strategy, "stage": "collect: rest (by difference)",
                                                 "us_per_call": rest}  # fmt: skip
        update_us = mine["update"]["us_per_call"]
        for r in mine.values():
            r["of_update"] = r["us_per_call"] / update_us
        out += list(mine.values())
        print(f"\n{args.env}, relabel {strategy}, {args.num_envs} envs, B = {args.batch_size}, hidden ({args.hidden}); "
              f"one iteration = 1 collect + {iterations[strategy]} update(s)")  # fmt: skip
        print("\n| stage | µs per call | × one update | MFLOP per call | MB accessed per call |")
        print("|---|---:|---:|---:|---:|")
        for r in mine.values():
            flops, mb = r.get("flops_per_call", 0.0) / 1e6, r.get("bytes_per_call", 0.0) / 1e6
            print(f"| {r['stage']} | {r['us_per_call']:,.0f} | {r['of_update']:.2f} | {flops:.2f} | {mb:.2f} |")
    report.write_benchmark(args.out, vars(args), out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
