"""SAC tests (App. C.1): the soft TD target and the critic loss against hand and NumPy computations,
the tanh-Gaussian log-prob, the α gradient, the Polyak update, the [B, K] value matrices HIPI-RL
relabels with (Eq. 8) and gradient clipping. Networks are tiny and every forward pass is redone in
NumPy (float64) from the parameters, so the split first layer is checked against a plain Dense on
concat(obs, [action,] task)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hipi_jax.agents.sac import SAC, SACConfig, soft_td_target
from hipi_jax.networks import LOG_STD_MAX, LOG_STD_MIN, tanh_gaussian_sample
from hipi_jax.types import Batch

OBS_DIM, ACTION_DIM, TASK_DIM, B = 2, 1, 2, 5


# ---- NumPy references ------------------------------------------------------------------------------


def np_mlp(p: dict, parts: list[np.ndarray], twin: int | None = None) -> np.ndarray:
    """A ReLU MLP whose first layer is ONE Dense on the concatenation of `parts` (kernels in_0, in_1, ...
    stacked along the input axis). `twin` selects one critic of the twin pair (leading param axis)."""
    leaf = (lambda x: np.asarray(x, np.float64)) if twin is None else (lambda x: np.asarray(x, np.float64)[twin])
    kernel = np.concatenate([leaf(p[f"in_{i}"]["kernel"]) for i in range(len(parts))], axis=0)
    h = np.concatenate([np.asarray(x, np.float64) for x in parts], axis=-1) @ kernel + leaf(p["in_0"]["bias"])
    i = 0
    while f"hidden_{i}" in p:
        h = np.maximum(h, 0.0) @ leaf(p[f"hidden_{i}"]["kernel"]) + leaf(p[f"hidden_{i}"]["bias"])
        i += 1
    return np.maximum(h, 0.0) @ leaf(p["out"]["kernel"]) + leaf(p["out"]["bias"])


def np_critic(params, obs, action, task) -> np.ndarray:
    """[2, batch] twin Q-values."""
    q = params["params"]["q"]
    return np.stack([np_mlp(q, [obs, action, task], twin=k)[..., 0] for k in range(2)])


def np_actor(params, obs, task) -> tuple[np.ndarray, np.ndarray]:
    out = np_mlp(params["params"]["mlp"], [obs, task])
    mean, log_std = np.split(out, 2, axis=-1)
    return mean, np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def np_log1m_tanh2(u: np.ndarray) -> np.ndarray:
    """log(1 − tanh(u)²) = log 4 − 2|u| − 2 log1p(exp(−2|u|)), exact in float64 for any u."""
    a = np.abs(u)
    return np.log(4.0) - 2 * a - 2 * np.log1p(np.exp(-2 * a))


def np_tanh_gaussian(key, mean, log_std) -> tuple[np.ndarray, np.ndarray]:
    """The same reparameterised draw as `tanh_gaussian_sample` (same key -> same ε), in float64."""
    eps = np.asarray(jax.random.normal(key, np.shape(mean)), np.float64)
    std = np.exp(log_std)
    u = mean + std * eps
    normal_logp = -0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.tanh(u), np.sum(normal_logp - np_log1m_tanh2(u), axis=-1)


# ---- fixtures --------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("fast_compilation")  # conftest.py: tiny programs compile fast


@pytest.fixture(scope="module")
def sac() -> SAC:
    return SAC(obs_dim=OBS_DIM, action_dim=ACTION_DIM, task_dim=TASK_DIM, config=SACConfig(hidden=(4,)))


@pytest.fixture(scope="module")
def state(sac):
    st = jax.jit(sac.init)(jax.random.PRNGKey(0))
    # distinct target critic (init makes them equal) and α ≠ 1, so each term of the target is visible
    target = jax.tree.map(lambda x: x + 0.1, st.critic_params)
    return st.replace(target_critic_params=target, log_alpha=jnp.asarray(np.log(0.3), jnp.float32))


@pytest.fixture(scope="module")
def batch() -> Batch:
    rng = np.random.default_rng(0)
    f = lambda *shape: jnp.asarray(rng.uniform(-1, 1, shape), jnp.float32)
    return Batch(
        obs=f(B, OBS_DIM),
        action=f(B, ACTION_DIM),
        next_obs=f(B, OBS_DIM),
        task=f(B, TASK_DIM),
        reward=jnp.asarray([-1.0, 0.0, -1.0, 0.5, -1.0], jnp.float32),
        done=jnp.asarray([0.0, 1.0, 0.0, 0.0, 1.0], jnp.float32),
    )


# ---- soft TD target --------------------------------------------------------------------------------


def test_soft_td_target_hand_computed():
    reward = jnp.asarray([1.0, -1.0, 0.5, 2.0])
    done = jnp.asarray([0.0, 0.0, 1.0, 1.0])
    next_q = jnp.asarray([2.0, -3.0, 100.0, -7.0])
    next_log_prob = jnp.asarray([-1.0, 2.0, 5.0, 3.0])
    y = soft_td_target(reward, done, next_q, next_log_prob, alpha=0.5, gamma=0.9)
    # 1 + 0.9 (2 + 0.5) = 3.25;  −1 + 0.9 (−3 − 1) = −4.6;  done: y = r
    np.testing.assert_allclose(np.asarray(y), [3.25, -4.6, 0.5, 2.0], rtol=1e-6)


# ---- networks --------------------------------------------------------------------------------------


def test_split_first_layer_equals_dense_on_concat(sac, state, batch):
    q = jax.jit(sac.critic.apply)(state.critic_params, batch.obs, batch.action, batch.task)
    assert q.shape == (2, B)
    np.testing.assert_allclose(
        np.asarray(q), np_critic(state.critic_params, batch.obs, batch.action, batch.task), rtol=1e-5, atol=1e-6
    )
    mean, log_std = jax.jit(sac.actor.apply)(state.actor_params, batch.obs, batch.task)
    np_mean, np_log_std = np_actor(state.actor_params, batch.obs, batch.task)
    assert mean.shape == log_std.shape == (B, ACTION_DIM)
    np.testing.assert_allclose(np.asarray(mean), np_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(log_std), np_log_std, rtol=1e-5, atol=1e-6)


def test_deeper_critic_matches_numpy_mlp():
    deep = SAC(obs_dim=3, action_dim=2, task_dim=1, config=SACConfig(hidden=(4, 3)))
    params = jax.jit(deep.critic.init)(jax.random.PRNGKey(3), jnp.zeros((1, 3)), jnp.zeros((1, 2)), jnp.zeros((1, 1)))
    assert set(params["params"]["q"]) == {"in_0", "in_1", "in_2", "hidden_0", "out"}
    rng = np.random.default_rng(1)
    obs, act, task = (jnp.asarray(rng.normal(size=(6, d)), jnp.float32) for d in (3, 2, 1))
    np.testing.assert_allclose(
        np.asarray(jax.jit(deep.critic.apply)(params, obs, act, task)),
        np_critic(params, obs, act, task),
        rtol=1e-5,
        atol=1e-6,
    )


# ---- tanh-Gaussian ---------------------------------------------------------------------------------


def test_tanh_gaussian_log_prob_matches_numpy():
    key = jax.random.PRNGKey(7)
    mean = jnp.asarray([[0.3, -0.5], [1.0, 0.0], [-1.2, 0.7]], jnp.float32)
    log_std = jnp.asarray([[-0.5, 0.0], [0.2, -1.0], [0.0, 0.3]], jnp.float32)
    action, log_prob = jax.jit(tanh_gaussian_sample)(key, mean, log_std)
    np_action, np_log_prob = np_tanh_gaussian(key, np.asarray(mean, np.float64), np.asarray(log_std, np.float64))
    assert action.shape == (3, 2) and log_prob.shape == (3,)
    np.testing.assert_allclose(np.asarray(action), np_action, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(log_prob), np_log_prob, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_tanh_gaussian_log_prob_finite_for_huge_pre_tanh(sign):
    key = jax.random.PRNGKey(1)
    mean = jnp.full((4, 2), 50.0 * sign, jnp.float32)
    log_std = jnp.full((4, 2), -1.0, jnp.float32)
    action, log_prob = jax.jit(tanh_gaussian_sample)(key, mean, log_std)
    assert bool(jnp.all(jnp.isfinite(log_prob)))
    # tanh saturates to exactly ±1 in float32; never beyond
    assert bool(jnp.all(jnp.abs(action) <= 1.0))
    np.testing.assert_array_equal(np.asarray(action), np.full((4, 2), sign, np.float32))
    # the stable correction: log π ≈ log N(u) + 2|u| − log 4 per dim, u ≈ ±50 -> ≈ +196 in total
    _, np_log_prob = np_tanh_gaussian(key, np.asarray(mean, np.float64), np.asarray(log_std, np.float64))
    np.testing.assert_allclose(np.asarray(log_prob), np_log_prob, rtol=1e-5)


# ---- losses ----------------------------------------------------------------------------------------


def np_critic_target(sac, state, batch, key, alpha) -> np.ndarray:
    """y = r + γ(1 − d)(min_k Q̄_k(s', a') − α log π(a'|s')), a' ~ π(·|s', ψ) drawn with `key`."""
    mean, log_std = np_actor(state.actor_params, batch.next_obs, batch.task)
    next_action, next_log_prob = np_tanh_gaussian(key, mean, log_std)
    next_q = np_critic(state.target_critic_params, batch.next_obs, next_action, batch.task).min(0)
    r, d = np.asarray(batch.reward, np.float64), np.asarray(batch.done, np.float64)
    return r + sac.config.gamma * (1 - d) * (next_q - alpha * next_log_prob)


def test_critic_loss_hand_computed(sac, state, batch):
    key = jax.random.PRNGKey(11)
    y = np_critic_target(sac, state, batch, key, alpha=0.3)
    np.testing.assert_array_equal(y[[1, 4]], np.asarray(batch.reward)[[1, 4]])  # done -> y = r
    q = np_critic(state.critic_params, batch.obs, batch.action, batch.task)  # [2, B]
    expected = 0.5 * np.sum(np.mean((q - y) ** 2, axis=-1))

    loss, aux = jax.jit(sac.critic_loss)(state.critic_params, state, batch, key)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(aux["q"]), q.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(aux["target_q"]), y.mean(), rtol=1e-5, atol=1e-6)


def test_critic_loss_gradient_on_output_bias(sac, state, batch):
    """d loss / d b_k (twin k's output bias) = 0.5 · 2 · mean_i (Q_k(s_i, a_i) − y_i)."""
    key = jax.random.PRNGKey(11)
    grads = jax.jit(jax.grad(lambda p: sac.critic_loss(p, state, batch, key)[0]))(state.critic_params)
    q = np_critic(state.critic_params, batch.obs, batch.action, batch.task)
    y = np_critic_target(sac, state, batch, key, alpha=0.3)
    expected = (q - y).mean(axis=-1)  # [2]
    got = np.asarray(grads["params"]["q"]["out"]["bias"])[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_alpha_loss_gradient_sign():
    sac = SAC(obs_dim=OBS_DIM, action_dim=ACTION_DIM, task_dim=TASK_DIM, config=SACConfig(hidden=(4,)))
    assert sac.target_entropy == -1.0
    grad_fn = jax.grad(sac.alpha_loss, has_aux=True)
    # d/d log α of −log α (H̄ − H) = H − H̄: positive (α goes down) when entropy is above target
    g_high, _ = grad_fn(jnp.asarray(0.2), jnp.asarray(0.5))
    g_low, _ = grad_fn(jnp.asarray(0.2), jnp.asarray(-3.0))
    np.testing.assert_allclose(float(g_high), 1.5, rtol=1e-6)
    np.testing.assert_allclose(float(g_low), -2.0, rtol=1e-6)


# ---- update ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def updated(sac, state, batch):
    key = jax.random.PRNGKey(5)
    new, metrics = jax.jit(sac.update)(state, batch, key)
    return key, new, metrics


def test_update_polyak_target_moves_by_tau(sac, state, updated):
    _, new, _ = updated
    expected = jax.tree.map(
        lambda old, online: (1 - sac.config.tau) * old + sac.config.tau * online,
        state.target_critic_params,
        new.critic_params,
    )
    for got, want in zip(jax.tree.leaves(new.target_critic_params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)
    # and the online critic actually moved, so this is not trivially old == new
    moved = [
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(state.critic_params), jax.tree.leaves(new.critic_params), strict=True)
    ]
    assert any(moved)


def test_update_losses_alpha_and_order(sac, state, batch, updated):
    """Critic step on the old state, then the actor against the *updated* critic, then α from the
    actor's pre-step entropy; Adam's first step moves log α by exactly −lr · sign(H − H̄)."""
    key, new, metrics = updated
    k_critic, k_actor = jax.random.split(key)
    critic_loss, _ = jax.jit(sac.critic_loss)(state.critic_params, state, batch, k_critic)
    np.testing.assert_allclose(float(metrics["critic_loss"]), float(critic_loss), rtol=1e-5)
    mid = state.replace(critic_params=new.critic_params)
    actor_loss, aux = jax.jit(sac.actor_loss)(state.actor_params, mid, batch, k_actor)
    np.testing.assert_allclose(float(metrics["actor_loss"]), float(actor_loss), rtol=1e-5, atol=1e-6)
    entropy = float(aux["entropy"])
    np.testing.assert_allclose(float(metrics["entropy"]), entropy, rtol=1e-5)
    direction = np.sign(entropy - sac.target_entropy)
    assert direction != 0
    np.testing.assert_allclose(
        float(new.log_alpha), float(state.log_alpha) - sac.config.learning_rate * direction, rtol=1e-5
    )
    np.testing.assert_allclose(float(metrics["alpha"]), float(np.exp(new.log_alpha)), rtol=1e-6)


# ---- HIPI-RL value matrices ------------------------------------------------------------------------


def test_soft_q_matrix_every_pair(sac, state, batch):
    tasks = jnp.asarray([[0.0, 0.0], [0.5, -0.5], [-1.0, 1.0]], jnp.float32)  # K = 3
    m = jax.jit(sac.soft_q_matrix)(state, batch.obs, batch.action, tasks)
    apply = jax.jit(sac.critic.apply)
    assert m.shape == (B, 3)
    for i in range(B):
        for j in range(3):
            q = apply(state.critic_params, batch.obs[i : i + 1], batch.action[i : i + 1], tasks[j : j + 1])
            np.testing.assert_allclose(float(m[i, j]), float(q[0, 0]), rtol=1e-5, atol=1e-6)  # the first critic


@pytest.mark.parametrize("bound", ["", "-10,0"])
def test_first_q_is_the_first_twin(sac, batch, bound):
    agent = dataclasses.replace(sac, config=dataclasses.replace(sac.config, critic_bound=bound))
    params = agent.init(jax.random.PRNGKey(3)).critic_params
    both = agent.critic.apply(params, batch.obs, batch.action, batch.task)
    first = agent.first_q(params, batch.obs, batch.action, batch.task)
    np.testing.assert_allclose(np.asarray(first), np.asarray(both[0]), rtol=1e-6)
    assert not np.allclose(np.asarray(first), np.asarray(both[1]))  # the twins differ


def test_relabel_values_broadcast_per_sample_tasks(sac, state, batch):
    """tasks [B, 1, d] (each sample's own task) give the diagonal of the shared-task matrix."""
    tasks = batch.task
    values = sac.relabel_values(state, "critic")
    shared = values(None, batch.obs, batch.action, batch.next_obs, tasks[None], None, None)  # [B, B]
    own = values(None, batch.obs, batch.action, batch.next_obs, tasks[:, None], None, None)  # [B, 1]
    np.testing.assert_allclose(np.asarray(own[:, 0]), np.diag(np.asarray(shared)), rtol=1e-6)
    with pytest.raises(ValueError, match="critic, backup"):
        sac.relabel_values(state, "auto")


def test_critic_bound_squashes_into_the_interval(sac, batch):
    bounded = dataclasses.replace(sac, config=dataclasses.replace(sac.config, critic_bound="-10,0"))
    params = bounded.init(jax.random.PRNGKey(0)).critic_params
    q = bounded.critic.apply(params, batch.obs, batch.action * 100.0, batch.task * 100.0)
    assert bool(jnp.all((q >= -10.0) & (q <= 0.0)))  # saturates at the ends in float32
    raw = dataclasses.replace(bounded, config=sac.config).critic.apply(params, batch.obs, batch.action, batch.task)
    np.testing.assert_allclose(
        np.asarray(bounded.critic.apply(params, batch.obs, batch.action, batch.task)),
        -10.0 + 10.0 * np.asarray(jax.nn.sigmoid(raw)),
        rtol=1e-5,
    )


def test_soft_backup_matrix_every_pair(sac, state, batch):
    key = jax.random.PRNGKey(9)
    tasks = jnp.asarray([[0.0, 0.0], [0.5, -0.5], [-1.0, 1.0]], jnp.float32)
    rng = np.random.default_rng(2)
    reward = jnp.asarray(rng.choice([-1.0, 0.0], size=(B, 3)), jnp.float32)
    done = jnp.asarray(rng.choice([0.0, 1.0], size=(B, 3)), jnp.float32)
    m = jax.jit(sac.soft_backup_matrix)(state, key, batch.obs, batch.action, batch.next_obs, tasks, reward, done)
    assert m.shape == (B, 3)
    assert bool(jnp.all(jnp.isfinite(m)))
    # NumPy: y_ij = r_ij − log π(a_i|s_i, ψ_j) + γ(1−d_ij) Q_1(s'_i, a'_ij, ψ_j), a'_ij from ε = normal(key)
    tk = np.broadcast_to(np.asarray(tasks)[None], (B, 3, TASK_DIM))
    obs = np.broadcast_to(np.asarray(batch.obs)[:, None], (B, 3, OBS_DIM))
    act = np.broadcast_to(np.asarray(batch.action, np.float64)[:, None], (B, 3, ACTION_DIM))
    mean, log_std = np_actor(state.actor_params, obs, tk)
    u = np.arctanh(act)
    normal_logp = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    log_pi = np.sum(normal_logp - np.log(1 - np.tanh(u) ** 2), axis=-1)
    nobs = np.broadcast_to(np.asarray(batch.next_obs)[:, None], (B, 3, OBS_DIM))
    mean2, log_std2 = np_actor(state.actor_params, nobs, tk)
    a2, _ = np_tanh_gaussian(key, mean2, log_std2)
    nq = np_critic(state.critic_params, nobs, a2, tk)[0]  # the first critic, as the released code
    r, d = np.asarray(reward, np.float64), np.asarray(done, np.float64)
    expected = r - log_pi + sac.config.gamma * (1 - d) * nq
    np.testing.assert_allclose(np.asarray(m), expected, rtol=1e-4, atol=1e-4)


def test_log_prob_of_given_action_matches_sampled_log_prob(sac, state, batch):
    """log π of an action equals the log π returned when that action was sampled."""
    action, log_prob = sac.policy(state.actor_params, jax.random.PRNGKey(4), batch.obs, batch.task)
    again = sac.log_prob(state.actor_params, batch.obs, action, batch.task)
    np.testing.assert_allclose(np.asarray(again), np.asarray(log_prob), rtol=1e-4, atol=1e-3)
    edge = sac.log_prob(state.actor_params, batch.obs, jnp.ones_like(action), batch.task)  # |a| = 1: clipped
    assert bool(jnp.all(jnp.isfinite(edge)))


# ---- gradient clipping -----------------------------------------------------------------------------


def _two_adam_steps(opt, g1, g2):
    params = {"w": jnp.zeros(2)}
    st = opt.init(params)
    u1, st = opt.update({"w": g1}, st, params)
    u2, _ = opt.update({"w": g2}, st, params)
    return np.asarray(u1["w"]), np.asarray(u2["w"])


def test_grad_clip_clips_global_norm_before_adam():
    g1, g2 = jnp.asarray([300.0, 400.0]), jnp.asarray([0.0, 0.5])  # ‖g1‖ = 500, ‖g2‖ < 1
    clipped = SAC(OBS_DIM, ACTION_DIM, TASK_DIM, SACConfig(grad_clip=1.0))
    plain = SAC(OBS_DIM, ACTION_DIM, TASK_DIM, SACConfig(grad_clip=0.0))
    adam = optax.adam(clipped.config.learning_rate)
    want_clipped = _two_adam_steps(adam, g1 / 500.0, g2)
    want_plain = _two_adam_steps(adam, g1, g2)
    got_clipped = _two_adam_steps(clipped.optimizer, g1, g2)
    got_plain = _two_adam_steps(plain.optimizer, g1, g2)
    for got, want in zip(got_clipped + got_plain, want_clipped + want_plain, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # the second step tells them apart (Adam alone normalises the first one away)
    assert not np.allclose(got_clipped[1], got_plain[1], rtol=1e-3)
