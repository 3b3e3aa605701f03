"""Training-loop tests (Alg. 2): every relabel strategy end to end through `run`, the env-step and
update accounting against hand-computed counts, a chunk that compiles once and donates its state,
the seed-axis prefix property (seed 0 of a 2-seed run is bitwise the same as of a 1-seed run on CPU),
determinism, the NaN guard, `evaluate` (including a hand-built greedy policy whose returns are
recomputed in NumPy) and the buffer after warm-up.

Compilation dominates on CPU, so every `run` of one config happens once per module (`run_once`), the
jitted programs are shared by a module fixture, XLA optimizations are off (`fast_compilation`), and a
session-local persistent XLA cache lets the init / warm-up / evaluate programs, identical across
strategies and repeated runs, compile once.
"""

from __future__ import annotations

import collections
import functools
import logging

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG

from hipi_jax import envs, errors, programs, runner, training
from hipi_jax.config import TrainConfig
from hipi_jax.envs.base import reset_with_prior
from hipi_jax.relabel import STRATEGIES

# Hand-computed accounting of BASE: warm-up ceil(9 / 2) = 5 vector steps (10 env steps); a chunk is
# 25 // 2 = 12 vector steps; 40 - 10 = 30 steps left -> ceil(30 / 24) = 2 chunks; 2 x 1.0 = 2 updates
# per vector step. Per seed: env steps 10 -> 34 -> 58, updates 0 -> 24 -> 48.
BASE = TINY_CONFIG  # see the hand-computed accounting above
WARMUP_ITERATIONS, ITERATIONS_PER_CHUNK, NUM_CHUNKS, UPDATES_PER_ITERATION = 5, 12, 2, 2
EXPECTED_ENV_STEPS = [10, 34, 58]
EXPECTED_UPDATES = [0, 24, 48]
MAX_STEPS = envs.make("point_goal").max_steps
PER_SEED_KEYS = ("env_steps", "updates", "wall_s")  # scalars in a record; every other entry is a per-seed list
SUMMARY_KEYS = {"env_steps", "updates", "eval_return", "eval_success", "wall_s", "compile_s", "train_s",
                "env_steps_per_s", "updates_per_s"}  # fmt: skip


pytestmark = pytest.mark.usefixtures("fast_compilation")


_RUNS: dict[TrainConfig, tuple[list[dict], dict, training.TrainState]] = {}


def run_once(config: TrainConfig) -> tuple[list[dict], dict, training.TrainState]:
    """(records, summary, final state) of `runner.loop(programs.build(config))`, computed once per module."""
    if config not in _RUNS:
        records = []
        summary, state = runner.loop(programs.build(config), records.append, progress=False)
        _RUNS[config] = records, summary, state
    return _RUNS[config]


def without_wall(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.fixture(scope="module")
def compiled():
    """(trainer, programs, trace log) of BASE; `chunk` is wrapped so every trace is counted."""
    tr = training.build(BASE)
    traces = []
    original = training.chunk

    @functools.wraps(original)
    def counted_chunk(tr, state):
        traces.append(1)  # runs once per trace, never per call of the compiled program
        return original(tr, state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "chunk", counted_chunk)  # `programs` binds `chunk` when it is called
        prog = programs.programs(tr)
    return tr, prog, traces


def warm_state(prog: programs.Programs, config: TrainConfig = BASE) -> training.TrainState:
    return prog.warmup(prog.init(training.seed_keys(config.run.seed, config.run.seeds)))


# ---- derived quantities and accounting --------------------------------------------------------------


def test_base_config_derived_quantities_match_the_hand_computation():
    assert BASE.warmup_iterations == WARMUP_ITERATIONS
    assert BASE.iterations_per_chunk == ITERATIONS_PER_CHUNK
    assert BASE.num_chunks == NUM_CHUNKS
    assert BASE.updates_per_iteration == UPDATES_PER_ITERATION
    assert BASE.capacity_per_env == 32


def test_counters_follow_the_config_accounting():
    records, summary, state = run_once(BASE)
    assert [r["env_steps"] for r in records] == EXPECTED_ENV_STEPS
    assert [r["updates"] for r in records] == EXPECTED_UPDATES
    # the same numbers from the derived properties
    n = BASE.run.num_envs
    assert [r["env_steps"] for r in records] == [
        (BASE.warmup_iterations + k * BASE.iterations_per_chunk) * n for k in range(BASE.num_chunks + 1)
    ]
    assert [r["updates"] for r in records] == [
        k * BASE.iterations_per_chunk * BASE.updates_per_iteration for k in range(BASE.num_chunks + 1)
    ]
    np.testing.assert_array_equal(state.env_steps, [58, 58])
    np.testing.assert_array_equal(state.updates, [48, 48])
    assert summary["env_steps"] == 58 and summary["updates"] == 48
    # every vector step was stored: 29 per env, below the capacity of 32, so no wrap yet
    np.testing.assert_array_equal(state.buffer.size, [29, 29])
    np.testing.assert_array_equal(state.buffer.cursor, [29, 29])


def test_summary_throughput_is_trained_steps_over_train_time():
    _, summary, _ = run_once(BASE)
    assert set(summary) == SUMMARY_KEYS
    train_s = summary["train_s"]  # rounded to 1 ms, so bracket the exact quotient
    assert train_s > 0
    for key, per_seed in (("env_steps_per_s", 48), ("updates_per_s", 48)):  # 2 chunks x 12 x (2 envs | 2 updates)
        work = BASE.run.seeds * per_seed
        low, high = work / (train_s + 5e-4), work / max(train_s - 5e-4, 1e-9)
        assert low - 0.05 <= summary[key] <= high + 0.05, (key, summary[key], train_s)
    assert summary["wall_s"] >= summary["train_s"]


# ---- every strategy end to end ---------------------------------------------------------------------

STRATEGY_CONFIGS = [BASE.replace(relabel=s) for s in STRATEGIES] + [
    BASE.replace(relabel="inverse_rl", relabel_values="backup"),
    BASE.replace(relabel="inverse_rl", candidates="tasks+future"),
    BASE.replace(relabel="inverse_rl_released", episode_ends="released"),
]


def _all_finite(value) -> bool:
    return bool(np.all(np.isfinite(np.asarray(value, dtype=float))))


@pytest.mark.parametrize(
    "config",
    STRATEGY_CONFIGS,
    ids=lambda c: f"{c.relabel.strategy}-{c.relabel.values}-{c.relabel.candidates}-{c.relabel.episode_ends}",
)
def test_every_strategy_trains_with_finite_metrics(config):
    records, summary, state = run_once(config)
    assert len(records) == config.num_chunks + 1  # the initial evaluation, then one per chunk
    for rec in records:
        assert {"env_steps", "updates", "wall_s", "eval_return", "eval_success"} <= set(rec)
        for key, value in rec.items():
            if key in PER_SEED_KEYS:
                assert isinstance(value, int | float), (key, value)
            else:
                assert isinstance(value, list) and len(value) == config.run.seeds, (key, value)
            assert _all_finite(value), (key, value)
        assert all(0.0 <= s <= 1.0 for s in rec["eval_success"])
        assert all(-MAX_STEPS <= r <= 0 for r in rec["eval_return"])  # sparse reward in {-1, 0}
    train_metrics = set(records[-1]) - set(records[0])
    assert {"critic_loss", "actor_loss", "alpha", "relabel_changed", "batch_reward"} <= train_metrics
    assert [r["env_steps"] for r in records] == EXPECTED_ENV_STEPS
    assert [r["updates"] for r in records] == EXPECTED_UPDATES
    assert set(summary) == SUMMARY_KEYS
    assert all(_all_finite(v) for v in summary.values())
    assert summary["env_steps_per_s"] > 0 and summary["updates_per_s"] > 0
    assert all(_all_finite(x) for x in jax.tree.leaves(state.agent))

    changed = np.asarray(records[-1]["relabel_changed"])
    if config.relabel.strategy == "none":
        np.testing.assert_array_equal(changed, 0.0)
    elif config.relabel.strategy in (
        "random",
        "final",
        "future",
        "future_rest_goals",
        "future_self_pairs",
        "future_on_state",
    ):
        # exactly round(0.5 x 8) = 4 samples per batch take a (continuous, hence new) task
        np.testing.assert_allclose(changed, 0.5, atol=1e-6)
    elif config.relabel.strategy in (
        "final_released",
        "future_released",
        "inverse_rl_released",
        "random_released",
        "future_share45",
        "inverse_rl_released_tasks",
    ):  # random shares
        assert np.all(changed > 0.0) and np.all(changed < 1.0)
    elif config.relabel.strategy.endswith("_released_defaults"):  # every sample takes a (continuous) goal
        np.testing.assert_allclose(changed, 1.0, atol=1e-6)
    else:  # inverse RL, advantage and air may pick a sample's own task
        assert np.all(changed > 0.0) and np.all(changed <= 0.5 + 1e-6)
    if config.relabel.rule.trajectory_level:
        assert "episode_return_chosen" in train_metrics
    elif config.relabel.value_estimator is not None:
        assert {"posterior_entropy", "soft_q_chosen", "soft_q_commanded"} <= train_metrics
    assert {"relabel_success", "relabel_kept"} <= train_metrics


# ---- one compiled chunk ------------------------------------------------------------------------------


def test_chunk_compiles_once_and_donates_its_state(compiled):
    tr, prog, traces = compiled
    s1 = warm_state(prog)
    fresh = warm_state(prog)  # equal to s1; read on the host instead of s1, whose host copy would block donation
    s2, m2 = prog.chunk(s1)
    assert all(x.is_deleted() for x in jax.tree.leaves(s1)), "the chunk's input state must be donated"
    with pytest.raises(RuntimeError, match="deleted"):
        np.asarray(s1.env_steps)
    s3, m3 = prog.chunk(s2)
    assert len(traces) == 1 and prog.chunk._cache_size() == 1, "a second chunk retraced"
    chex.assert_trees_all_equal_shapes_and_dtypes(s3, fresh)
    chex.assert_trees_all_equal_shapes_and_dtypes(m2, m3)
    k = BASE.iterations_per_chunk
    np.testing.assert_array_equal(s3.env_steps, np.asarray(fresh.env_steps) + 2 * k * BASE.run.num_envs)
    np.testing.assert_array_equal(s3.updates, np.asarray(fresh.updates) + 2 * k * BASE.updates_per_iteration)
    assert all(v.shape == (BASE.run.seeds,) for v in m3.values())


def test_buffer_after_warmup_holds_warmup_iterations_per_env(compiled):
    _, prog, _ = compiled
    state = warm_state(prog)
    w, n = BASE.warmup_iterations, BASE.run.num_envs
    np.testing.assert_array_equal(state.buffer.size, [w] * BASE.run.seeds)
    np.testing.assert_array_equal(state.buffer.cursor, [w] * BASE.run.seeds)
    np.testing.assert_array_equal(state.env_steps, [w * n] * BASE.run.seeds)
    np.testing.assert_array_equal(state.updates, [0] * BASE.run.seeds)
    action = np.asarray(state.buffer.data.action)  # [seeds, num_envs, capacity, action_dim]
    assert action.shape[:3] == (BASE.run.seeds, n, BASE.capacity_per_env)
    stored, empty = action[:, :, :w], action[:, :, w:]
    assert np.all(np.abs(stored) <= 1.0) and np.all(np.any(stored != 0.0, axis=-1))  # uniform random actions
    np.testing.assert_array_equal(empty, 0.0)
    np.testing.assert_array_equal(np.asarray(state.buffer.step)[:, :, :w], np.broadcast_to(np.arange(w), (2, n, w)))


# ---- seeds and determinism ---------------------------------------------------------------------------


def test_seed_keys_prefix_property_and_distinct_seeds():
    np.testing.assert_array_equal(training.seed_keys(0, 3)[:2], training.seed_keys(0, 2))
    np.testing.assert_array_equal(training.seed_keys(7, 5)[:1], training.seed_keys(7, 1))
    np.testing.assert_array_equal(training.eval_keys(0, 3, 4)[:2], training.eval_keys(0, 2, 4))
    keys = np.asarray(training.seed_keys(0, 4))
    assert len({tuple(k) for k in keys}) == 4
    assert not np.array_equal(training.seed_keys(0, 2), training.seed_keys(1, 2))
    assert not np.array_equal(training.eval_keys(0, 2, 1), training.eval_keys(0, 2, 2))
    # evaluation keys are not any seed's training key
    assert not set(map(tuple, np.asarray(training.eval_keys(0, 4, 0)))) & set(map(tuple, keys))


def test_adding_seeds_leaves_seed_zero_unchanged():
    """Seed 0 of 1 run and of 2 runs agree up to float rounding: the vmapped seed axis may change how XLA
    orders a reduction (bitwise under jaxlib 0.10 with optimizations off, not under 0.9.2)."""
    records2, _, state2 = run_once(BASE)
    records1, _, state1 = run_once(BASE.replace(seeds=1))
    assert len(records1) == len(records2)
    for r1, r2 in zip(records1, records2, strict=True):
        assert set(r1) == set(r2)
        for key in r1:
            if key == "wall_s":
                continue
            expected = r2[key] if key in PER_SEED_KEYS else r2[key][:1]
            np.testing.assert_allclose(r1[key], expected, rtol=1e-5, atol=1e-6, err_msg=key)
    seed0 = jax.tree.map(lambda x: x[:1], state2.agent)
    for a, b in zip(jax.tree.leaves(state1.agent), jax.tree.leaves(seed0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_seeds_differ_from_each_other():
    records, _, state = run_once(BASE)
    final = records[-1]
    assert final["critic_loss"][0] != final["critic_loss"][1]
    assert final["actor_loss"][0] != final["actor_loss"][1]
    params = [jax.tree.map(lambda x, i=i: x[i], state.agent.actor_params) for i in range(BASE.run.seeds)]
    assert not leaves_equal(params[0], params[1])


def test_same_config_same_seed_is_deterministic():
    records, _, state = run_once(BASE)
    again = []
    _, state_again = runner.loop(programs.build(BASE), again.append, progress=False)
    assert without_wall(again) == without_wall(records)
    assert leaves_equal(state_again.agent, state.agent)
    assert leaves_equal(state_again.buffer, state.buffer)


def test_another_seed_gives_other_results():
    records, _, state = run_once(BASE)
    other, _, other_state = run_once(BASE.replace(seed=1))
    assert without_wall(other) != without_wall(records)
    assert [r["env_steps"] for r in other] == EXPECTED_ENV_STEPS  # the accounting does not depend on the seed
    for key in ("critic_loss", "actor_loss"):
        assert other[-1][key] != records[-1][key]
    assert not leaves_equal(other_state.agent.actor_params, state.agent.actor_params)


# ---- the NaN guard -----------------------------------------------------------------------------------


def test_check_finite_passes_finite_metrics():
    runner.check_finite({"critic_loss": np.array([1.0, 2.0]), "alpha": np.float32(0.5)}, env_steps=10)
    runner.check_finite({}, env_steps=0)


@pytest.mark.parametrize(
    ("bad", "seed"),
    [(np.array([np.nan, 1.0]), 0), (np.array([1.0, np.nan]), 1), (np.array([0.0, 0.0, np.inf]), 2),
     (np.array([-np.inf]), 0)],
)  # fmt: skip
def test_check_finite_names_quantity_run_and_step(bad, seed):
    metrics = {"critic_loss": np.ones_like(bad), "actor_loss": bad, "alpha": np.ones_like(bad)}
    with pytest.raises(errors.NonFiniteError, match=rf"non-finite actor_loss at env step 123 \(run index {seed}\)"):
        runner.check_finite(metrics, env_steps=123)


def test_check_finite_error_is_a_runtime_error():
    assert issubclass(errors.NonFiniteError, RuntimeError)


def test_run_stops_on_a_diverging_learning_rate():
    """lr = 1e30: the first Adam steps blow every parameter up, so the first chunk's losses are not finite."""
    config = BASE.replace(learning_rate=1e30)
    records = []
    with pytest.raises(errors.NonFiniteError, match=r"non-finite \w+ at env step 34 \(run index [01]\)"):
        runner.loop(programs.build(config), records.append, progress=False)
    assert len(records) == 1 and records[0]["env_steps"] == 10  # only the evaluation before training was logged


# ---- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_is_deterministic_and_bounded(compiled):
    tr, prog, _ = compiled
    params = warm_state(prog).agent.actor_params
    keys = training.eval_keys(BASE.run.seed, BASE.run.seeds, 0)
    first = jax.device_get(prog.evaluate(params, keys))
    second = jax.device_get(prog.evaluate(params, keys))
    assert set(first) == {"eval_return", "eval_success"}
    for key in first:
        assert first[key].shape == (BASE.run.seeds,)
        np.testing.assert_array_equal(first[key], second[key])
    assert np.all(np.isfinite(first["eval_return"]))
    assert np.all((first["eval_return"] >= -tr.env.max_steps) & (first["eval_return"] <= 0.0))
    assert np.all((first["eval_success"] >= 0.0) & (first["eval_success"] <= 1.0))
    # success is a fraction of eval_episodes
    n = BASE.evaluation.episodes
    np.testing.assert_allclose(first["eval_success"] * n, np.round(first["eval_success"] * n), atol=1e-6)


def greedy_actor_params(like):
    """Actor params whose deterministic action is tanh(10 (goal − position)) for point_goal (obs = position,
    task = goal): hidden units 0-1 carry relu(goal − pos), units 2-3 relu(pos − goal), the output subtracts."""
    p = jax.tree.map(np.zeros_like, jax.device_get(like))
    mlp = p["params"]["mlp"]
    for s in range(mlp["in_0"]["kernel"].shape[0]):  # leading seed axis
        for d in range(2):
            mlp["in_0"]["kernel"][s, d, d], mlp["in_0"]["kernel"][s, d, 2 + d] = -1.0, 1.0  # position
            mlp["in_1"]["kernel"][s, d, d], mlp["in_1"]["kernel"][s, d, 2 + d] = 1.0, -1.0  # goal
            mlp["out"]["kernel"][s, d, d], mlp["out"]["kernel"][s, 2 + d, d] = 10.0, -10.0  # mean; log-std 0
        for u in range(4):
            mlp["hidden_0"]["kernel"][s, u, u] = 1.0
    return jax.tree.map(jnp.asarray, p)


def numpy_greedy_episode(start: np.ndarray, goal: np.ndarray, max_steps: int, speed: float, margin: float):
    """(return, success) of the greedy policy on point_goal, in float32 NumPy."""
    pos, ret = start.astype(np.float32), 0.0
    for _ in range(max_steps):
        pos = np.clip(pos + np.float32(speed) * np.tanh(np.float32(10.0) * (goal - pos)), -1.0, 1.0)
        hit = np.linalg.norm(pos - goal) <= margin
        ret += float(hit) - 1.0
        if hit:
            return ret, True
    return ret, False


def test_evaluate_scores_a_greedy_policy_as_numpy_does(compiled):
    tr, prog, _ = compiled
    env = tr.env
    params = greedy_actor_params(warm_state(prog).agent.actor_params)
    keys = training.eval_keys(3, BASE.run.seeds, 5)
    ev = jax.device_get(prog.evaluate(params, keys))
    np.testing.assert_array_equal(ev["eval_success"], 1.0)  # the whole box is reachable within 50 steps
    for s in range(BASE.run.seeds):
        starts = jax.device_get(
            jax.vmap(functools.partial(reset_with_prior, env))(jax.random.split(keys[s], BASE.evaluation.episodes))
        )
        episodes = [
            numpy_greedy_episode(starts.obs[i], starts.task[i], env.max_steps, env.max_speed, env.task_family.margin)
            for i in range(BASE.evaluation.episodes)
        ]
        assert all(success for _, success in episodes)
        assert -env.max_steps < ev["eval_return"][s] < 0.0
        np.testing.assert_allclose(ev["eval_return"][s], np.mean([r for r, _ in episodes]), atol=1e-5)


def test_run_returns_summary_and_final_state():
    """`run` hands back (summary, state); the CLI unpacks both."""
    _, summary, state = run_once(BASE)
    assert isinstance(summary, dict) and isinstance(state, training.TrainState)
    assert summary["env_steps"] == int(state.env_steps[0]) and summary["updates"] == int(state.updates[0])


@pytest.mark.parametrize("starts", ["fresh", "reuse"])
def test_starts_fresh_draws_a_new_start_and_reuse_the_first_one(starts):
    """After an episode ends, `--starts reuse` restarts the env where its first episode started (Brax's
    AutoResetWrapper); `fresh` draws a new start. Either way the task is drawn anew from the prior."""
    tr = training.build(BASE.replace(starts=starts))
    assert tr.env.reuse_initial_state == (starts == "reuse")
    first = reset_with_prior(tr.env, jax.random.key(0))
    moved = tr.env.step(first, jnp.ones((tr.env.action_dim,)))
    ended = moved.replace(truncated=jnp.ones((), bool))
    again = envs.auto_reset(tr.env, ended, jax.random.key(1))
    assert int(again.t) == 0 and not np.array_equal(again.task, first.task)
    assert np.array_equal(again.obs, first.obs) == (starts == "reuse")


def compiled_names(fn) -> collections.Counter:
    """How often each program is compiled while `fn()` runs (JAX's log of compilations, by name)."""
    names: collections.Counter = collections.Counter()

    class Count(logging.Handler):
        def emit(self, record):
            if (text := record.getMessage()).startswith("Compiling "):
                names[text.split()[1]] += 1

    handler, jax_log = Count(), logging.getLogger("jax")
    jax_log.addHandler(handler)
    try:
        with jax.log_compiles(True):
            fn()
    finally:
        jax_log.removeHandler(handler)
    return names


def test_every_program_of_a_run_is_compiled_once(tmp_path):
    """`runner.train` builds and compiles the programs once (`programs.build`) and runs them: the state's
    init, the warm-up, the chunk and the evaluation compile once each; a resumed run (a larger budget)
    compiles the chunk and the evaluation once and no warm-up."""
    ours = ("jit(init)", "jit(warmup)", "jit(chunk)", "jit(evaluate)")
    out = tmp_path / "run"
    fresh = compiled_names(lambda: runner.train(BASE, out, progress=False))
    assert {name: fresh[name] for name in ours} == dict.fromkeys(ours, 1), fresh
    longer = BASE.replace(env_steps=2 * BASE.run.env_steps)
    resumed = compiled_names(lambda: runner.train(longer, out, resume=True, progress=False))
    assert {name: resumed[name] for name in ours} == {"jit(init)": 0, "jit(warmup)": 0, "jit(chunk)": 1,
                                                      "jit(evaluate)": 1}, resumed  # fmt: skip
