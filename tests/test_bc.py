"""HIPI-BC (Alg. 3): returns matrix, relabeling, normalisation, early stopping, dataset schema, CLI."""

from __future__ import annotations

import dataclasses
import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG

from hipi_jax import bc, bc_cli, dataset, envs
from hipi_jax.agents.bc import Normalizer
from hipi_jax.episodes import rollout
from hipi_jax.relabel import inverse_rl_log_probs
from hipi_jax.tasks import Discrete, Linear

pytestmark = pytest.mark.usefixtures("fast_compilation")

TINY = bc.BCConfig.of(hidden=(16, 16), batch_size=32, max_epochs=5, eval_episodes=4, candidates=16)


def random_dataset(name: str = "point_goal", n: int = 12, seed: int = 0) -> dataset.Dataset:
    """Uniform-random-action episodes of env `name` on prior tasks."""
    env = envs.make(name)

    def act(key, obs, task):
        return jax.random.uniform(key, (obs.shape[0], env.action_dim), minval=-1.0, maxval=1.0)

    ep = jax.device_get(jax.jit(partial(rollout, env, act, n=n))(jax.random.key(seed)))
    return dataset.Dataset(ep.obs, ep.actions, ep.features, ep.mask, ep.tasks, env=name)


def test_trajectory_returns_match_a_hand_computation():
    family = Linear(low=[-1.0, -1.0], high=[1.0, 1.0], control_cost=0.1)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 4, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(3, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)
    tasks = rng.uniform(-1, 1, size=(5, 2)).astype(np.float32)
    data = dataset.Dataset(np.zeros((3, 4, 2), np.float32), actions, features, mask, None, env="point_goal")
    got = np.asarray(bc.trajectory_returns(family, data, jnp.asarray(tasks), task_batch=2))
    expected = np.zeros((3, 5))
    for i in range(3):
        for j in range(5):
            for t in range(4):
                if mask[i, t]:
                    expected[i, j] += features[i, t] @ tasks[j] - 0.1 * actions[i, t] @ actions[i, t]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_relabel_on_a_known_dataset_and_the_fig8_bias():
    """Two trajectories, each reaching one of two targets for its whole length: inverse RL gives each
    its own target. A bias on the first task's reward moves every trajectory to it without log Z
    (Fig. 8) and changes nothing with log Z."""
    family = Discrete(targets=[[0.0, 0.0], [1.0, 0.0]], margin=0.1)
    features = np.array([[[0.0, 0.0]] * 3, [[1.0, 0.0]] * 3], np.float32)  # [2, 3, 2]
    data = dataset.Dataset(
        features, np.zeros((2, 3, 2), np.float32), features, np.ones((2, 3), bool), None, env="point_goal"
    )
    candidates = jnp.eye(2)
    returns = bc.trajectory_returns(family, data, candidates)
    np.testing.assert_array_equal(np.asarray(returns), [[0.0, -3.0], [-3.0, 0.0]])
    keys = jax.random.split(jax.random.key(0), 2000)
    draws = jax.vmap(lambda k: bc.relabel(k, returns, candidates, bc.BCConfig().relabel_spec))(keys)  # [2000, 2, 2]
    own = np.asarray(draws[:, 0, 0] == 1).mean(), np.asarray(draws[:, 1, 1] == 1).mean()
    p_own = np.exp(3) / (1 + np.exp(3))  # q(own | τ) with log Z = log mean exp = the same for both columns
    np.testing.assert_allclose(own, [p_own, p_own], atol=0.03)

    biased = returns.at[:, 0].add(10.0 * 3)
    for use_partition, unchanged in ((True, True), (False, False)):
        base = np.asarray(jax.nn.softmax(inverse_rl_log_probs(returns, use_partition=use_partition)))
        new = np.asarray(jax.nn.softmax(inverse_rl_log_probs(biased, use_partition=use_partition)))
        assert np.allclose(base, new, atol=1e-6) == unchanged
    no_z = np.asarray(jax.nn.softmax(inverse_rl_log_probs(biased, use_partition=False)))
    assert np.all(no_z[:, 0] > 0.99)  # every trajectory relabeled to the biased task


def test_normalizer_fit_and_round_trip():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(4, 5, 3)).astype(np.float32)
    x[..., 2] = 7.0  # a constant dimension
    mask = rng.uniform(size=(4, 5)) < 0.7
    mask[:, 0] = True
    norm = Normalizer.fit(jnp.asarray(x.reshape(20, 3)), jnp.asarray(mask.reshape(20)))
    valid = x[mask]
    np.testing.assert_allclose(norm.mean, valid.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.std[:2], valid.std(0)[:2], rtol=1e-4)
    assert float(norm.std[2]) == 1.0
    np.testing.assert_allclose(norm.denormalize(norm.normalize(jnp.asarray(x))), x, rtol=1e-5, atol=1e-5)
    z = np.asarray(norm.normalize(jnp.asarray(x)))[mask]
    np.testing.assert_allclose(z[:, :2].mean(0), 0.0, atol=1e-5)


def test_early_stopping_stops_when_validation_loss_rises():
    """Cloning pure-noise actions with a large step size: the validation loss cannot keep falling, so
    training stops before the epoch limit, right after `patience` rises in a row."""
    data = random_dataset(n=20)
    config = TINY.replace(max_epochs=60, patience=2, learning_rate=3e-2, batch_size=16)
    steps = bc.Steps.of(data)
    _, fit = jax.jit(config.learner.train)(steps.obs, steps.actions, steps.traj, data.tasks, jax.random.key(0))
    epochs = int(fit.epoch)
    curve = np.asarray(fit.val_curve)
    assert 2 < epochs < config.learner.max_epochs
    assert np.all(np.isfinite(curve[:epochs])) and np.all(np.isnan(curve[epochs:]))
    assert curve[epochs - 1] > curve[epochs - 2] > curve[epochs - 3]  # the last `patience` epochs rose
    assert float(fit.best_val) == pytest.approx(curve[:epochs].min())


def test_action_clip_bounds_targets_and_actions_to_c_demonstration_stds():
    """App. C.11: with action_clip c the cloner trains on, and acts with, normalised actions in [−c, c], so
    it never commands an action farther than c stds from the demonstrations' mean; without it, it does."""
    data = random_dataset(n=20)
    steps = bc.Steps.of(data)
    far = 0
    for clip in (0.0, 0.2):
        learner = TINY.replace(max_epochs=5, action_clip=clip).learner
        policy, _ = jax.jit(learner.train)(steps.obs, steps.actions, steps.traj, data.tasks, jax.random.key(0))
        y = np.asarray(learner.bound(policy.action_norm.normalize(steps.actions)))
        actions = np.asarray(jax.vmap(partial(learner.act, policy))(steps.obs, data.tasks[steps.traj]))
        norm = policy.action_norm  # the training steps' mean and std
        deviation = np.abs(actions - np.asarray(norm.mean)) / np.asarray(norm.std)
        if clip:
            assert np.abs(y).max() == pytest.approx(clip) and deviation.max() <= clip * (1 + 1e-5)
        else:
            far = deviation.max()
    assert far > 0.4  # unclipped, the same cloner goes farther out


@pytest.mark.parametrize("method", bc.METHODS)
def test_every_method_runs_vmapped_over_seeds(method):
    out = bc.run(TINY.replace(method=method), random_dataset(), seed=0, seeds=2)
    assert out["eval_return"].shape == (2,) and np.all(np.isfinite(out["eval_return"]))
    assert np.all(out["epochs"] >= 1)


def test_steps_keep_exactly_the_valid_steps():
    data = random_dataset(n=6)
    lengths = np.array([50, 1, 17, 50, 3, 30])
    mask = np.arange(data.mask.shape[1])[None, :] < lengths[:, None]
    data = data.replace(mask=mask)
    steps = bc.Steps.of(data)
    assert steps.obs.shape[0] == lengths.sum()
    np.testing.assert_array_equal(np.bincount(steps.traj), lengths)
    for r in (0, steps.obs.shape[0] // 2, steps.obs.shape[0] - 1):
        i, t = steps.traj[r], r - mask[: steps.traj[r]].sum()
        np.testing.assert_array_equal(steps.obs[r], np.asarray(data.obs)[i, t])
        np.testing.assert_array_equal(steps.actions[r], np.asarray(data.actions)[i, t])


def test_demonstrations_train_an_expert_and_roll_it_out(tmp_path):
    config = TINY_CONFIG.replace(seeds=1)
    data, summary = bc.demonstrations(config, 5, jax.random.key(0), progress=False)
    env = envs.make(config.run.env)
    assert data.obs.shape == (5, env.max_steps, env.obs_dim) and data.tasks.shape == (5, env.task_family.task_dim)
    assert summary["env_steps"] >= config.run.env_steps
    mask = np.asarray(data.mask)
    assert np.all(mask[:, 0]) and not np.any(mask[:, 1:] & ~mask[:, :-1])
    dataset.save(tmp_path / "d.npz", data)
    assert dataset.load(tmp_path / "d.npz").num_trajectories == 5


def test_dataset_round_trip(tmp_path):
    data = random_dataset(n=3)
    dataset.save(tmp_path / "d.npz", data)
    back = dataset.load(tmp_path / "d.npz")
    assert back.env == "point_goal"
    for k in ("obs", "actions", "features", "mask", "tasks"):
        np.testing.assert_array_equal(getattr(back, k), np.asarray(getattr(data, k)))


def _write(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_dataset_schema_errors(tmp_path):
    good = {k: np.asarray(v) for k, v in dataclasses.asdict(random_dataset(n=3)).items() if k != "env"}
    good["env"] = np.asarray("point_goal")
    hole = np.zeros_like(good["mask"])
    hole[:, [0, 2]] = True
    _write(tmp_path / "by_numpy.npz", **good)  # a file written by another tool with the schema loads
    assert dataset.load(tmp_path / "by_numpy.npz").num_trajectories == 3
    cases = {
        "missing actions": ({k: v for k, v in good.items() if k != "actions"}, "missing actions"),
        "unknown env": ({**good, "env": np.asarray("mars")}, "unknown env 'mars'"),
        "wrong obs dim": ({**good, "obs": good["obs"][..., :1]}, "needs"),
        "nan": ({**good, "features": good["features"] * np.nan}, "finite"),
        "mask hole": ({**good, "mask": hole}, "prefix"),
        "one trajectory": ({k: (v[:1] if v.ndim else v) for k, v in good.items()}, "N >= 2"),
    }  # fmt: skip
    for name, (arrays, message) in cases.items():
        _write(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(dataset.DatasetError, match=message):
            dataset.load(tmp_path / f"{name}.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(dataset.DatasetError, match="not a readable .npz"):
        dataset.load(tmp_path / "text.npz")
    with pytest.raises(dataset.DatasetError, match="no such file"):
        dataset.load(tmp_path / "absent.npz")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "DATA", "--out", "OUT", "--methods", "hipi,magic"], "must be one of"),
        (["train", "--data", "DATA", "--out", "OUT", "--seeds", "0"], "--seeds 0"),
        (["train", "--data", "DATA", "--out", "OUT", "--max-epochs", "0"], "max_epochs=0"),
        (["train", "--data", "MISSING", "--out", "OUT"], "no such file"),
        (
            ["train", "--data", "DATA", "--out", "OUT", "--methods", "air", "--candidates", "4", "--top-k", "5"],
            "top_k=5 exceeds the 4 candidate tasks",
        ),
        (["train", "--data", "DATA", "--out", "OUT", "--top-k", "0"], "top_k=0"),
        (["train", "--data", "DATA", "--out", "OUT", "--action-clip", "-1"], "action_clip=-1.0"),
        (["collect", "--env", "gridworld", "--out", "OUT/d.npz"], "invalid choice: 'gridworld'"),
        (["collect", "--env", "point_goal", "--out", "OUT/d.npz", "--episodes", "1"], "--episodes 1"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    dataset.save(tmp_path / "data.npz", random_dataset(n=3))
    subst = {"DATA": str(tmp_path / "data.npz"), "MISSING": str(tmp_path / "nope.npz"), "OUT": str(tmp_path / "out")}
    argv = [next((a.replace(k, v) for k, v in subst.items() if k in a), a) for a in argv]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as e:
        bc_cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_cli_train_writes_results(tmp_path):
    dataset.save(tmp_path / "data.npz", random_dataset(n=6))
    argv = ["train", "--data", str(tmp_path / "data.npz"), "--out", str(tmp_path / "run"), "--seeds", "2",
            "--methods", "hipi,agnostic", "--max-epochs", "2", "--eval-episodes", "3", "--candidates", "8",
            "--batch-size", "64"]  # fmt: skip
    assert bc_cli.main(argv) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["methods"]) == {"hipi", "agnostic"}
    assert len(results["methods"]["hipi"]["eval_return"]) == 2
    assert (tmp_path / "run" / "bc.png").stat().st_size > 0
    with pytest.raises(SystemExit) as e:  # results exist: refused without --overwrite
        bc_cli.main(argv)
    assert e.value.code == 2


def test_chunked_rollout_is_the_chunks_rollouts_end_to_end():
    from hipi_jax.episodes import chunked_rollout, rollout

    env = envs.make("point_goal")
    act = lambda key, obs, task: jnp.zeros((obs.shape[0], env.action_dim))  # noqa: E731
    key = jax.random.key(3)
    out = chunked_rollout(env, act, key, 5, chunk=2)  # 3 chunks of 2, the 6th episode dropped
    assert out.returns.shape == (5,) and out.obs.shape[0] == 5
    keys = jax.random.split(key, 3)
    whole = [rollout(env, act, k, 2) for k in keys]
    expected = np.concatenate([np.asarray(w.returns) for w in whole])[:5]
    np.testing.assert_array_equal(np.asarray(out.returns), expected)
    np.testing.assert_array_equal(np.asarray(out.obs[4]), np.asarray(whole[2].obs[0]))
