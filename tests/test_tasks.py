"""Task family tests: prior shapes and bounds, rewards against hand-computed numbers, success and
terminal flags, the [samples, tasks] broadcasting HIPI relies on, hindsight goals, validation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hipi_jax.tasks import Discrete, GoalMargin, GoalReach, Linear, TargetVelocity

SUPPORT = np.array([[0.5, 0.5], [-0.5, 0.25], [0.0, -1.0]], np.float32)
TARGETS = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.5]], np.float32)

FAMILIES = {
    "goal_reach": GoalReach(margin=0.1, low=[-1.0, 0.0], high=[1.0, 2.0]),
    "goal_reach_support": GoalReach(margin=0.1, low=[-1.0, -1.0], high=[1.0, 1.0], support=SUPPORT),
    "goal_margin": GoalMargin(low=[-1.0, 0.0], high=[1.0, 2.0], margin_low=0.05, margin_high=0.3),
    "discrete": Discrete(targets=TARGETS, margin=0.2),
    "linear": Linear(low=[-1.0, 0.0, 2.0], high=[1.0, 0.5, 3.0]),
    "linear_control": Linear(low=[-1.0, 0.0, -1.0], high=[1.0, 0.5, 0.0], control_feature=True),
    "target_velocity": TargetVelocity(low=0.5, high=3.0, control_cost=0.05),
}
GOAL_FAMILIES = ("goal_reach", "goal_reach_support", "goal_margin", "discrete")
EXPECTED_DIMS = {  # (task_dim, feature_dim)
    "goal_reach": (2, 2),
    "goal_reach_support": (2, 2),
    "goal_margin": (3, 2),
    "discrete": (3, 2),
    "linear": (3, 3),
    "linear_control": (3, 2),
    "target_velocity": (1, 1),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_dims_and_flags(name):
    family = FAMILIES[name]
    assert (family.task_dim, family.feature_dim) == EXPECTED_DIMS[name]
    assert family.has_success == (name in GOAL_FAMILIES)
    assert family.supports_hindsight_goals == name.startswith("goal_reach")


# ---------------------------------------------------------------- prior


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_shape_and_bounds(name):
    family = FAMILIES[name]
    n = 256
    tasks = jax.jit(family.sample, static_argnums=1)(jax.random.key(0), n)
    chex.assert_shape(tasks, (n, family.task_dim))
    chex.assert_type(tasks, jnp.float32)
    tasks = np.asarray(tasks)
    if name == "goal_reach_support":
        match = np.all(tasks[:, None] == SUPPORT[None], axis=-1)  # [n, rows]
        assert np.all(match.sum(axis=1) == 1)
        assert np.all(match.any(axis=0))  # every support row is drawn
    elif name == "discrete":
        assert set(np.unique(tasks).tolist()) == {0.0, 1.0}
        np.testing.assert_array_equal(tasks.sum(axis=1), np.ones(n))
        assert np.all(tasks.sum(axis=0) > 0)
    elif name == "goal_margin":
        assert np.all(tasks[:, :2] >= [-1.0, 0.0]) and np.all(tasks[:, :2] <= [1.0, 2.0])
        assert np.all(tasks[:, 2] >= 0.05) and np.all(tasks[:, 2] <= 0.3)
        assert tasks[:, 1].max() > 1.0  # per-dimension bounds, not a shared box
    elif name == "target_velocity":
        assert np.all(tasks >= 0.5) and np.all(tasks <= 3.0)
    else:
        low, high = np.asarray(family.low), np.asarray(family.high)
        assert np.all(tasks >= low) and np.all(tasks <= high)
        assert np.all(tasks.min(axis=0) < low + 0.1 * (high - low))  # fills each dimension
        assert np.all(tasks.max(axis=0) > high - 0.1 * (high - low))


def test_sample_is_deterministic_in_key():
    family = FAMILIES["goal_margin"]
    np.testing.assert_array_equal(
        np.asarray(family.sample(jax.random.key(3), 5)), np.asarray(family.sample(jax.random.key(3), 5))
    )
    assert not np.array_equal(
        np.asarray(family.sample(jax.random.key(3), 5)), np.asarray(family.sample(jax.random.key(4), 5))
    )


# ---------------------------------------------------------------- rewards by hand

A0 = [0.0, 0.0]
# (family, features, action, task, reward, success)
HAND_CASES = [
    ("goal_reach", [0.3, 0.4], A0, [0.0, 0.0], -1.0, False),  # distance 0.5 > 0.1
    ("goal_reach", [0.3, 0.4], A0, [0.3, 0.45], 0.0, True),  # distance 0.05
    ("goal_reach", [-0.5, 0.3], [5.0, 5.0], [-0.5, 0.3], 0.0, True),  # exact hit, action ignored
    ("goal_margin", [0.0, 0.0], A0, [0.3, 0.4, 0.6], 0.0, True),  # distance 0.5 <= 0.6
    ("goal_margin", [0.0, 0.0], A0, [0.3, 0.4, 0.4], -1.0, False),  # distance 0.5 > 0.4
    ("goal_margin", [1.0, 2.0], A0, [1.0, 2.0, 0.0], 0.0, True),  # zero margin: exact hit only
    ("discrete", [1.0, 1.1], A0, [0.0, 1.0, 0.0], 0.0, True),  # 0.1 from target 1
    ("discrete", [1.0, 1.1], A0, [1.0, 0.0, 0.0], -1.0, False),
    ("discrete", [-1.0, 0.5], A0, [0.0, 0.0, 1.0], 0.0, True),
    ("linear", [2.0, 3.0, -1.0], [9.0], [0.5, -1.0, 2.0], 1.0 - 3.0 - 2.0, False),
    ("linear_control", [2.0, 3.0], [1.0, 2.0], [0.5, -1.0, -0.1], 1.0 - 3.0 - 0.1 * 5.0, False),
    ("linear_control", [2.0, 3.0], [0.0, 0.0], [0.5, -1.0, -0.1], -2.0, False),
    ("target_velocity", [1.5, 9.0], [1.0, 1.0], [2.0], -0.5 - 0.05 * 2.0, False),
    ("target_velocity", [2.5, 0.0], [0.0], [2.0], -0.5, False),
]


@pytest.mark.parametrize("name, features, action, task, reward, success", HAND_CASES)
def test_reward_and_success_by_hand(name, features, action, task, reward, success):
    family = FAMILIES[name]
    f, a, t = (jnp.asarray(x, jnp.float32) for x in (features, action, task))
    r = family.reward(f, a, t)
    chex.assert_shape(r, ())
    np.testing.assert_allclose(float(r), reward, rtol=1e-6, atol=1e-6)
    assert bool(family.success(f, t)) == success
    assert bool(family.terminal(f, t)) == success  # goal families end on success, others never


def test_goal_reach_margin_boundary_is_inclusive():
    family = GoalReach(margin=5.0, low=[-10.0, -10.0], high=[10.0, 10.0])
    f, t = jnp.asarray([3.0, 4.0]), jnp.zeros(2)
    assert float(family.reward(f, jnp.zeros(1), t)) == 0.0 and bool(family.success(f, t))
    assert float(family.reward(f + jnp.asarray([0.0, 1e-3]), jnp.zeros(1), t)) == -1.0


# ---------------------------------------------------------------- broadcasting [samples, tasks]


def _points(name, n, key):
    """Features and actions for `name`, some of them exactly on a sampled task for goal families."""
    family = FAMILIES[name]
    kf, ka, kt = jax.random.split(key, 3)
    tasks = family.sample(kt, 3)
    features = jax.random.uniform(kf, (n, family.feature_dim), minval=-1.0, maxval=1.0)
    if name.startswith("goal"):
        features = features.at[:3].set(tasks[:, : family.feature_dim])
    elif name == "discrete":
        features = features.at[:3].set(tasks @ jnp.asarray(TARGETS))
    action = jax.random.uniform(ka, (n, 2), minval=-1.0, maxval=1.0)
    return features, action, tasks


@pytest.mark.parametrize("name", FAMILIES)
def test_reward_broadcasts_to_samples_by_tasks(name):
    family = FAMILIES[name]
    n = 5
    features, action, tasks = _points(name, n, jax.random.key(1))
    k = tasks.shape[0]
    r = family.reward(features[:, None], action[:, None], tasks[None])
    s = family.success(features[:, None], tasks[None])
    d = family.terminal(features[:, None], tasks[None])
    chex.assert_shape([r, s, d], (n, k))
    chex.assert_type([s, d], bool)
    for i in range(n):
        for j in range(k):
            assert float(r[i, j]) == float(family.reward(features[i], action[i], tasks[j]))
            assert bool(s[i, j]) == bool(family.success(features[i], tasks[j]))
    np.testing.assert_array_equal(np.asarray(d), np.asarray(s))
    if name in GOAL_FAMILIES:
        assert np.all(np.diag(np.asarray(s)[:3, :3]))  # the first features sit on the tasks
        np.testing.assert_array_equal(np.asarray(r), np.where(np.asarray(s), 0.0, -1.0))
    else:
        assert not np.any(np.asarray(s))


# ---------------------------------------------------------------- hindsight goals


def test_achieved_task_goal_reach():
    for name in ("goal_reach", "goal_reach_support"):
        family = FAMILIES[name]
        features = jnp.asarray([[0.1, 0.2], [0.3, -0.4]])
        np.testing.assert_array_equal(np.asarray(family.achieved_task(features, jnp.zeros((2, 2)))), features)
        out = family.achieved_task(features[:, None], jnp.zeros((1, 3, 2)))  # broadcasts like reward
        chex.assert_shape(out, (2, 3, 2))
        np.testing.assert_array_equal(np.asarray(out[:, 2]), features)
        assert bool(jnp.all(family.success(features, family.achieved_task(features, features))))


@pytest.mark.parametrize("name", [n for n in FAMILIES if not n.startswith("goal_reach")])
def test_achieved_task_raises_without_hindsight_goals(name):
    family = FAMILIES[name]
    with pytest.raises(ValueError):
        family.achieved_task(jnp.zeros((2, family.feature_dim)), jnp.zeros((2, family.task_dim)))


def test_candidate_tasks():
    np.testing.assert_array_equal(np.asarray(FAMILIES["discrete"].candidate_tasks()), np.eye(3))
    for name in FAMILIES:
        if name != "discrete":
            assert FAMILIES[name].candidate_tasks() is None


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "make",
    [
        lambda: GoalReach(margin=0.0, low=[0.0], high=[1.0]),
        lambda: GoalReach(margin=-0.1, low=[0.0], high=[1.0]),
        lambda: Linear(low=[0.0, 1.0], high=[1.0, 0.5]),
        lambda: GoalMargin(low=[0.0], high=[1.0], margin_low=-0.1, margin_high=0.1),
        lambda: GoalMargin(low=[0.0], high=[1.0], margin_low=0.2, margin_high=0.1),
        lambda: Discrete(targets=[0.0, 1.0], margin=0.1),
    ],
    ids=["reach-margin-0", "reach-margin-neg", "linear-low-gt-high", "margin-neg", "margin-low-gt-high", "targets-1d"],
)
def test_invalid_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


def test_valid_edge_arguments_accepted():
    assert GoalMargin(low=[0.0], high=[1.0], margin_low=0.0, margin_high=0.0).task_dim == 2
    assert Linear(low=[1.0], high=[1.0]).task_dim == 1


def test_goal_reach_radius_prior_and_validation():
    family = GoalReach(margin=0.01, low=[-0.2, -0.2], high=[0.2, 0.2], radius=(0.05, 0.2))
    goals = np.asarray(family.sample(jax.random.key(0), 2000))
    dist = np.linalg.norm(goals, axis=-1)
    assert dist.min() >= 0.05 - 1e-6 and dist.max() <= 0.2 + 1e-6
    # radius is uniform (the DM Control sampler), not area-uniform: about half the goals lie below 0.125
    assert 0.45 < np.mean(dist < 0.125) < 0.55
    with pytest.raises(ValueError, match="radius"):
        GoalReach(margin=0.01, low=[-0.2, -0.2], high=[0.2, 0.2], radius=(0.05, 0.3))  # disc outside the box
    with pytest.raises(ValueError, match="radius"):
        GoalReach(margin=0.01, low=[-1.0, -1.0, -1.0], high=[1.0, 1.0, 1.0], radius=(0.0, 0.5))  # not 2-D
