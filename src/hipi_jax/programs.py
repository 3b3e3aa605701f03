"""A config turned into its compiled programs, once: `build(config)` -> `Built`.

The device functions of training.py (init, warm-up, chunk, evaluation) become jitted programs vmapped
over the run axis (`programs`), laid out over the devices by a `Placement`, checked against the
device's memory (the state's size, then XLA's memory analysis of the compiled programs) and compiled
ahead of time (`compile_programs`). Everything that runs them (the runner, HIPI-BC's expert, the
benchmarks) takes the one `Built` object: nothing is rebuilt or compiled twice.
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
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hipi_jax import envs, training
from hipi_jax.config import TrainConfig
from hipi_jax.training import Trainer, TrainState

Array = jax.Array
log = logging.getLogger("hipi_jax")


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
        env_split = math.gcd(config.run.num_envs, len(devices) // runs)
        used = runs * env_split
        if used < len(devices) and jax.process_count() > 1:
            raise ValueError(
                f"runs={config.runs} (seeds x sweep values) and num_envs={config.run.num_envs} split over {used} of "
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
    hyper = training.run_hyper(tr.config)
    init_runs = jax.vmap(partial(training.init, tr))
    abstract = jax.eval_shape(init_runs, training.run_keys(tr.config), hyper)
    state_sh = place.state(abstract)
    return Programs(
        init=jit(partial(init_runs, hyper=hyper), in_shardings=place.runs, out_shardings=state_sh),
        warmup=jit(
            jax.vmap(partial(training.warmup, tr)), donate_argnums=0, in_shardings=(state_sh,), out_shardings=state_sh
        ),
        chunk=jit(
            jax.vmap(partial(training.chunk, tr)),
            donate_argnums=0,
            in_shardings=(state_sh,),
            out_shardings=(state_sh, place.runs),
        ),
        evaluate=jit(jax.vmap(partial(training.evaluate, tr)), in_shardings=place.runs, out_shardings=place.runs),
        like=jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, state_sh),
    )


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


@dataclasses.dataclass(frozen=True, eq=False)
class Built:
    """Everything a run of `config` needs that does not change while it runs: the trainer, where the
    arrays live, the jitted programs and their compiled forms."""

    config: TrainConfig
    trainer: Trainer
    placement: Placement
    programs: Programs
    compiled: Compiled


def build(config: TrainConfig, *, warmup: bool = True) -> Built:
    """Build and compile the programs of `config` (the warm-up too unless `warmup` is False: a resumed
    run does not repeat it). Raises ValueError, before compiling or allocating anything where it can,
    when the training state or XLA's memory analysis of the programs exceeds a device's memory."""
    tr = training.build(config)
    place = Placement.of(config)
    prog = programs(tr, place)
    have = device_memory()
    state = state_bytes_per_device(prog.like)
    if state > have:
        raise ValueError(memory_message(config, prog, state, have, "the training state"))
    log.info("compiling the training programs for %s (and checking their memory) ...", config.run.env)
    compiled = compile_programs(prog, warmup=warmup)
    if (need := compiled.peak_bytes(state)) > have:
        raise ValueError(memory_message(config, prog, need, have, "training (XLA's memory analysis)"))
    return Built(config, tr, place, prog, compiled)


def memory_message(config: TrainConfig, prog: Programs, need: int, have: int, what: str) -> str:
    """The refusal of a run that needs `need` bytes per device where a device has `have`."""
    buffer = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(prog.like.buffer))
    return (
        f"{what} needs {need / 2**30:.2f} GiB per device (replay buffers: {buffer / 2**30:.2f} GiB in all for "
        f"buffer_size={config.run.buffer_size} x {config.runs} run(s)) but a {jax.devices()[0].platform} device has "
        f"{have / 2**30:.2f} GiB; lower --batch-size, --num-envs, --buffer-size, --eval-episodes, --seeds or the sweep"
    )


def to_host(tree):
    """Numpy copies of (possibly multi-process) global arrays: every process gets the whole value."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)
