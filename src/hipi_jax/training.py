"""The fused training loop (Alg. 2): collect → insert → U × (sample → relabel → SAC update).

`init`, `collect`, `update`, `iteration` and `evaluate` are pure functions of one `TrainState`;
`Programs` holds their jitted forms, vmapped over the run axis (seeds x sweep values): a chunk of K
iterations is one `lax.scan` inside one `jax.jit` with the state donated. `Placement` lays the run
axis, and the env axis of env states and replay buffers, over a device mesh. `run` is the thin host
loop between chunks (evaluation, logging, progress bar); nothing on the host runs per step.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hipi_jax import buffer as replay
from hipi_jax import envs
from hipi_jax.agents.sac import SAC, SACState
from hipi_jax.config import SWEEPABLE, TrainConfig
from hipi_jax.envs.base import EnvState, auto_reset, reset_with_prior
from hipi_jax.episodes import rollout
from hipi_jax.relabel import relabel
from hipi_jax.types import Transition

Array = jax.Array
logger = logging.getLogger("hipi_jax")


@struct.dataclass
class Hyper:
    """The run's values of the sweepable hyperparameters (`config.SWEEPABLE`). They are traced, not
    baked into the program, so runs with different values share one vmapped program."""

    relabel_fraction: Array
    learning_rate: Array
    gamma: Array
    tau: Array


@struct.dataclass
class TrainState:
    """Everything a run carries through the scan (and what a checkpoint holds)."""

    agent: SACState
    buffer: replay.BufferState
    env_state: EnvState  # [num_envs]
    key: Array
    env_steps: Array  # [] int32, environment steps taken by this run
    updates: Array  # [] int32, gradient updates done by this run
    hyper: Hyper


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """The static pieces a run is built from."""

    config: TrainConfig
    env: envs.Env
    agent: SAC


def build(config: TrainConfig) -> Trainer:
    env = envs.make(config.env)
    if config.starts == "reuse":
        env = dataclasses.replace(env, reuse_initial_state=True)
    family = env.task_family
    agent = SAC(
        obs_dim=env.obs_dim,
        action_dim=env.action_dim,
        task_dim=family.task_dim,
        hidden=config.hidden,
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        tau=config.tau,
        grad_clip=config.grad_clip,
        critic_bound=config.critic_bounds,
    )
    return Trainer(config, env, agent)


def run_hyper(config: TrainConfig) -> Hyper:
    """Per-run values [runs] float32: the config's, with the swept one set to value r // seeds in run r."""
    values = {name: np.full(config.runs, getattr(config, name), np.float32) for name in SWEEPABLE}
    if config.sweep_axis is not None:
        name, swept = config.sweep_axis
        values[name] = np.repeat(np.asarray(swept, np.float32), config.seeds)
    return Hyper(**values)


def init(tr: Trainer, key: Array, hyper: Hyper) -> TrainState:
    """A fresh run: agent parameters, empty buffer, `num_envs` envs reset with prior tasks."""
    cfg, env = tr.config, tr.env
    k_agent, k_env, k_run = jax.random.split(key, 3)
    env_state = jax.vmap(partial(reset_with_prior, env))(jax.random.split(k_env, cfg.num_envs))
    one = jax.tree.map(lambda x: x[0], env_state)
    example = Transition(
        obs=one.obs,
        action=jnp.zeros((env.action_dim,), jnp.float32),
        next_obs=one.obs,
        obs_features=one.features,
        features=one.features,
        task=one.task,
    )
    return TrainState(
        agent=tr.agent.init(k_agent),
        buffer=replay.init(example, cfg.num_envs, cfg.capacity_per_env),
        env_state=env_state,
        key=k_run,
        env_steps=jnp.zeros((), jnp.int32),
        updates=jnp.zeros((), jnp.int32),
        hyper=hyper,
    )


def collect(tr: Trainer, state: TrainState, random_actions: bool = False) -> TrainState:
    """One step of all envs (policy samples, or uniform actions during warm-up), stored, auto-reset."""
    cfg, env = tr.config, tr.env
    key, k_act, k_reset = jax.random.split(state.key, 3)
    es = state.env_state
    if random_actions:
        action = jax.random.uniform(k_act, (cfg.num_envs, env.action_dim), minval=-1.0, maxval=1.0)
    else:
        action = tr.agent.act(state.agent.actor_params, k_act, es.obs, es.task)
    nxt = jax.vmap(env.step)(es, action)
    transition = Transition(
        obs=es.obs, action=action, next_obs=nxt.obs, obs_features=es.features, features=nxt.features, task=es.task
    )
    ended = jnp.logical_or(nxt.done, nxt.truncated)
    buf = replay.insert(state.buffer, transition, es.t, ended)
    nxt = jax.vmap(partial(auto_reset, env))(nxt, jax.random.split(k_reset, cfg.num_envs))
    return state.replace(buffer=buf, env_state=nxt, key=key, env_steps=state.env_steps + cfg.num_envs)


def agent_of(tr: Trainer, hyper: Hyper) -> SAC:
    """The SAC learner with this run's (traced) learning rate, discount and Polyak rate."""
    return dataclasses.replace(tr.agent, learning_rate=hyper.learning_rate, gamma=hyper.gamma, tau=hyper.tau)


def update(tr: Trainer, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
    """Sample a batch, relabel it, take one SAC step (Alg. 2)."""
    cfg, agent = tr.config, agent_of(tr, state.hyper)
    key, k_sample, k_relabel, k_sac = jax.random.split(state.key, 4)
    spec = cfg.relabel_spec
    episode_steps = tr.env.max_steps if spec.rule.trajectory_level else 0
    sample = replay.sample(state.buffer, k_sample, cfg.batch_size, episode_steps)
    values = agent.relabel_values(state.agent, spec.value_estimator) if spec.value_estimator else None
    batch, relabel_metrics = relabel(k_relabel, sample, spec, tr.env.task_family, state.hyper.relabel_fraction, values)
    agent, metrics = agent.update(state.agent, batch, k_sac)
    return state.replace(agent=agent, key=key, updates=state.updates + 1), {**metrics, **relabel_metrics}


def iteration(tr: Trainer, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
    """Collect one vector step, then `updates_per_iteration` updates; metrics are their mean."""
    state = collect(tr, state)
    state, metrics = jax.lax.scan(lambda s, _: update(tr, s), state, None, length=tr.config.updates_per_iteration)
    return state, jax.tree.map(jnp.mean, metrics)


def chunk(tr: Trainer, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
    """K iterations in one scan; metrics averaged over the chunk."""
    state, metrics = jax.lax.scan(lambda s, _: iteration(tr, s), state, None, length=tr.config.iterations_per_chunk)
    return state, jax.tree.map(jnp.mean, metrics)


def warmup(tr: Trainer, state: TrainState) -> TrainState:
    """Uniform random actions, no updates, for `warmup_steps` (App. C.1's initial collection)."""

    def body(s, _):
        return collect(tr, s, random_actions=True), None

    return jax.lax.scan(body, state, None, length=tr.config.warmup_iterations)[0]


def evaluate(tr: Trainer, actor_params, key: Array) -> dict[str, Array]:
    """Deterministic policy (tanh of the mean) on `eval_episodes` prior tasks, one full episode each:
    mean undiscounted return and success rate (first terminal before the time limit)."""

    def act(key, obs, task):
        return tr.agent.act(actor_params, None, obs, task, deterministic=True)

    episodes = rollout(tr.env, act, key, tr.config.eval_episodes)
    return {"eval_return": episodes.returns.mean(), "eval_success": episodes.success.astype(jnp.float32).mean()}


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's arrays live: a 2-D device mesh ("runs", "envs"). The run axis (seeds x sweep
    values) is split over "runs"; the env axis of the env states and the replay buffer over "envs",
    which is what is left of the devices when the runs are fewer. Everything else (parameters,
    optimizer states, keys, counters) follows its run. One device gives a 1 x 1 mesh."""

    mesh: Mesh

    @classmethod
    def of(cls, config: TrainConfig, devices: list | None = None) -> Placement:
        devices = jax.devices() if devices is None else devices
        runs = math.gcd(config.runs, len(devices))
        env_split = math.gcd(config.num_envs, len(devices) // runs)
        used = runs * env_split
        if used < len(devices) and jax.process_count() > 1:
            raise ValueError(
                f"runs={config.runs} (seeds x sweep values) and num_envs={config.num_envs} split over {used} of "
                f"the {len(devices)} devices of {jax.process_count()} processes; a multi-process run must use "
                "them all (make runs x num_envs divisible by the device count)"
            )
        return cls(Mesh(np.asarray(devices[:used]).reshape(runs, env_split), ("runs", "envs")))

    @property
    def runs(self) -> NamedSharding:
        """Leading run axis split, the rest whole."""
        return NamedSharding(self.mesh, PartitionSpec("runs"))

    def put_runs(self, x) -> Array:
        """A host array with a leading run axis (the same on every process), split over the runs."""
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, self.runs, lambda index: x[index])

    def state(self, state: TrainState) -> TrainState:
        """The sharding of every leaf of a run-batched (possibly abstract) `TrainState`."""
        env_split = NamedSharding(self.mesh, PartitionSpec("runs", "envs"))
        by_run = lambda tree: jax.tree.map(lambda _: self.runs, tree)
        by_env = lambda tree: jax.tree.map(lambda x: env_split if x.ndim >= 2 else self.runs, tree)
        return by_run(state).replace(buffer=by_env(state.buffer), env_state=by_env(state.env_state))

    @property
    def devices(self) -> int:
        return self.mesh.devices.size


def compiler_options(env: envs.Env) -> dict:
    """XLA options of the training programs: the env's, and on the CPU copy insertion by region
    analysis. Without it XLA copies whole replay-buffer columns on every iteration, because one loop
    body both writes the buffer (insert) and reads it (sample): 1.3x the chunk time on reacher_goal
    (`benchmarks/vs_brax.py`)."""
    options = {"xla_cpu_copy_insertion_use_region_analysis": True} if jax.default_backend() == "cpu" else {}
    return {**options, **(env.compiler_options() or {})}


def per_run(config: TrainConfig, per_seed: Array) -> Array:
    """Run r gets row r % seeds of a per-seed array: every sweep value sees the same seeds."""
    return jnp.tile(per_seed, (config.runs // config.seeds,) + (1,) * (per_seed.ndim - 1))


def run_keys(config: TrainConfig) -> Array:
    return per_run(config, seed_keys(config.seed, config.seeds))


@dataclasses.dataclass(frozen=True)
class Programs:
    """The jitted programs of a run, each vmapped over the leading run axis; `init(keys)` builds the
    state already placed, the others keep it where it is. `like` is the state's abstract tree
    (`jax.ShapeDtypeStruct` leaves with their shardings), e.g. to restore a checkpoint onto."""

    init: Callable
    warmup: Callable
    chunk: Callable
    evaluate: Callable
    like: TrainState


def programs(tr: Trainer, placement: Placement | None = None) -> Programs:
    """Compile-ready programs for `tr.config.runs` runs laid out by `placement` (default: all devices)."""
    place = placement or Placement.of(tr.config)
    jit = partial(jax.jit, compiler_options=compiler_options(tr.env))
    hyper = run_hyper(tr.config)
    init_runs = jax.vmap(partial(init, tr))
    abstract = jax.eval_shape(init_runs, run_keys(tr.config), hyper)
    state_sh = place.state(abstract)
    return Programs(
        init=jit(lambda keys: init_runs(keys, hyper), in_shardings=place.runs, out_shardings=state_sh),
        warmup=jit(jax.vmap(partial(warmup, tr)), donate_argnums=0, in_shardings=(state_sh,), out_shardings=state_sh),
        chunk=jit(
            jax.vmap(partial(chunk, tr)),
            donate_argnums=0,
            in_shardings=(state_sh,),
            out_shardings=(state_sh, place.runs),
        ),
        evaluate=jit(jax.vmap(partial(evaluate, tr)), in_shardings=place.runs, out_shardings=place.runs),
        like=jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, state_sh),
    )


def seed_keys(seed: int, num_seeds: int) -> Array:
    """Key of seed i = fold_in(PRNGKey(seed), i): adding seeds never changes the existing ones."""
    return jax.vmap(partial(jax.random.fold_in, jax.random.PRNGKey(seed)))(jnp.arange(num_seeds))


def eval_keys(seed: int, num_seeds: int, log_index: int) -> Array:
    """Evaluation tasks depend only on (seed, seed index, log point): every strategy sees the same ones."""
    base = jax.random.fold_in(jax.random.PRNGKey(seed), 2**31 - 1)
    keys = jax.vmap(partial(jax.random.fold_in, base))(jnp.arange(num_seeds))
    return jax.vmap(partial(jax.random.fold_in, data=log_index))(keys)


@dataclasses.dataclass(frozen=True)
class Compiled:
    """The ahead-of-time compiled chunk, warm-up (None when resuming) and evaluation of `Programs`, and
    the seconds compiling took."""

    chunk: Callable
    warmup: Callable | None
    evaluate: Callable
    seconds: float

    def peak_bytes(self, state_bytes: int = 0) -> int:
        """Bytes one device needs at once to run them, from XLA's own memory analysis of the compiled
        programs: arguments (the state) + outputs - donated aliases + temporaries, the largest program's;
        the evaluation runs beside the training state (`state_bytes`)."""

        def peak(fn) -> int:
            m = fn.memory_analysis()
            if m is None:  # a backend without the analysis
                return 0
            return m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes

        training = max(peak(fn) for fn in (self.chunk, self.warmup) if fn is not None)
        return max(training, state_bytes + peak(self.evaluate))


def compile_programs(prog: Programs, warmup: bool = True) -> Compiled:
    """Compile the chunk, the evaluation (and the warm-up) for the state `prog.like`, before any state
    exists."""
    t0 = time.perf_counter()
    chunk_fn = prog.chunk.lower(prog.like).compile()
    warmup_fn = prog.warmup.lower(prog.like).compile() if warmup else None
    keys = prog.like.key  # [runs] keys placed as the runs are: the evaluation keys' shape and sharding
    evaluate_fn = prog.evaluate.lower(prog.like.agent.actor_params, keys).compile()
    return Compiled(chunk_fn, warmup_fn, evaluate_fn, time.perf_counter() - t0)


def state_bytes_per_device(like: TrainState) -> int:
    """Bytes of the training state on each device, from its abstract tree (nothing is allocated)."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(like))


def device_memory() -> int:
    """Memory of one local device: the allocator's limit on an accelerator, or on the CPU the host's
    physical memory shared by its devices."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // jax.local_device_count()


def to_host(tree):
    """Numpy copies of (possibly multi-process) global arrays: every process gets the whole value."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


class NonFiniteError(RuntimeError):
    """Training produced a NaN or inf; the message names the quantity, run and env step."""


def check_finite(metrics: dict, env_steps: int) -> None:
    """Raise NonFiniteError for the first metric (host arrays, one value per run) that is NaN or inf."""
    for name, values in metrics.items():
        finite = np.isfinite(np.asarray(values))
        if not finite.all():
            run = int(np.argmin(finite.reshape(-1)))
            raise NonFiniteError(f"non-finite {name} at env step {env_steps} (run index {run}); training stopped")


def run(
    config: TrainConfig,
    log: Callable[[dict], None],
    progress: bool = True,
    start: tuple[TrainState, int] | None = None,
    on_chunk: Callable[[int, TrainState], None] | None = None,
    compiled: Compiled | None = None,
) -> tuple[dict, TrainState]:
    """Train `config.runs` runs (seeds x sweep values); `log(record)` receives one record per evaluation
    (per-run lists, run r = value r // seeds, seed index r % seeds).
    `start` = (state, chunks done) resumes a run (warm-up and the first record are not repeated);
    `on_chunk(chunks_done, state)` runs after every chunk (e.g. to checkpoint); `compiled` are the
    programs already compiled for this config (`compile_programs`), else they are compiled here.
    Returns the summary and the final (seed-batched) state."""
    from tqdm.auto import tqdm

    tr = build(config)
    place = Placement.of(config)
    prog = programs(tr, place)
    has_success = tr.env.task_family.has_success
    t_start = time.perf_counter()
    if start is None:
        state, done = prog.init(place.put_runs(run_keys(config))), 0
    else:
        state, done = jax.device_put(start[0], jax.tree.map(lambda x: x.sharding, prog.like)), start[1]
    buffer_mib = replay.nbytes(state.buffer) / 2**20
    mesh = dict(place.mesh.shape)
    logger.info(
        "replay buffer: %d run(s) x %d envs x %d steps = %.1f MiB on %d %s device(s) (%d for runs x %d for envs)",
        config.runs, config.num_envs, config.capacity_per_env, buffer_mib, place.devices, jax.devices()[0].platform,
        mesh["runs"], mesh["envs"],
    )  # fmt: skip
    logger.info("budget: %s", config.budget_text)
    compiled = compiled or compile_programs(prog, warmup=start is None)
    chunk_fn, warm, compile_s = compiled.chunk, compiled.warmup, compiled.seconds
    per_chunk = config.iterations_per_chunk * config.num_envs
    warmup_steps = config.warmup_iterations * config.num_envs
    bar = tqdm(
        total=config.total_env_steps,
        initial=warmup_steps + done * per_chunk if start is not None else 0,
        unit="step",
        disable=not progress,
        desc=f"{config.env}/{config.relabel}",
    )
    if start is None:
        state = jax.block_until_ready(warm(state))
        bar.update(warmup_steps)

    def record(log_index: int, train_metrics: dict) -> dict:
        keys = per_run(config, eval_keys(config.seed, config.seeds, log_index))
        ev = to_host(compiled.evaluate(state.agent.actor_params, place.put_runs(keys)))
        counts = to_host({"env_steps": state.env_steps, "updates": state.updates})
        rec = {
            "env_steps": int(counts["env_steps"][0]),
            "updates": int(counts["updates"][0]),
            "wall_s": round(time.perf_counter() - t_start, 3),
            "eval_return": ev["eval_return"].tolist(),
        }
        if has_success:
            rec["eval_success"] = ev["eval_success"].tolist()
        rec.update({k: v.tolist() for k, v in train_metrics.items()})
        return rec

    if start is None:
        log(record(0, {}))
    train_s = 0.0
    if done >= config.num_chunks:
        raise ValueError(f"the run has done {done} of {config.num_chunks} chunks: nothing left to train")
    for i in range(done, config.num_chunks):
        t0 = time.perf_counter()
        state, metrics = chunk_fn(state)
        metrics = to_host(metrics)
        train_s += time.perf_counter() - t0
        check_finite(metrics, int(to_host(state.env_steps)[0]))
        rec = record(i + 1, metrics)
        log(rec)
        if on_chunk is not None:
            on_chunk(i + 1, state)
        bar.update(per_chunk)
        shown = {"return": f"{np.mean(rec['eval_return']):.1f}"}
        if has_success:
            shown["success"] = f"{np.mean(rec['eval_success']):.2f}"
        bar.set_postfix(shown)
    bar.close()
    chunks_run = config.num_chunks - done
    summary = {k: v for k, v in rec.items() if k in ("env_steps", "updates", "eval_return", "eval_success")}
    summary.update(
        wall_s=round(time.perf_counter() - t_start, 3),
        compile_s=round(compile_s, 3),
        train_s=round(train_s, 3),
        # throughput of the compiled chunks, all runs together, warm-up and evaluation excluded
        env_steps_per_s=round(config.runs * chunks_run * per_chunk / train_s, 1),
        updates_per_s=round(
            config.runs * chunks_run * config.iterations_per_chunk * config.updates_per_iteration / train_s, 1
        ),
    )
    return summary, state
