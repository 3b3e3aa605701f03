"""Relabel tests: the inverse-RL kernel (Eq. 7-8, Alg. 1) against a float64 NumPy reference, its
invariances and −inf handling, Fig. 2's two-trajectory example, the exact relabel mask, and every
strategy on hand-made samples with hand-computed tasks, rewards and done flags."""

from __future__ import annotations

import math

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipi_jax import relabel as rl
from hipi_jax.tasks import Discrete, GoalReach, Linear
from hipi_jax.types import Sample, Transition

F32_MAX = float(np.finfo(np.float32).max)
NINF = -np.inf
BIG = float(np.float32(1e30))

# Jitted once; hypothesis draws fixed shapes so these never retrace per example.
_log_probs = jax.jit(rl.inverse_rl_log_probs, static_argnames="use_partition")
_relabel_mask = jax.jit(rl.relabel_mask, static_argnums=0)


def reference_log_probs(values, use_partition: bool = True) -> np.ndarray:
    """float64 reference of log q = log_softmax_j(v[i, j] − log Z_j), log Z_j = log mean_i exp v[i, j].

    Written with column and row shifts so it stays exact where the float64 sum would round
    (e.g. log Z of a column of ±1e30). Mirrors the documented edge rules: +inf is clipped to the
    float32 max, a column that is −inf everywhere keeps log Z = 0, a row that is −inf everywhere
    gets the uniform distribution."""
    v = np.minimum(np.asarray(values, np.float64), F32_MAX)
    num_samples = v.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        if use_partition:
            col_max = v.max(axis=0)
            col_max = np.where(np.isfinite(col_max), col_max, 0.0)
            s = v - col_max
            log_z = np.log(np.exp(s).sum(axis=0)) - math.log(num_samples)  # log Z_j − col_max_j
            log_z = np.where(np.isfinite(log_z), log_z, 0.0)
        else:
            s, log_z = v, np.zeros(v.shape[1])
        row_max = s.max(axis=1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)
        u = (s - row_max) - log_z
        u = np.where(np.all(u == -np.inf, axis=1, keepdims=True), 0.0, u)
        u = u - u.max(axis=1, keepdims=True)
        return u - np.log(np.exp(u).sum(axis=1, keepdims=True))


def assert_matches_reference(values, use_partition: bool, atol: float = 1e-5):
    values = np.asarray(values, np.float32)
    out = np.asarray(_log_probs(values, use_partition=use_partition))
    ref = reference_log_probs(values, use_partition)
    chex.assert_shape(out, values.shape)
    assert not np.any(np.isnan(out))
    np.testing.assert_allclose(np.exp(out), np.exp(ref), rtol=0, atol=atol)
    both_finite = np.isfinite(out) & np.isfinite(ref) & (ref > -20.0)  # log probs where they matter
    np.testing.assert_allclose(out[both_finite], ref[both_finite], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(ref))  # exact zeros where impossible


# ---------------------------------------------------------------- inverse_rl_log_probs vs reference


@pytest.mark.parametrize("use_partition", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (4, 4), (7, 3), (3, 9), (32, 16)])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_log_probs_match_reference_on_random_inputs(shape, scale, use_partition):
    values = np.random.default_rng([*shape, int(scale)]).standard_normal(shape) * scale
    assert_matches_reference(values, use_partition)


def _pm(scale, shape=(6, 4), seed=0):
    return np.random.default_rng(seed).choice([-1.0, 1.0], shape) * scale


def _normal(scale, shape=(6, 4), seed=1):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def _column0_times(scale, shape=(6, 4), seed=2):
    v = np.random.default_rng(seed).standard_normal(shape)
    v[:, 0] *= scale
    return v


# Cases whose exact answer a float32 implementation can reach within 1e-5 (checked: shifting by the
# column max first gets them all to <1e-6).
_EXTREME_CASES = [
    pytest.param(np.where(np.eye(4), 1e30, -1e30), True, id="pm1e30-permutation"),
    pytest.param(np.where(np.eye(5, 3, k=0), 3e4, -3e4), True, id="pm3e4-diagonal"),
    pytest.param(_pm(1e30), False, id="pm1e30-no-partition"),
    pytest.param(_pm(3e4), False, id="pm3e4-no-partition"),
    pytest.param(_normal(3e4), False, id="normal3e4-no-partition"),
    pytest.param(_column0_times(1e6), False, id="col0x1e6-no-partition"),
    pytest.param(_normal(1e30), True, id="normal1e30"),  # every column is one-hot in effect
    # the O(1) part of log Z (how many samples attain the column max) must survive |v| >> 1/eps32
    pytest.param([[1e30, 1e30], [1e30, -1e30], [1e30, -1e30], [1e30, -1e30]], True, id="pm1e30-counts"),
    pytest.param(_normal(3e4), True, id="normal3e4"),
    pytest.param(_column0_times(1e6), True, id="col0x1e6"),
]


@pytest.mark.parametrize("values, use_partition", _EXTREME_CASES)
def test_log_probs_match_reference_on_extreme_inputs(values, use_partition):
    assert_matches_reference(values, use_partition)


def test_partition_counts_hand_case():
    """[[a, a], [a, −a] × 3], a = 20: log Z_0 = a, log Z_1 = a − log 4 (+ O(e^−2a)), so row 0 is
    softmax([0, log 4]) = [0.2, 0.8] and rows 1-3 are softmax([0, −2a + log 4])."""
    values = np.array([[20.0, 20.0], [20.0, -20.0], [20.0, -20.0], [20.0, -20.0]], np.float32)
    q = np.exp(np.asarray(_log_probs(values, use_partition=True)))
    np.testing.assert_allclose(q[0], [0.2, 0.8], atol=1e-6)
    np.testing.assert_allclose(q[1:], [[1.0, 4.0 * math.exp(-40.0)]] * 3, atol=1e-6)


def test_log_partition_matches_reference():
    values = _normal(3.0, (7, 3))
    expected = np.log(np.exp(values).mean(axis=0))
    np.testing.assert_allclose(np.asarray(rl.log_partition(jnp.asarray(values, jnp.float32))), expected, atol=1e-5)


# ---------------------------------------------------------------- properties

N, K = 5, 3
_moderate = hnp.arrays(np.float32, (N, K), elements=st.floats(-30, 30, width=32))
_any_finite = hnp.arrays(np.float32, (N, K), elements=st.floats(allow_nan=False, allow_infinity=False, width=32))
_shifts = hnp.arrays(np.float32, (K,), elements=st.floats(-1e3, 1e3, width=32))
_row_shifts = hnp.arrays(np.float32, (N, 1), elements=st.floats(-1e3, 1e3, width=32))
_with_neginf = hnp.arrays(
    np.float32, (N, K), elements=st.one_of(st.floats(-BIG, BIG, width=32), st.just(np.float32(NINF)))
)
_with_infs = hnp.arrays(
    np.float32, (N, K), elements=st.one_of(st.floats(-BIG, BIG, width=32), st.sampled_from([NINF, np.inf]))
)
_SETTINGS = settings(max_examples=75, deadline=None)


@_SETTINGS
@given(values=_any_finite, use_partition=st.booleans())
def test_rows_sum_to_one_and_never_nan_for_any_finite_input(values, use_partition):
    q = np.exp(np.asarray(_log_probs(values, use_partition=use_partition), np.float64))
    assert not np.any(np.isnan(q))
    np.testing.assert_allclose(q.sum(axis=1), np.ones(N), atol=1e-5)


@_SETTINGS
@given(values=_moderate, use_partition=st.booleans())
def test_matches_reference_property(values, use_partition):
    assert_matches_reference(values, use_partition)


@_SETTINGS
@given(values=_moderate, shift=_shifts)
def test_per_task_shift_invariance_with_partition(values, shift):
    """v[:, j] + c_j shifts log Z_j by c_j too, so q is unchanged (float32 error ~ eps · 1e3)."""
    base = np.exp(np.asarray(_log_probs(values, use_partition=True)))
    shifted = np.exp(np.asarray(_log_probs(values + shift[None], use_partition=True)))
    np.testing.assert_allclose(shifted, base, atol=2e-4)


@_SETTINGS
@given(values=_moderate, shift=_row_shifts)
def test_per_sample_shift_invariance_without_partition(values, shift):
    base = np.exp(np.asarray(_log_probs(values, use_partition=False)))
    shifted = np.exp(np.asarray(_log_probs(values + shift, use_partition=False)))
    np.testing.assert_allclose(shifted, base, atol=2e-4)


def test_per_task_shift_changes_result_without_partition():
    values = np.zeros((2, 2), np.float32)
    q = np.exp(np.asarray(_log_probs(values + np.array([[math.log(3.0), 0.0]], np.float32), use_partition=False)))
    np.testing.assert_allclose(q, [[0.75, 0.25], [0.75, 0.25]], atol=1e-6)
    q = np.exp(np.asarray(_log_probs(values + np.array([[math.log(3.0), 0.0]], np.float32), use_partition=True)))
    np.testing.assert_allclose(q, [[0.5, 0.5], [0.5, 0.5]], atol=1e-6)


@_SETTINGS
@given(values=_with_neginf, use_partition=st.booleans())
def test_neginf_entries_get_exactly_zero(values, use_partition):
    log_q = np.asarray(_log_probs(values, use_partition=use_partition))
    q = np.exp(log_q)
    assert not np.any(np.isnan(log_q))
    impossible_row = np.all(values == NINF, axis=1)
    # Every −inf pair in a row with some possible task gets probability exactly 0.
    assert np.all(q[(values == NINF) & ~impossible_row[:, None]] == 0.0)
    np.testing.assert_array_equal(q[impossible_row], np.full((impossible_row.sum(), K), 1.0 / K, np.float32))
    np.testing.assert_allclose(q.sum(axis=1), np.ones(N), atol=1e-5)


@_SETTINGS
@given(values=_with_infs, use_partition=st.booleans())
def test_infinities_never_give_nan(values, use_partition):
    log_q = np.asarray(_log_probs(values, use_partition=use_partition))
    assert not np.any(np.isnan(log_q))
    np.testing.assert_allclose(np.exp(log_q.astype(np.float64)).sum(axis=1), np.ones(N), atol=1e-5)


@pytest.mark.parametrize("use_partition", [True, False])
def test_column_all_neginf_gets_zero_everywhere(use_partition):
    values = np.array([[1.0, NINF, 2.0], [NINF, NINF, 0.5], [3.0, NINF, NINF]], np.float32)
    q = np.exp(np.asarray(_log_probs(values, use_partition=use_partition)))
    np.testing.assert_array_equal(q[:, 1], np.zeros(3))
    np.testing.assert_array_equal(q[1, 0], 0.0)
    np.testing.assert_array_equal(q[2], [1.0, 0.0, 0.0])
    assert not np.any(np.isnan(q))
    assert_matches_reference(values, use_partition)


@pytest.mark.parametrize("use_partition", [True, False])
def test_row_all_neginf_gets_uniform(use_partition):
    values = np.array([[NINF, NINF, NINF, NINF], [1.0, 2.0, NINF, 0.0]], np.float32)
    q = np.exp(np.asarray(_log_probs(values, use_partition=use_partition)))
    np.testing.assert_array_equal(q[0], np.full(4, 0.25, np.float32))
    assert q[1, 2] == 0.0
    values = np.full((3, 2), NINF, np.float32)  # everything impossible: uniform, no NaN
    np.testing.assert_array_equal(np.exp(np.asarray(_log_probs(values, use_partition=use_partition))), 0.5)


def test_posinf_is_clipped_not_nan():
    values = np.array([[np.inf, 0.0], [0.0, 0.0]], np.float32)
    q = np.exp(np.asarray(_log_probs(values, use_partition=False)))
    np.testing.assert_array_equal(q, [[1.0, 0.0], [0.5, 0.5]])
    q = np.exp(np.asarray(_log_probs(values, use_partition=True)))
    assert not np.any(np.isnan(q))
    assert q[1, 0] == 0.0 and q[1, 1] == 1.0  # sample 1 is infinitely worse than sample 0 at task 0
    np.testing.assert_allclose(np.exp(np.asarray(_log_probs(np.full((2, 3), np.inf, np.float32)))), 1.0 / 3, atol=1e-7)


def test_neginf_pair_stays_zero_when_finite_row_overflows():
    values = np.array([[-3e38, NINF], [3e38, NINF]], np.float32)
    q = np.exp(np.asarray(_log_probs(values, use_partition=True)))
    np.testing.assert_array_equal(q[:, 1], [0.0, 0.0])


# ---------------------------------------------------------------- jit / vmap


def test_jit_and_vmap_agree_with_per_matrix_results():
    batch = jnp.asarray(_normal(4.0, (3, 6, 4), seed=7), jnp.float32)
    for use_partition in (True, False):
        eager = np.stack([np.asarray(rl.inverse_rl_log_probs(m, use_partition=use_partition)) for m in batch])
        vmapped = jax.jit(jax.vmap(lambda m, p=use_partition: rl.inverse_rl_log_probs(m, use_partition=p)))(batch)
        chex.assert_shape(vmapped, (3, 6, 4))
        np.testing.assert_allclose(np.asarray(vmapped), eager, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(_log_probs(batch[1], use_partition=use_partition)), eager[1], atol=1e-6)


def test_stop_gradient():
    grad = jax.grad(lambda v: rl.inverse_rl_log_probs(v).sum())(jnp.ones((3, 2)))
    np.testing.assert_array_equal(np.asarray(grad), np.zeros((3, 2)))


# ---------------------------------------------------------------- Fig. 2


def test_fig2_two_trajectories():
    """ψ1 pays more on both trajectories, but τ1 is relatively better for ψ1 and τ2 for ψ2."""
    values = np.array([[10.0, 1.0], [9.0, 2.0]], np.float32)  # rows τ1, τ2; columns ψ1, ψ2
    q = np.exp(np.asarray(_log_probs(values, use_partition=True)))
    np.testing.assert_array_equal(q.argmax(axis=1), [0, 1])
    e = math.e  # by hand: q(ψ1|τ1) = q(ψ2|τ2) = e / (1 + e)
    np.testing.assert_allclose(q, [[e / (1 + e), 1 / (1 + e)], [1 / (1 + e), e / (1 + e)]], atol=1e-6)
    q = np.exp(np.asarray(_log_probs(values, use_partition=False)))
    np.testing.assert_array_equal(q.argmax(axis=1), [0, 0])
    sig = lambda x: 1 / (1 + math.exp(-x))
    np.testing.assert_allclose(q, [[sig(9), 1 - sig(9)], [sig(7), 1 - sig(7)]], atol=1e-6)


# ---------------------------------------------------------------- relabel_mask


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.6, 1.0])
def test_relabel_mask_exact_count_traced_fraction(fraction):
    mask = _relabel_mask(32, jnp.float32(fraction))
    chex.assert_shape(mask, (32,))
    assert mask.dtype == jnp.bool_
    n = round(fraction * 32)  # the leading n rows: a uniform subset, as a sample's rows are i.i.d.
    np.testing.assert_array_equal(np.asarray(mask), np.arange(32) < n)


# ---------------------------------------------------------------- relabel strategies

GOAL = GoalReach(margin=0.1, low=[-1.0, -1.0], high=[1.0, 1.0])

FEATURES = np.array([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.3], [0.9, -0.9]], np.float32)
TASKS = np.array([[0.05, 0.0], [0.5, 0.55], [0.0, 0.3], [0.0, 0.0]], np.float32)  # hit, hit, miss, miss
# Rows 0 and 2 are their episode's last stored step; rows 1 and 3 are not (final is far away).
FINAL = np.array([[0.0, 0.0], [-0.8, 0.8], [-0.5, 0.3], [0.3, 0.3]], np.float32)
# Row 0: offset 0 (itself), row 1 and 3 within the margin, row 2 far.
FUTURE = np.array([[0.0, 0.0], [0.52, 0.5], [0.9, 0.9], [0.9, -0.85]], np.float32)
# φ(s) of each sample, the released code's reward features: row 3 sits on its commanded task.
OBS_FEATURES = np.array([[0.3, 0.0], [0.5, 0.1], [-0.5, 0.2], [0.02, 0.0]], np.float32)


def spec(strategy: str, **kw) -> rl.RelabelSpec:
    return rl.RelabelSpec(strategy, **kw)


def make_sample(features, tasks, final=None, future=None, obs_features=None, action_dim=2) -> Sample:
    features = jnp.asarray(features, jnp.float32)
    b = features.shape[0]
    obs = jnp.arange(b * 3, dtype=jnp.float32).reshape(b, 3)
    obs_features = jnp.asarray(features if obs_features is None else obs_features, jnp.float32)
    final = jnp.asarray(features if final is None else final, jnp.float32)
    future = jnp.asarray(features if future is None else future, jnp.float32)
    return Sample(
        transition=Transition(
            obs=obs,
            action=jnp.full((b, action_dim), 0.5, jnp.float32),
            next_obs=obs + 100.0,
            obs_features=obs_features,
            features=features,
            task=jnp.asarray(tasks, jnp.float32),
        ),
        final_features=final,
        future_features=future,
        released_final_features=final - 1.0,  # distinct from the correct goals, to tell them apart
        released_future_features=future + 1.0,
    )


SAMPLE = make_sample(FEATURES, TASKS, FINAL, FUTURE, OBS_FEATURES)


def _check_untouched(batch, sample: Sample):
    np.testing.assert_array_equal(np.asarray(batch.obs), np.asarray(sample.transition.obs))
    np.testing.assert_array_equal(np.asarray(batch.action), np.asarray(sample.transition.action))
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray(sample.transition.next_obs))
    assert batch.done.dtype == jnp.float32


def _np_goal_reward(features, tasks, margin=0.1):
    dist = np.linalg.norm(np.asarray(features, np.float64) - np.asarray(tasks, np.float64), axis=-1)
    return np.where(dist <= margin, 0.0, -1.0)


def test_relabel_none_keeps_tasks_and_recomputes_reward():
    batch, metrics = rl.relabel(jax.random.key(0), SAMPLE, spec("none"), GOAL, fraction=1.0)
    np.testing.assert_array_equal(np.asarray(batch.task), TASKS)
    np.testing.assert_array_equal(np.asarray(batch.reward), [0.0, 0.0, -1.0, -1.0])
    np.testing.assert_array_equal(np.asarray(batch.done), [1.0, 1.0, 0.0, 0.0])
    assert float(metrics["relabel_changed"]) == 0.0
    assert float(metrics["batch_reward"]) == -0.5
    assert float(metrics["relabel_kept"]) == 1.0 and float(metrics["relabel_success"]) == 0.5
    _check_untouched(batch, SAMPLE)


def test_relabel_final_uses_final_features():
    batch, metrics = rl.relabel(jax.random.key(1), SAMPLE, spec("final"), GOAL, fraction=1.0)
    np.testing.assert_array_equal(np.asarray(batch.task), FINAL)
    np.testing.assert_array_equal(np.asarray(batch.reward), [0.0, -1.0, 0.0, -1.0])
    np.testing.assert_array_equal(np.asarray(batch.done), [1.0, 0.0, 1.0, 0.0])
    assert float(metrics["relabel_changed"]) == 1.0
    assert float(metrics["relabel_success"]) == 0.5 and float(metrics["relabel_kept"]) == 0.0
    _check_untouched(batch, SAMPLE)


def test_relabel_future_uses_future_features():
    batch, metrics = rl.relabel(jax.random.key(2), SAMPLE, spec("future"), GOAL, fraction=1.0)
    np.testing.assert_array_equal(np.asarray(batch.task), FUTURE)
    np.testing.assert_array_equal(np.asarray(batch.reward), [0.0, 0.0, -1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(batch.done), [1.0, 1.0, 0.0, 1.0])
    assert float(metrics["relabel_success"]) == 0.75


def _tiled_sample(b=32, obs_features=None):
    reps = b // FEATURES.shape[0]
    tile = lambda x: np.tile(x, (reps, 1))
    return make_sample(
        tile(FEATURES), tile(TASKS), tile(FINAL), tile(FUTURE), None if obs_features is None else tile(obs_features)
    )


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_relabel_random_in_prior_box_and_exact_fraction(fraction):
    sample = _tiled_sample()
    batch, metrics = rl.relabel(jax.random.key(3), sample, spec("random"), GOAL, fraction=fraction)
    task = np.asarray(batch.task)
    changed = np.any(task != np.asarray(sample.transition.task), axis=1)
    assert changed.sum() == round(32 * fraction)
    assert float(metrics["relabel_changed"]) == fraction
    assert np.all(task >= -1.0) and np.all(task <= 1.0)
    np.testing.assert_array_equal(np.asarray(batch.reward), _np_goal_reward(sample.transition.features, task))
    np.testing.assert_array_equal(np.asarray(batch.done), _np_goal_reward(sample.transition.features, task) + 1.0)


def test_relabel_final_half_mixes_kept_and_relabeled_rows():
    sample = _tiled_sample()  # every row's final differs from its task
    batch, metrics = rl.relabel(jax.random.key(4), sample, spec("final"), GOAL, fraction=0.5)
    task = np.asarray(batch.task)
    from_final = np.all(task == np.asarray(sample.final_features), axis=1)
    kept = np.all(task == np.asarray(sample.transition.task), axis=1)
    np.testing.assert_array_equal(from_final, ~kept)
    assert from_final.sum() == 16
    assert float(metrics["relabel_changed"]) == 0.5
    features = np.asarray(sample.transition.features)
    np.testing.assert_array_equal(np.asarray(batch.reward), _np_goal_reward(features, task))
    # Relabeled rows succeed exactly where the sample is its episode's last step (rows 0, 2 of a tile).
    last_step = np.arange(32) % 2 == 0
    np.testing.assert_array_equal(np.asarray(batch.done)[from_final], last_step[from_final].astype(np.float32))
    assert float(metrics["relabel_success"]) == last_step[from_final].mean()


def test_relabel_jit_matches_eager_with_traced_fraction():
    sample = _tiled_sample()
    fn = jax.jit(lambda k, s, f: rl.relabel(k, s, spec("random"), GOAL, fraction=f))
    for fraction in (0.25, 0.75):
        jitted, jm = fn(jax.random.key(5), sample, jnp.float32(fraction))
        eager, em = rl.relabel(jax.random.key(5), sample, spec("random"), GOAL, fraction=fraction)
        chex.assert_trees_all_equal(jitted, eager)
        assert float(jm["relabel_changed"]) == float(em["relabel_changed"]) == fraction


PERM = np.array([2, 0, 3, 1])


def _values(table_fn, seen=None):
    """A values_fn whose [B, K] values come from `table_fn(tasks [1 | B, K, d], reward, done)`."""

    def values_fn(key, obs, action, next_obs, tasks, reward, done):
        if seen is not None:
            seen.append((np.asarray(tasks), np.asarray(reward), np.asarray(done)))
        return jnp.broadcast_to(table_fn(tasks, reward, done), reward.shape)

    return values_fn


def _permutation_values(other):
    def table(tasks, reward, done):
        if tasks.shape[0] == 1:  # the candidates: the batch's own tasks (Alg. 1)
            np.testing.assert_array_equal(np.asarray(tasks[0]), TASKS)
            return jnp.where(jnp.asarray(np.eye(4)[PERM], bool), 1e3, other)
        raise AssertionError("the commanded tasks' values are the diagonal: no second evaluation")

    return _values(table)


@pytest.mark.parametrize("strategy", ["inverse_rl", "inverse_rl_no_partition"])
@pytest.mark.parametrize("other", [NINF, 0.0])
def test_relabel_inverse_rl_picks_the_dominant_candidate(strategy, other):
    for seed in range(4):
        batch, m = rl.relabel(jax.random.key(seed), SAMPLE, spec(strategy), GOAL, 1.0, _permutation_values(other))
        np.testing.assert_array_equal(np.asarray(batch.task), TASKS[PERM])
        np.testing.assert_array_equal(np.asarray(batch.reward), _np_goal_reward(FEATURES, TASKS[PERM]))
        assert float(m["soft_q_chosen"]) == 1e3 and float(m["soft_q_commanded"]) == other  # the diagonal
        assert float(m["posterior_entropy"]) == pytest.approx(0.0, abs=1e-3)
        assert float(m["relabel_kept"]) == 0.0


def test_posterior_diagnostics_of_uniform_values():
    """Equal values: the posterior is uniform over the K = 4 candidates, entropy log 4."""
    values = _values(lambda tasks, reward, done: jnp.zeros(reward.shape))
    _, m = rl.relabel(jax.random.key(0), SAMPLE, spec("inverse_rl"), GOAL, 1.0, values)
    assert float(m["posterior_entropy"]) == pytest.approx(math.log(4), rel=1e-5)
    assert float(m["soft_q_chosen"]) == float(m["soft_q_commanded"]) == 0.0


def test_values_see_rewards_of_every_pair():
    """Alg. 1's pair rewards are r_ψj(φ(s'_i)); the released variant's r_ψj(φ(s_i))."""
    for strategy, features in (("inverse_rl", FEATURES), ("inverse_rl_released", OBS_FEATURES)):
        seen = []
        values = _values(lambda tasks, reward, done: jnp.zeros(reward.shape), seen)
        rl.relabel(jax.random.key(0), SAMPLE, spec(strategy), GOAL, 1.0, values)
        tasks, reward, done = seen[0]
        np.testing.assert_array_equal(tasks[0], TASKS)
        expected = _np_goal_reward(features[:, None], TASKS[None])
        np.testing.assert_array_equal(reward, expected)
        np.testing.assert_array_equal(done, expected + 1.0)
        assert len(seen) == 1  # the commanded tasks' values are the matrix's diagonal


def test_commanded_values_evaluated_when_candidates_are_not_the_batch_tasks():
    """With other candidates than the batch's own tasks, `soft_q_commanded` is one more evaluation on
    each sample's commanded task [B, 1, d], with Alg. 1's pair rewards."""
    seen = []
    values = _values(lambda tasks, reward, done: jnp.where(reward > -1, 5.0, -2.0), seen)
    _, m = rl.relabel(jax.random.key(0), SAMPLE, spec("inverse_rl", candidates="tasks+achieved"), GOAL, 1.0, values)
    own_tasks, own_reward, _ = seen[1]
    np.testing.assert_array_equal(own_tasks[:, 0], TASKS)
    expected = _np_goal_reward(FEATURES, TASKS)
    np.testing.assert_array_equal(own_reward[:, 0], expected)
    assert float(m["soft_q_commanded"]) == pytest.approx(np.where(expected > -1, 5.0, -2.0).mean())


DISCRETE = Discrete(targets=[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], margin=0.1)


def test_relabel_inverse_rl_discrete_uses_all_one_hot_candidates():
    features = np.array([[1.0, 0.0], [0.0, 1.05], [0.02, 0.0], [1.0, 0.05]], np.float32)  # hit 1, 2, 0, 1
    tasks = np.tile(np.eye(3, dtype=np.float32)[:1], (4, 1))  # all command target 0
    sample = make_sample(features, tasks)
    seen = []
    values = _values(lambda tasks, reward, done: jnp.where(reward == 0.0, 0.0, -jnp.inf), seen)
    none, _ = rl.relabel(jax.random.key(0), sample, spec("none"), DISCRETE)
    np.testing.assert_array_equal(np.asarray(none.reward), [-1.0, -1.0, 0.0, -1.0])
    batch, metrics = rl.relabel(
        jax.random.key(0), sample, spec("inverse_rl", prior_candidates=5), DISCRETE, 1.0, values
    )
    np.testing.assert_array_equal(seen[0][0], np.eye(3)[None])
    np.testing.assert_array_equal(np.asarray(batch.task), np.eye(3)[[1, 2, 0, 1]])
    np.testing.assert_array_equal(np.asarray(batch.reward), np.zeros(4))
    np.testing.assert_array_equal(np.asarray(batch.done), np.ones(4))
    assert float(metrics["relabel_changed"]) == 0.75
    assert float(metrics["relabel_success"]) == 1.0 and float(metrics["relabel_kept"]) == 0.25


# ---------------------------------------------------------------- the authors' released code, emulated


def test_inverse_rl_released_scores_tasks_but_hands_out_achieved_states():
    """Scored: the commanded ψ_j; handed to sample i: φ(s_j) of the chosen j; rewards on φ(s)."""
    batch, m = rl.relabel(jax.random.key(0), SAMPLE, spec("inverse_rl_released"), GOAL, 1.0, _permutation_values(0.0))
    np.testing.assert_array_equal(np.asarray(batch.task), OBS_FEATURES[PERM])  # not TASKS[PERM]
    # By hand: φ(s_i) against φ(s_PERM[i]) is > 0.1 apart in every row.
    np.testing.assert_array_equal(np.asarray(batch.reward), [-1.0, -1.0, -1.0, -1.0])
    np.testing.assert_array_equal(np.asarray(batch.done), [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray(SAMPLE.transition.next_obs))


def test_inverse_rl_released_own_state_is_always_a_success():
    """Sample i handed its own state's goal succeeds under a reward evaluated on s_i."""
    sample = _tiled_sample(32, obs_features=OBS_FEATURES)
    own = _values(
        lambda tasks, reward, done: jnp.where(jnp.eye(32, dtype=bool), 1e3, 0.0) if tasks.shape[0] == 1 else 0.0
    )
    batch, m = rl.relabel(jax.random.key(1), sample, spec("inverse_rl_released"), GOAL, 1.0, own)
    np.testing.assert_array_equal(np.asarray(batch.task), np.asarray(sample.transition.obs_features))
    assert np.all(np.asarray(batch.reward) == 0.0) and float(m["relabel_success"]) == 1.0


def test_inverse_rl_released_mask_is_bernoulli():
    sample = _tiled_sample(32, obs_features=OBS_FEATURES)
    values = _values(lambda tasks, reward, done: jnp.zeros(reward.shape))
    shares = [
        float(
            rl.relabel(jax.random.key(k), sample, spec("inverse_rl_released"), GOAL, 0.5, values)[1]["relabel_changed"]
        )
        for k in range(40)
    ]
    assert len(set(shares)) > 3  # not an exact count
    assert abs(np.mean(shares) - 0.5) < 0.05  # no φ(s_j) equals a commanded task here: changed = relabeled


@pytest.mark.parametrize("strategy,copies", [("final_released", 1), ("future_released", 4)])
def test_released_her_pairs_copies_with_themselves(strategy, copies):
    """A sample is one of the k + 1 stored items of its step: item 0 keeps its task, items 1..k carry
    the released goal, and all but the last copy are paired with a copy of the same step (s' = s).
    Rewards and done are evaluated on φ(s)."""
    b = 4000
    sample = make_sample(
        np.tile(FEATURES, (b // 4, 1)),
        np.tile(TASKS, (b // 4, 1)),
        np.tile(FINAL, (b // 4, 1)),
        np.tile(FUTURE, (b // 4, 1)),
        np.tile(OBS_FEATURES, (b // 4, 1)),
    )
    batch, m = rl.relabel(jax.random.key(0), sample, spec(strategy), GOAL, fraction=0.5)  # fraction unused
    tr = sample.transition
    goal = sample.released_final_features if copies == 1 else sample.released_future_features
    task, next_obs = np.asarray(batch.task), np.asarray(batch.next_obs)
    kept = np.all(task == np.asarray(tr.task), axis=1)
    relabeled = np.all(task == np.asarray(goal), axis=1)
    self_pair = np.all(next_obs == np.asarray(tr.obs), axis=1)
    true_pair = np.all(next_obs == np.asarray(tr.next_obs), axis=1)
    np.testing.assert_array_equal(kept, ~relabeled)
    np.testing.assert_array_equal(self_pair, ~true_pair)
    assert not np.any(kept & true_pair)  # the original item is always followed by its first copy
    assert abs(self_pair.mean() - copies / (copies + 1)) < 0.03
    assert abs(relabeled.mean() - copies / (copies + 1)) < 0.03
    assert float(m["self_pairs"]) == pytest.approx(self_pair.mean(), rel=1e-6)
    expected = _np_goal_reward(np.asarray(tr.obs_features), task)
    np.testing.assert_array_equal(np.asarray(batch.reward), expected)
    np.testing.assert_array_equal(np.asarray(batch.done), expected + 1.0)


def test_inverse_rl_released_tasks_hands_out_the_scored_tasks():
    """The README command's candidate_task_type="tasks": sample i takes ψ_j, the task it was scored
    against (Alg. 1's hand-out), with rewards and done on φ(s)."""
    batch, _ = rl.relabel(
        jax.random.key(0), SAMPLE, spec("inverse_rl_released_tasks"), GOAL, 1.0, _permutation_values(0.0)
    )
    np.testing.assert_array_equal(np.asarray(batch.task), TASKS[PERM])
    expected = _np_goal_reward(OBS_FEATURES, TASKS[PERM])
    np.testing.assert_array_equal(np.asarray(batch.reward), expected)
    np.testing.assert_array_equal(np.asarray(batch.done), expected + 1.0)
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray(SAMPLE.transition.next_obs))


def test_released_defaults_soft_and_random_relabel_every_sample_whatever_the_fraction():
    """The code's default relabel_prob = 1.0: every sample takes its draw, even at relabel_fraction 0."""
    values = _permutation_values(0.0)
    batch, _ = rl.relabel(jax.random.key(0), SAMPLE, spec("inverse_rl_released_defaults"), GOAL, 0.0, values)
    np.testing.assert_array_equal(np.asarray(batch.task), OBS_FEATURES[PERM])  # φ(s_j), as inverse_rl_released
    sample = _big_sample()
    batch, _ = rl.relabel(jax.random.key(3), sample, spec("random_released_defaults"), GOAL, 0.0)
    task = np.asarray(batch.task)
    assert not np.any(np.all(task == np.asarray(sample.transition.task), axis=1))  # no φ(s_j) is a commanded task
    assert {tuple(row) for row in task} == {tuple(row) for row in OBS_FEATURES}


@pytest.mark.parametrize("strategy,copies", [("final_released_defaults", 1), ("future_released_defaults", 4)])
def test_released_her_without_the_current_goal_stores_copies_only(strategy, copies):
    """keep_current_goal=False (the code's default): a step's k copies alone, side by side, so every sample
    carries the released goal, and copies 1..k−1 are paired with the next copy (s' = s): none of `last`'s
    samples, ¾ of `future`'s. Rewards and done on φ(s)."""
    sample = _big_sample()
    batch, m = rl.relabel(jax.random.key(0), sample, spec(strategy), GOAL, fraction=0.5)  # fraction unused
    tr = sample.transition
    goal = sample.released_final_features if copies == 1 else sample.released_future_features
    np.testing.assert_array_equal(np.asarray(batch.task), np.asarray(goal))
    self_pair = np.all(np.asarray(batch.next_obs) == np.asarray(tr.obs), axis=1)
    true_pair = np.all(np.asarray(batch.next_obs) == np.asarray(tr.next_obs), axis=1)
    np.testing.assert_array_equal(self_pair, ~true_pair)
    assert abs(self_pair.mean() - (copies - 1) / copies) < 0.03
    assert float(m["self_pairs"]) == pytest.approx(self_pair.mean(), rel=1e-6)
    expected = _np_goal_reward(np.asarray(tr.obs_features), np.asarray(goal))
    np.testing.assert_array_equal(np.asarray(batch.reward), expected)


def test_released_episode_ends_store_the_goal_state_as_one_more_item():
    """Row 0: the last step of an episode that reached its goal (φ(s') on the task); row 1: two steps
    before the end of that kind of episode; row 2: a step of an episode that did not reach its goal.
    Emulated: row 0 is the goal item half the time (s = s' = s_T, succeeding under rewards on s); rows 0
    and 1 get φ(s_T) as the released `last` goal, and as `future`'s goal with probability 1 / (n + 1)
    (n = 1 and 3 stored steps to the end) or always for the goal item; row 2 is untouched."""
    reps = 3000
    task = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], np.float32)
    features = np.array([[0.52, 0.5], [0.0, 0.2], [0.0, 0.0]], np.float32)  # φ(s')
    obs_features = np.array([[0.3, 0.4], [0.0, 0.1], [0.1, 0.0]], np.float32)  # φ(s): no goal reached on s
    final = np.array([[0.52, 0.5], [0.45, 0.48], [-0.6, 0.0]], np.float32)  # φ(s_T); row 2's is far
    tile = lambda x: np.tile(x, (reps, 1))  # noqa: E731
    sample = make_sample(
        tile(features), tile(task), final=tile(final), future=tile(final), obs_features=tile(obs_features)
    )
    sample = sample.replace(steps_left=jnp.tile(jnp.array([0, 2, 5], jnp.int32), reps))
    ends = rl.released_episode_ends(jax.random.key(0), sample, GOAL)
    tr, new = sample.transition, ends.transition
    row = np.tile(np.arange(3), reps)
    item = np.all(np.asarray(new.obs) == np.asarray(tr.next_obs), axis=1)
    assert abs(item[row == 0].mean() - 0.5) < 0.03 and not item[row != 0].any()
    np.testing.assert_array_equal(np.asarray(new.obs_features)[item], tile(features)[item])
    np.testing.assert_array_equal(np.asarray(new.obs_features)[~item], tile(obs_features)[~item])
    np.testing.assert_array_equal(np.asarray(ends.released_final_features)[row < 2], tile(final)[row < 2])
    np.testing.assert_array_equal(np.asarray(ends.released_final_features)[row == 2], tile(final[2:] - 1.0))
    to_goal = np.all(np.asarray(ends.released_future_features) == tile(final), axis=1)
    assert to_goal[item].all()
    assert abs(to_goal[(row == 0) & ~item].mean() - 1 / 2) < 0.04  # n = 1: the step itself or s_T
    assert abs(to_goal[row == 1].mean() - 1 / 4) < 0.03  # n = 3
    assert not to_goal[row == 2].any()
    # through relabel: the goal item keeps its commanded task (item 0 of the released HER) as a success
    spec_ends = spec("final_released", episode_ends="released")
    batch, _ = rl.relabel(jax.random.key(1), sample, spec_ends, GOAL)
    kept = np.all(np.asarray(batch.task) == tile(task), axis=1)
    success = np.asarray(batch.reward) == 0.0
    assert success[kept & (row == 0)].any() and not success[kept & (row != 0)].any()
    with pytest.raises(ValueError, match="needs a strategy with rewards on s"):
        spec("future", episode_ends="released")


def _big_sample(b: int = 4000) -> Sample:
    tile = lambda x: np.tile(x, (b // 4, 1))  # noqa: E731
    return make_sample(tile(FEATURES), tile(TASKS), tile(FINAL), tile(FUTURE), tile(OBS_FEATURES))


def test_random_released_hands_out_goals_achieved_by_the_batch_states():
    """The released `random` under candidate_task_type="states": φ(s_j) of a uniform j, a Bernoulli
    mask, rewards and done on φ(s)."""
    sample = _big_sample()
    batch, _ = rl.relabel(jax.random.key(3), sample, spec("random_released"), GOAL, 0.5)
    task, tr = np.asarray(batch.task), sample.transition
    relabeled = ~np.all(task == np.asarray(tr.task), axis=1)  # no φ(s_j) equals a commanded task here
    assert abs(relabeled.mean() - 0.5) < 0.03 and relabeled.sum() != 2000  # Bernoulli, not an exact count
    handed = {tuple(row) for row in task[relabeled]}
    assert handed == {tuple(row) for row in OBS_FEATURES}  # every batch state's goal, and only those
    np.testing.assert_array_equal(np.asarray(batch.reward), _np_goal_reward(np.asarray(tr.obs_features), task))
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray(tr.next_obs))


def test_future_ablations_each_take_one_factor_of_future_released():
    """`future` plus one factor of the released HER: its goals U[i, T), self-pairs, rewards on φ(s), or
    a ⅘ relabeled share; everything else stays correct `future`'s."""
    sample = _big_sample()
    tr = sample.transition
    obs, next_obs, commanded = (np.asarray(x) for x in (tr.obs, tr.next_obs, tr.task))
    half = np.arange(4000) < 2000  # correct future relabels exactly the first round(f · B) rows
    on_next, on_state = np.asarray(tr.features), np.asarray(tr.obs_features)

    def run(strategy):
        batch, m = rl.relabel(jax.random.key(5), sample, spec(strategy), GOAL, 0.5)
        return np.asarray(batch.task), np.asarray(batch.next_obs), np.asarray(batch.reward), m

    future = np.asarray(sample.future_features)
    task, pairs, reward, _ = run("future_rest_goals")
    np.testing.assert_array_equal(task, np.where(half[:, None], np.asarray(sample.released_future_features), commanded))
    np.testing.assert_array_equal(pairs, next_obs)
    np.testing.assert_array_equal(reward, _np_goal_reward(on_next, task))

    task, pairs, reward, m = run("future_self_pairs")
    np.testing.assert_array_equal(task, np.where(half[:, None], future, commanded))
    self_pair = np.all(pairs == obs, axis=1)
    np.testing.assert_array_equal(self_pair, ~np.all(pairs == next_obs, axis=1))
    assert abs(self_pair[half].mean() - 0.8) < 0.03 and abs(self_pair[~half].mean() - 0.8) < 0.03  # independent
    assert float(m["self_pairs"]) == pytest.approx(self_pair.mean(), rel=1e-6)
    np.testing.assert_array_equal(reward, _np_goal_reward(on_next, task))  # rewards stay on φ(s')

    task, pairs, reward, _ = run("future_on_state")
    np.testing.assert_array_equal(task, np.where(half[:, None], future, commanded))
    np.testing.assert_array_equal(pairs, next_obs)
    np.testing.assert_array_equal(reward, _np_goal_reward(on_state, task))

    task, pairs, reward, _ = run("future_share45")
    relabeled = np.all(task == future, axis=1) & ~np.all(future == commanded, axis=1)
    assert abs(relabeled.mean() - 0.8) < 0.03
    np.testing.assert_array_equal(task[~relabeled], commanded[~relabeled])
    np.testing.assert_array_equal(pairs, next_obs)
    np.testing.assert_array_equal(reward, _np_goal_reward(on_next, task))


# ---------------------------------------------------------------- the spec and candidates


def test_spec_refuses_invalid_combinations_in_one_line():
    linear = Linear(low=[-1.0, -1.0], high=[1.0, 1.0])
    for strategy in ("final", "future", "final_released", "future_released", "inverse_rl_released"):
        with pytest.raises(ValueError, match="goal-reaching task family") as e:
            spec(strategy).check(linear)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="goal-reaching"):
        spec("inverse_rl", candidates="tasks+future").check(linear)
    spec("inverse_rl", candidates="tasks+future").check(GOAL)
    cases = [
        ({"strategy": "her"}, "valid strategies: none, random"),
        ({"candidates": "states"}, "one or more of tasks, achieved, future"),
        ({"candidates": "tasks+tasks"}, "one or more of"),
        ({"values": "q"}, "valid: auto, critic, backup"),
        ({"strategy": "future", "values": "backup"}, "needs an inverse-RL strategy"),
        ({"strategy": "inverse_rl_released", "candidates": "tasks+future"}, "use candidates=tasks"),
        ({"num_candidates": -1}, "must be >= 0"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            rl.RelabelSpec(**kw)


def test_spec_value_estimators():
    assert spec("inverse_rl").value_estimator == "critic"
    assert spec("inverse_rl", values="backup").value_estimator == "backup"
    assert spec("inverse_rl_released").value_estimator == "backup"
    assert spec("inverse_rl_released", values="critic").value_estimator == "critic"
    assert spec("future").value_estimator is None and spec("future_released").value_estimator is None
    with pytest.raises(ValueError, match="values_fn"):
        rl.relabel(jax.random.key(0), SAMPLE, spec("inverse_rl"), GOAL)


def test_candidate_tasks_appends_prior_samples():
    key = jax.random.key(9)
    cands = rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl", prior_candidates=6))
    chex.assert_shape(cands, (4 + 6, 2))
    np.testing.assert_array_equal(np.asarray(cands[:4]), TASKS)
    np.testing.assert_array_equal(np.asarray(cands[4:]), np.asarray(GOAL.sample(key, 6)))
    assert np.all(np.abs(np.asarray(cands[4:])) <= 1.0)
    np.testing.assert_array_equal(np.asarray(rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl"))), TASKS)
    discrete = rl.candidate_tasks(key, SAMPLE, DISCRETE, spec("inverse_rl", prior_candidates=6))
    np.testing.assert_array_equal(np.asarray(discrete), np.eye(3))


@given(limit=st.integers(0, 12), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_candidate_limit_keeps_a_random_subset_of_k(limit, seed):
    """K = limit distinct candidates drawn from the full set (all of them when K is 0 or not smaller)."""
    key = jax.random.key(seed)
    full = np.asarray(rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl", prior_candidates=6)))
    kept = np.asarray(
        rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl", prior_candidates=6, num_candidates=limit))
    )
    assert kept.shape == ((limit if 0 < limit < 10 else 10), 2)
    rows = [tuple(r) for r in full]
    picked = [rows.index(tuple(r)) for r in kept]
    assert len(set(picked)) == len(picked)  # without replacement
    if not 0 < limit < 10:
        np.testing.assert_array_equal(kept, full)


def test_candidate_sources_achieved_future_and_joins():
    key = jax.random.key(3)
    achieved = rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl", candidates="achieved"))
    np.testing.assert_array_equal(np.asarray(achieved), FEATURES)  # a goal task is the reached position
    future = rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl", candidates="future"))
    np.testing.assert_array_equal(np.asarray(future), FUTURE)  # each sample's own later goal
    both = rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl", candidates="tasks+achieved", prior_candidates=2))
    chex.assert_shape(both, (4 + 4 + 2, 2))
    np.testing.assert_array_equal(np.asarray(both[:4]), TASKS)
    np.testing.assert_array_equal(np.asarray(both[4:8]), FEATURES)
    joined = rl.candidate_tasks(key, SAMPLE, GOAL, spec("inverse_rl", candidates="future+tasks"))
    np.testing.assert_array_equal(np.asarray(joined), np.concatenate([FUTURE, TASKS]))


def test_inverse_rl_with_future_candidates_relabels_to_a_later_goal():
    """Values peaked on each sample's own future goal pick exactly that goal (fraction 1)."""
    values = _values(lambda tasks, reward, done: jnp.where(jnp.eye(4, tasks.shape[1], k=4, dtype=bool), 0.0, NINF))
    batch, _ = rl.relabel(jax.random.key(1), SAMPLE, spec("inverse_rl", candidates="tasks+future"), GOAL, 1.0, values)
    np.testing.assert_array_equal(np.asarray(batch.task), FUTURE)
    np.testing.assert_array_equal(np.asarray(batch.reward), _np_goal_reward(FEATURES, FUTURE))


def test_inverse_rl_scores_only_num_candidates_tasks():
    """`num_candidates` K: the values function sees [B, K] pairs, and every proposal is one of those K."""
    seen = []
    values = _values(lambda tasks, reward, done: jnp.zeros(reward.shape), seen)
    s = spec("inverse_rl", num_candidates=2)
    proposal = s.rule.propose(s, jax.random.key(0), SAMPLE, GOAL, 1.0, values)
    cands = seen[0][0][0]
    chex.assert_shape(cands, (2, 2))
    assert all(any(np.array_equal(p, c) for c in cands) for p in np.asarray(proposal.task))


# ---------------------------------------------------------------- Generalized Hindsight's relabelers

GH_RETURNS = np.array([[0, 10, 5], [1, 20, 5], [2, 30, 1], [3, 0, 5]], np.float32)  # 4 trajectories x 3 tasks


def test_percentile_ranks_by_hand():
    # column 2 holds 5, 5, 1, 5: a 5 is above the 1 and tied with two others, (1 + 2/2) / 3 = 2/3
    expected = np.array([[0, 1, 2], [1, 2, 2], [2, 3, 0], [3, 0, 2]], np.float32) / 3
    np.testing.assert_allclose(rl.percentile_ranks(jnp.asarray(GH_RETURNS)), expected, atol=1e-7)


def test_posterior_draw_frequencies_match_q():
    values = jnp.asarray([[0.0, 1.0, 2.0], [NINF, 0.0, 3.0], [5.0, 0.0, 0.0], [1.0, 1.0, NINF]])
    keys = jax.random.split(jax.random.key(0), 40_000)
    picks, log_q = jax.jit(jax.vmap(rl.posterior_draw, (0, None)))(keys, values)
    freq = np.stack([np.bincount(np.asarray(picks)[:, row], minlength=3) / len(keys) for row in range(4)])
    q = np.exp(np.asarray(log_q[0]))
    np.testing.assert_allclose(q, np.exp(np.asarray(_log_probs(values, use_partition=True))), rtol=1e-6)
    np.testing.assert_allclose(freq, q, atol=0.01)  # at least 4 standard errors at 40k draws
    assert freq[1, 0] == 0 and freq[3, 2] == 0  # impossible pairs are never drawn


def test_top_k_draw_keeps_exactly_the_k_best():
    scores = jnp.asarray([[0.0, 1 / 3, 2 / 3], [1 / 3, 2 / 3, 2 / 3], [0.5, 0.2, 0.9]])
    np.testing.assert_array_equal(rl.top_k_draw(jax.random.key(0), scores, 1), [2, 1, 2])  # a tie: lower index
    draws = np.asarray(jax.vmap(lambda k: rl.top_k_draw(k, scores, 2))(jax.random.split(jax.random.key(1), 400)))
    for row, best in enumerate(({1, 2}, {1, 2}, {0, 2})):
        assert set(draws[:, row]) == best
        assert 0.4 < np.mean(draws[:, row] == min(best)) < 0.6  # uniform over the k best


@pytest.mark.parametrize(
    "method, expected",
    [
        # AIR: the percentile ranks above; row 1 ties tasks 1 and 2 at 2/3 and takes the lower index
        ("air", [2, 1, 1, 0]),
        # advantage: R - column means (1.5, 15, 4) = [-1.5, -5, 1], [-0.5, 5, 1], [0.5, 15, -3], [1.5, -15, 1]
        ("advantage", [2, 1, 1, 0]),
    ],
)
def test_bc_relabelers_pick_the_hand_computed_tasks(method, expected):
    from hipi_jax import bc

    candidates = jnp.arange(3.0)[:, None] * 10  # task j is the vector (10 j)
    tasks = bc.relabel(jax.random.key(0), jnp.asarray(GH_RETURNS), candidates, bc.BCConfig(method=method).relabel_spec)
    np.testing.assert_array_equal(np.asarray(tasks)[:, 0], np.array(expected) * 10.0)


def test_advantage_and_air_differ_where_one_task_has_a_larger_scale():
    # task 1's returns spread 100x wider than task 0's: advantage follows the scale, AIR only the ranks
    from hipi_jax import bc

    returns = jnp.asarray([[3.0, 0.0], [2.0, 100.0], [1.0, 90.0], [0.0, 95.0]])
    candidates = jnp.asarray([[0.0], [1.0]])
    # ranks: task 0 (1, 2/3, 1/3, 0), task 1 (0, 1, 1/3, 2/3); row 2 ties at 1/3 and takes task 0
    air = bc.relabel(jax.random.key(0), returns, candidates, spec("air"))[:, 0]
    # R - (1.5, 71.25): row 2 is (-0.5, 18.75)
    advantage = bc.relabel(jax.random.key(0), returns, candidates, spec("advantage"))[:, 0]
    np.testing.assert_array_equal(air, [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(advantage, [0.0, 1.0, 1.0, 1.0])


@settings(max_examples=30, deadline=None)
@given(
    returns=hnp.arrays(np.int32, (6, 4), elements=st.integers(-50, 50)),
    column=st.integers(0, 3),
    scale=st.sampled_from([0.25, 0.5, 2.0, 8.0]),
    shift=st.integers(-1000, 1000),
)
def test_air_is_unchanged_when_one_task_is_scaled_or_shifted(returns, column, scale, shift):
    base = jnp.asarray(returns, jnp.float32)
    moved = base.at[:, column].set(base[:, column] * scale + shift)  # exact in float32 for these values
    np.testing.assert_array_equal(rl.percentile_ranks(base), rl.percentile_ranks(moved))


# ---------------------------------------------------------------- Generalized Hindsight in HIPI-RL

from hipi_jax.types import Episode  # noqa: E402


def line_episode() -> Episode:
    """One episode along the x axis, x_t = (t, 0) for t = 0..3, its last step not stored."""
    t = jnp.arange(4.0)
    features = jnp.stack([t, jnp.zeros(4)], axis=-1)[None]
    return Episode(first_obs=jnp.zeros((1, 3)), features=features, action=jnp.zeros((1, 4, 2)),
                   mask=jnp.asarray([[True, True, True, False]]))  # fmt: skip


def test_episode_returns_by_hand():
    family = GoalReach(margin=0.5, low=[-10.0, -10.0], high=[10.0, 10.0])
    tasks = jnp.asarray([[2.0, 0.0], [10.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    returns = rl.episode_returns(family, line_episode(), tasks, gamma=0.5)
    # rewards -1 until the goal is within 0.5, 0 there, and the episode ends at that first success:
    # (2, 0): -1 - 0.5 + 0 | (10, 0): -1 - 0.5 - 0.25 | (0, 0): 0 at t = 0, ended | (3, 0): reached only
    # by the unstored step, so as (10, 0)
    np.testing.assert_allclose(returns, [[-1.5, -1.75, 0.0, -1.75]])
    # without the end at the first success (HIPI-BC's sum): (0, 0) collects 0 - 0.5 - 0.25
    whole = rl.episode_returns(family, line_episode(), tasks, gamma=0.5, until_terminal=False)
    np.testing.assert_allclose(whole, [[-1.5, -1.75, -0.75, -1.75]])


def gh_sample() -> Sample:
    """Three samples: episode 0 runs x = 0..2 along the x axis, episode 1 x = -2..0, episode 2 far away."""
    ep = line_episode()
    features = jnp.concatenate([ep.features, ep.features - jnp.asarray([2.0, 0.0]), ep.features + 50.0])
    episode = Episode(first_obs=jnp.arange(9.0).reshape(3, 3), features=features,
                      action=jnp.zeros((3, 4, 2)), mask=jnp.repeat(ep.mask, 3, axis=0))  # fmt: skip
    sample = make_sample(features[:, 0], [[10.0, 0.0]] * 3)
    return sample.replace(episode=episode)


@pytest.mark.parametrize("strategy", ["advantage", "air"])
def test_generalized_hindsight_picks_the_hand_computed_task(strategy):
    family = GoalReach(margin=0.5, low=[-10.0, -10.0], high=[10.0, 10.0])
    spec = rl.RelabelSpec(strategy, prior_candidates=0)
    sample = gh_sample().replace(transition=gh_sample().transition.replace(
        task=jnp.asarray([[2.0, 0.0], [0.0, 0.0], [10.0, 0.0]])))  # fmt: skip
    # candidates = the batch's tasks (2, 0), (0, 0), (10, 0). Returns (gamma 0.5):
    #   episode 0 (x = 0..2): (2, 0) -1.5, (0, 0) 0 (a success at t = 0), (10, 0) -1.75
    #   episode 1 (x = -2..0): (2, 0) -1.75, (0, 0) -1.5, (10, 0) -1.75
    #   episode 2 (x = 48..50): -1.75 under all three
    values = {"advantage": lambda key, obs, *rest: jnp.broadcast_to(jnp.asarray([-1.0, 0.0, -1.75]), (3, 3))}
    batch, metrics = rl.relabel(jax.random.key(0), sample, spec, family, 1.0, values.get(strategy), gamma=0.5)
    if strategy == "advantage":
        # returns - V(psi) = [[-0.5, 0, 0], [-0.75, -1.5, 0], [-0.75, -1.75, 0]]: episode 0 ties (0, 0) and
        # (10, 0) and takes the lower index; the others take (10, 0)
        expected = [[0.0, 0.0], [10.0, 0.0], [10.0, 0.0]]
    else:
        # percentile ranks, per column (2, 0): (1, 0.25, 0.25); (0, 0): (1, 0.5, 0); (10, 0): 0.5 each (tied).
        # Episode 0 ties (2, 0) and (0, 0) at 1 and takes the lower index; episode 1 ties (0, 0) and (10, 0)
        # at 0.5, takes (0, 0); episode 2 takes (10, 0)
        expected = [[2.0, 0.0], [0.0, 0.0], [10.0, 0.0]]
    np.testing.assert_array_equal(batch.task, expected)
    assert "episode_return_chosen" in metrics


def test_generalized_hindsight_spec_checks():
    with pytest.raises(ValueError, match="top_k=2 needs relabel advantage or air"):
        rl.RelabelSpec("inverse_rl", top_k=2)
    with pytest.raises(ValueError, match="top_k=0 must be >= 1"):
        rl.RelabelSpec("air", top_k=0)
    with pytest.raises(ValueError, match="use relabel_values=auto"):
        rl.RelabelSpec("advantage", values="critic")
    family = GoalReach(margin=0.5, low=[-1.0, -1.0], high=[1.0, 1.0])
    assert rl.RelabelSpec("air", candidates="tasks+future", prior_candidates=3).num_scored(family, 32) == 67
    rl.RelabelSpec("air", top_k=32).check(family, 32)
    with pytest.raises(ValueError, match="top_k=33 exceeds the 32 candidate tasks"):
        rl.RelabelSpec("air", top_k=33).check(family, 32)
    with pytest.raises(ValueError, match="needs each sample's episode"):
        rl.relabel(jax.random.key(0), make_sample([[0.0, 0.0]], [[1.0, 1.0]]), rl.RelabelSpec("air"), family)


def test_no_module_but_relabel_branches_on_a_strategy_name():
    """relabel.py owns the vocabulary: elsewhere a comparison never names a strategy (`==`, `in`, ...)."""
    import ast
    from pathlib import Path

    src = Path(rl.__file__).parent
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "relabel.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                operands += [e for o in operands if isinstance(o, ast.Tuple | ast.List | ast.Set) for e in o.elts]
                names = [o.value for o in operands if isinstance(o, ast.Constant) and o.value in rl.STRATEGIES]
                found += [f"{path.relative_to(src)}:{node.lineno} {names}" for _ in names[:1]]
    assert not found, found


def test_relabel_trajectories_refuses_a_transition_level_strategy():
    with pytest.raises(ValueError, match=r"relabel='future' does not relabel whole trajectories; valid: inverse_rl, "):
        rl.relabel_trajectories(jax.random.key(0), spec("future"), jnp.zeros((3, 2)))
