"""Buffer tests: exact episode bookkeeping (`steps_to_episode_end`) against hand-written tables for
episodes that end early, hit the time limit or are still running, before and after the ring
wraps; `final` / `future` hindsight features of sampled steps (App. C.1); jit vs eager; nbytes.

Features encode (env, global insert time t), so every sampled feature names its slot."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipi_jax import buffer as rb
from hipi_jax.types import Transition

NUM_ENVS, CAPACITY = 2, 8
EXAMPLE = Transition(
    obs=jnp.zeros(3),
    action=jnp.zeros(2),
    next_obs=jnp.zeros(3),
    obs_features=jnp.zeros(2),
    features=jnp.zeros(2),
    task=jnp.zeros(2),
)

# (step, ended) per env for each insert t = 0..12. Time limit 4.
# env 0: ep0 ends early at length 3 (t 0-2), ep1 time limit (t 3-6), ep2 time limit (t 7-10),
#        ep3 still running (t 11-12).
# env 1: ep0 time limit (t 0-3), ep1 ends early at length 2 (t 4-5), ep2 ends early at length 3
#        (t 6-8), ep3 time limit (t 9-12).
SCHEDULE = [
    [(0, 0), (1, 0), (2, 1), (0, 0), (1, 0), (2, 0), (3, 1), (0, 0), (1, 0), (2, 0), (3, 1), (0, 0), (1, 0)],
    [(0, 0), (1, 0), (2, 0), (3, 1), (0, 0), (1, 1), (0, 0), (1, 0), (2, 1), (0, 0), (1, 0), (2, 0), (3, 1)],
]

# steps_to_episode_end[env, slot] by hand, after 3, 8 and 13 inserts.
EXPECTED_REMAINING = {
    3: [[2, 1, 0], [2, 1, 0]],  # both first episodes still running at t = 2
    8: [[2, 1, 0, 3, 2, 1, 0, 0], [3, 2, 1, 0, 1, 0, 1, 0]],
    # slot s holds t = s + 8 for s < 5, t = s for s >= 5; env 0 slot 7 (t 7) and env 1 slot 6 (t 6)
    # start episodes that straddle the wrap point.
    13: [[2, 1, 0, 1, 0, 1, 0, 3], [0, 3, 2, 1, 0, 0, 2, 1]],
}


def make_transition(t: int) -> Transition:
    env = jnp.arange(NUM_ENVS, dtype=jnp.float32)
    features = jnp.stack([env, jnp.full((NUM_ENVS,), t, jnp.float32)], axis=-1)  # [num_envs, 2]
    return Transition(
        obs=jnp.concatenate([features, jnp.ones((NUM_ENVS, 1))], axis=-1),
        action=features * 2.0,
        next_obs=jnp.concatenate([features, -jnp.ones((NUM_ENVS, 1))], axis=-1),
        obs_features=features - jnp.asarray([0.0, 0.5]),  # φ(s) of insert t: its time column is t - 0.5
        features=features,
        task=features + 0.5,
    )


def schedule_step(schedule, t):
    step = jnp.asarray([schedule[e][t][0] for e in range(NUM_ENVS)], jnp.int32)
    ended = jnp.asarray([schedule[e][t][1] for e in range(NUM_ENVS)], bool)
    return step, ended


def fill(num_inserts, insert=None, schedule=SCHEDULE, capacity=CAPACITY):
    insert = insert or _insert
    buf = rb.init(EXAMPLE, NUM_ENVS, capacity)
    for t in range(num_inserts):
        buf = insert(buf, make_transition(t), *schedule_step(schedule, t))
    return buf


def episode_ends(schedule, num_inserts):
    """Per env, for each insert time t, the last stored insert time of t's episode."""
    ends = []
    for env_schedule in schedule:
        end = list(range(num_inserts))
        for t in reversed(range(num_inserts - 1)):
            if not env_schedule[t][1]:
                end[t] = end[t + 1]
        ends.append(end)
    return ends


_insert = jax.jit(rb.insert)
_sample = jax.jit(rb.sample, static_argnums=2)
_remaining_all = jax.jit(
    lambda buf: rb.steps_to_episode_end(buf, jnp.arange(NUM_ENVS)[:, None], jnp.arange(rb.capacity(buf))[None])
)


# ---------------------------------------------------------------- bookkeeping


def test_init_is_empty_and_validates():
    buf = rb.init(EXAMPLE, NUM_ENVS, CAPACITY)
    chex.assert_shape(buf.data.obs, (NUM_ENVS, CAPACITY, 3))
    chex.assert_shape(buf.data.features, (NUM_ENVS, CAPACITY, 2))
    chex.assert_shape([buf.episode, buf.step, buf.episode_length], (NUM_ENVS, CAPACITY))
    assert int(buf.cursor) == 0 and int(buf.size) == 0
    assert rb.capacity(buf) == CAPACITY
    for bad in [(0, 8), (2, 0)]:
        with pytest.raises(ValueError):
            rb.init(EXAMPLE, *bad)


def test_nbytes_hand_count():
    buf = rb.init(EXAMPLE, NUM_ENVS, CAPACITY)
    data = NUM_ENVS * CAPACITY * (3 + 2 + 3 + 2 + 2 + 2) * 4  # six float32 leaves
    book = 3 * NUM_ENVS * CAPACITY * 4 + NUM_ENVS * 4 + 4 + 4  # episode/step/length, current, cursor, size
    assert rb.nbytes(buf) == data + book == 1104


@pytest.mark.parametrize("num_inserts", sorted(EXPECTED_REMAINING))
def test_steps_to_episode_end_hand_table(num_inserts):
    buf = fill(num_inserts)
    size = min(num_inserts, CAPACITY)
    assert int(buf.size) == size
    assert int(buf.cursor) == num_inserts % CAPACITY
    remaining = np.asarray(_remaining_all(buf))[:, :size]
    np.testing.assert_array_equal(remaining, EXPECTED_REMAINING[num_inserts])
    # The same values slot by slot, with scalar indices.
    for env in range(NUM_ENVS):
        for slot in range(size):
            assert int(rb.steps_to_episode_end(buf, env, slot)) == EXPECTED_REMAINING[num_inserts][env][slot]


def test_wraparound_overwrites_oldest():
    buf = fill(13)
    t_in_slot = np.array([8, 9, 10, 11, 12, 5, 6, 7])
    np.testing.assert_array_equal(np.asarray(buf.data.features[:, :, 1]), np.tile(t_in_slot, (NUM_ENVS, 1)))
    np.testing.assert_array_equal(np.asarray(buf.data.features[:, :, 0]), [[0] * 8, [1] * 8])
    np.testing.assert_array_equal(np.asarray(buf.step), [[1, 2, 3, 0, 1, 2, 3, 0], [2, 0, 1, 2, 3, 1, 0, 1]])
    np.testing.assert_array_equal(np.asarray(buf.episode), [[2, 2, 2, 3, 3, 1, 1, 2], [2, 3, 3, 3, 3, 1, 2, 2]])
    np.testing.assert_array_equal(np.asarray(buf.current_episode), [3, 4])


# ---------------------------------------------------------------- sampling


def check_samples(buf, schedule, num_inserts, batch_size=512, seed=0):
    """Every sampled step is stored, and final/future are exact for its episode."""
    sample = _sample(buf, jax.random.key(seed), batch_size)
    chex.assert_shape(sample.transition.obs, (batch_size, 3))
    chex.assert_shape([sample.final_features, sample.future_features], (batch_size, 2))
    feats = np.asarray(sample.transition.features).astype(int)
    env, t = feats[:, 0], feats[:, 1]
    stored = (t < num_inserts) & (t >= num_inserts - rb.capacity(buf))
    assert np.all(stored), "sampled an unwritten or overwritten slot"
    # The other leaves come from the same slot.
    np.testing.assert_array_equal(np.asarray(sample.transition.task), feats + 0.5)
    np.testing.assert_array_equal(np.asarray(sample.transition.action), feats * 2.0)
    np.testing.assert_array_equal(np.asarray(sample.transition.next_obs)[:, 2], -1.0)
    ends = episode_ends(schedule, num_inserts)
    t_final = np.array([ends[e][ti] for e, ti in zip(env, t, strict=True)])
    final = np.asarray(sample.final_features).astype(int)
    future = np.asarray(sample.future_features).astype(int)
    np.testing.assert_array_equal(final[:, 0], env)
    np.testing.assert_array_equal(final[:, 1], t_final)
    np.testing.assert_array_equal(future[:, 0], env)
    offset = future[:, 1] - t
    assert np.all(offset >= 0) and np.all(offset <= np.minimum(t_final - t, rb.FUTURE_HORIZON - 1))
    # The released code's goals are φ(s) (time column t - 0.5) of the last step and of j in [t, T).
    released_final = np.asarray(sample.released_final_features)
    released_future = np.asarray(sample.released_future_features)
    np.testing.assert_array_equal(released_final, np.stack([env, t_final - 0.5], axis=1))
    np.testing.assert_array_equal(released_future[:, 0], env)
    j = released_future[:, 1] + 0.5
    assert np.all(j >= t) and np.all(j <= t_final)
    return env, t, offset, t_final


@pytest.mark.parametrize("num_inserts", [3, 8, 13])
def test_sample_final_and_future_exact(num_inserts):
    env, t, offset, t_final = check_samples(fill(num_inserts), SCHEDULE, num_inserts)
    size = min(num_inserts, CAPACITY)
    # With 512 draws every stored (env, slot) appears, and every allowed future offset is used.
    assert len(set(zip(env, t, strict=True))) == NUM_ENVS * size
    long_left = t_final - t >= 3
    if long_left.any():
        assert set(offset[long_left].tolist()) == {0, 1, 2, 3}
    assert set(offset[t_final == t].tolist()) == {0}


def test_released_future_is_uniform_over_the_rest_of_the_episode():
    """The released `future` goal: j ~ U[i, T), the whole rest of the episode (not the next 4 states)."""
    schedule = [[(t, int(t == 9)) for t in range(10)]] * NUM_ENVS  # one 10-step episode per env
    buf = fill(10, schedule=schedule, capacity=16)
    sample = _sample(buf, jax.random.key(1), 20_000)
    t = np.asarray(sample.transition.features)[:, 1]
    j = np.asarray(sample.released_future_features)[:, 1] + 0.5
    first = t == 0
    counts = np.bincount(j[first].astype(int), minlength=10)
    assert counts.min() > 0.7 * first.sum() / 10  # all of 0..9 about equally often from step 0


def test_sample_before_full_only_written_slots():
    buf = fill(3)
    sample = _sample(buf, jax.random.key(1), 512)
    t = np.asarray(sample.transition.features[:, 1])
    assert set(t.tolist()) == {0.0, 1.0, 2.0}


def test_wrapped_episode_final_and_future():
    """env 0's episode t 7-10 sits in slots 7, 0, 1, 2 and env 1's t 6-8 in slots 6, 7, 0: final and
    future cross the wrap point."""
    env, t, offset, t_final = check_samples(fill(13), SCHEDULE, 13, seed=3)
    for e, start, end in [(0, 7, 10), (1, 6, 8)]:
        pick = (env == e) & (t == start)
        assert pick.any()
        np.testing.assert_array_equal(t_final[pick], end)
        assert set((t + offset)[pick].tolist()) == set(range(start, min(start + 3, end) + 1))


# ---------------------------------------------------------------- jit vs eager


def test_insert_and_sample_jit_match_eager():
    eager = fill(13, insert=rb.insert)
    jitted = fill(13)
    chex.assert_trees_all_equal(eager, jitted)
    key = jax.random.key(7)
    chex.assert_trees_all_equal(rb.sample(eager, key, 64), _sample(jitted, key, 64))


# ---------------------------------------------------------------- random schedules

_SMALL_CAP = 4


@settings(max_examples=60, deadline=None)
@given(
    ended=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=14),
    seed=st.integers(0, 2**16),
)
def test_random_schedules_match_reference(ended, seed):
    """Any pattern of episode ends (including length-1 episodes, so episode ids wrap the
    `episode % capacity` index) keeps steps_to_episode_end, final and future exact."""
    schedule = [[], []]
    for env in range(NUM_ENVS):
        step = 0
        for flags in ended:
            schedule[env].append((step, int(flags[env])))
            step = 0 if flags[env] else step + 1
    num_inserts = len(ended)
    buf = fill(num_inserts, schedule=schedule, capacity=_SMALL_CAP)
    ends = episode_ends(schedule, num_inserts)
    remaining = np.asarray(_remaining_all(buf))
    for slot in range(min(num_inserts, _SMALL_CAP)):
        t = max(u for u in range(num_inserts) if u % _SMALL_CAP == slot)
        for env in range(NUM_ENVS):
            assert remaining[env, slot] == ends[env][t] - t
    check_samples(buf, schedule, num_inserts, batch_size=64, seed=seed)


def test_episode_view_hand_table():
    # after 13 inserts slot s holds t = s + 8 for s < 5 and t = s for s >= 5 (see EXPECTED_REMAINING)
    buf = fill(13)
    env = jnp.asarray([0, 0, 0, 1])
    slot = jnp.asarray([5, 0, 4, 6])
    view = jax.jit(rb.episode_view, static_argnums=3)(buf, env, slot, 4)
    chex.assert_shape(view.features, (4, 4, 2))
    expected_mask = [
        [False, False, True, True],  # env 0 t5: episode 1 was t3-6, t3 and t4 overwritten by t11, t12
        [True, True, True, True],  # env 0 t8: episode 2 is t7-10, across the wrap
        [True, True, False, False],  # env 0 t12: episode 3 is still running, 2 steps stored
        [True, True, True, False],  # env 1 t6: episode 2 ended early at t8; t9 begins episode 3
    ]
    expected_time = [[0, 0, 5, 6], [7, 8, 9, 10], [11, 12, 0, 0], [6, 7, 8, 0]]  # masked steps are zeros
    np.testing.assert_array_equal(view.mask, expected_mask)
    np.testing.assert_array_equal(view.features[..., 1], expected_time)
    np.testing.assert_array_equal(view.action[..., 1], 2 * np.asarray(expected_time))
    np.testing.assert_array_equal(view.first_obs[:, 1], [5, 7, 11, 6])  # s of the earliest stored step


def test_sample_carries_an_episode_view_only_when_asked():
    buf = fill(13)
    assert _sample(buf, jax.random.key(0), 16).episode is None
    sample = jax.jit(rb.sample, static_argnums=(2, 3))(buf, jax.random.key(0), 16, 4)
    times = np.asarray(sample.transition.features[:, 1])
    view = sample.episode
    for i, t in enumerate(times):  # the sample's own step is in its episode view, at its own time
        assert t in np.asarray(view.features[i, :, 1])[np.asarray(view.mask[i])]
