"""After training: the saved policy (`policies/`), `load_policy`, `hipi-eval`, `--logger tensorboard`,
metrics.csv, and the Python API's examples.

One tiny `hipi-train` run (the CLI tests' TINY flags, with TensorBoard) is shared by the module.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG
from hypothesis import given
from hypothesis import strategies as st
from test_cli import TINY, snapshot

import hipi_jax
from hipi_jax import (
    checkpoint,
    cli,
    envs,
    eval_cli,
    load_policy,
    plot_cli,
    policy,
    programs,
    render,
    rundir,
    stats,
    training,
)

pytestmark = pytest.mark.usefixtures("fast_compilation")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("after") / "run"
    assert cli.main([*TINY, "--out", str(out), "--no-progress", "--logger", "tensorboard"]) == 0
    return out


def final_state(out: Path):
    tr = training.build(TINY_CONFIG)
    prog = programs.programs(tr)
    state, meta, _ = checkpoint.restore_latest(checkpoint.manager(out / "checkpoints", 2), prog.like)
    assert meta["chunks_done"] == TINY_CONFIG.num_chunks
    return tr, state


# ---- the saved policy ------------------------------------------------------------------------------


def test_every_checkpoint_saves_a_policy_with_its_layout(run_dir):
    assert policy.steps(run_dir) == [34, 58]  # the two chunks of TINY (see test_cli.check_run_dir)
    meta = json.loads((run_dir / "policies" / "step_000000058" / "policy.json").read_text())
    assert meta["env"] == "point_goal" and meta["obs_dim"] == 2 and meta["task_dim"] == 2 and meta["action_dim"] == 2
    assert meta["hidden"] == [8, 8] and meta["env_steps"] == 58
    assert meta["runs"] == [{"run": 0, "seed_index": 0}, {"run": 1, "seed_index": 1}]
    with np.load(run_dir / "policies" / "step_000000058" / "actor.npz") as npz:
        assert "params/mlp/in_0/kernel" in npz.files and all(npz[k].shape[0] == 2 for k in npz.files)
    assert not [p for p in (run_dir / "policies").iterdir() if p.name.startswith(".")]  # no temp dirs left


@pytest.mark.parametrize("run", [0, 1])
def test_loaded_policy_acts_as_the_training_program_evaluates(run_dir, run):
    tr, state = final_state(run_dir)
    params = jax.tree.map(lambda x: x[run], state.agent.actor_params)
    pi = load_policy(run_dir, run_index=run)
    obs, task = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 2))
    np.testing.assert_array_equal(pi.act(obs, task), tr.agent.act(params, None, obs, task, deterministic=True))
    key = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(pi.act(obs, task, key), tr.agent.act(params, key, obs, task))
    # the whole evaluation: the same episodes as the training program's `evaluate` for the same key
    expected = training.evaluate(tr, params, key)
    episodes, _ = eval_cli.evaluate(pi, tr.env, key, TINY_CONFIG.evaluation.episodes, None, True)
    np.testing.assert_allclose(episodes.returns.mean(), expected["eval_return"], rtol=1e-6)
    np.testing.assert_allclose(episodes.success.mean(), expected["eval_success"])


def test_policy_is_jittable_and_vmappable_and_loads_without_a_training_program(run_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_policy built a training program")

    monkeypatch.setattr(programs, "programs", refuse)
    monkeypatch.setattr(programs, "build", refuse)
    monkeypatch.setattr(training, "build", refuse)
    pi = load_policy(run_dir, step=34)
    assert pi.env_steps == 34 and pi.config["run"]["env"] == "point_goal" and pi.run == {"run": 0, "seed_index": 0}
    obs = jnp.zeros((5, 2))
    batch = jax.jit(jax.vmap(lambda p, o: p.act(o, jnp.zeros(2)), in_axes=(None, 0)))(pi, obs)
    chex_shape = batch.shape
    assert chex_shape == (5, 2) and bool(jnp.all(jnp.abs(batch) <= 1.0))


def test_load_policy_names_what_is_available(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no saved policy"):
        load_policy(tmp_path)
    with pytest.raises(ValueError, match="step=7: .* env steps 34, 58"):
        load_policy(run_dir, step=7)
    with pytest.raises(ValueError, match=r"run_index=2 is outside \[0, 2\)"):
        load_policy(run_dir, run_index=2)


def test_saving_a_step_again_replaces_it_whole(tmp_path):
    params = {"params": {"mlp": {"out": {"kernel": np.ones((1, 3, 2), np.float32)}}}}
    meta = {"env": "point_goal", "obs_dim": 2, "task_dim": 2, "action_dim": 1, "hidden": [3], "runs": [{"run": 0}]}
    policy.save(tmp_path, params, 10, meta)
    params["params"]["mlp"]["out"]["kernel"] = np.full((1, 3, 2), 2.0, np.float32)
    policy.save(tmp_path, params, 10, meta)
    assert [p.name for p in (tmp_path / "policies").iterdir()] == ["step_000000010"]
    with np.load(tmp_path / "policies" / "step_000000010" / "actor.npz") as npz:
        assert float(npz["params/mlp/out/kernel"].min()) == 2.0


# ---- hipi-eval --------------------------------------------------------------------------------------


def test_hipi_eval_writes_eval_json_and_prints_a_table(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert eval_cli.main([str(run_dir), "--episodes", "6", "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "point_goal, run 0, policy at 58 env steps: 6 episodes" in printed and "success" in printed
    assert "95% interval" in printed and "(over episodes: percentile bootstrap; success: Wilson)" in printed
    result = json.loads(out.read_text())
    assert result["episodes"] == 6 and result["env_steps"] == 58 and result["deterministic"]
    assert result["run"] == {"run": 0, "seed_index": 0} and "per_task" not in result  # prior draws
    rows = result["per_episode"]
    assert len(rows) == 6 and all(0 < r["length"] <= 50 for r in rows)
    returns = np.array([r["return"] for r in rows])
    assert result["return"]["mean"] == pytest.approx(returns.mean())
    lo, hi = result["return"]["ci95"]
    assert lo <= returns.mean() <= hi
    assert result["success"]["mean"] == pytest.approx(np.mean([r["success"] for r in rows]))
    # successful episodes end at the goal: the return of a sparse goal task is −(steps before success)
    for r in rows:
        assert r["return"] == (-(r["length"] - 1) if r["success"] else -r["length"])


def test_hipi_eval_on_given_tasks(run_dir, tmp_path):
    tasks = np.array([[0.5, 0.5], [-0.5, 0.25]], np.float32)
    np.save(tmp_path / "tasks.npy", tasks)
    out = tmp_path / "eval.json"
    argv = [str(run_dir), "--tasks", str(tmp_path / "tasks.npy"), "--episodes", "3", "--out", str(out)]
    assert eval_cli.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 6
    assert [row["task"] for row in result["per_task"]] == [[0.5, 0.5], [-0.5, 0.25]]
    assert [row["episodes"] for row in result["per_task"]] == [3, 3]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--tasks", "discrete"], "no discrete set"),
        (["--tasks", "nowhere.npy"], "'prior', 'discrete' or an existing file"),
        (["--step", "9"], "step=9"),
        (["--run-index", "5"], "run_index=5"),
        (["--episodes", "0"], "--episodes 0"),
        (["--video", "v.avi"], "v.avi"),
        (["--video", "nowhere/v.gif"], "existing directory"),
        (["--tasks", "TASKS3"], "expected rows of 2 numbers"),
        (["--tasks", "EMPTY"], "expected rows of 2 numbers"),
    ],
)
def test_hipi_eval_bad_input_exits_2_and_writes_nothing(run_dir, tmp_path, capsys, extra, fragment):
    np.save(tmp_path / "three.npy", np.zeros((4, 3), np.float32))
    (tmp_path / "empty.txt").write_text("")
    files = {"TASKS3": str(tmp_path / "three.npy"), "EMPTY": str(tmp_path / "empty.txt")}
    extra = [files.get(a, str(tmp_path / a) if a.startswith("nowhere") else a) for a in extra]
    before = snapshot(run_dir)
    with pytest.raises(SystemExit) as exc:
        eval_cli.main([str(run_dir), "--out", str(tmp_path / "e.json"), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("hipi-eval: error: ") and err.count("\n") == 1 and fragment in err, err
    assert snapshot(run_dir) == before and not (tmp_path / "e.json").exists()


def test_hipi_eval_refuses_a_directory_without_policies(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        eval_cli.main([str(tmp_path)])
    assert exc.value.code == 2 and "holds no saved policy" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_discrete_tasks_are_the_one_hot_task_set():
    family = envs.make("reacher_discrete").task_family
    np.testing.assert_array_equal(eval_cli.read_tasks("discrete", family), np.eye(32, dtype=np.float32))


def test_one_number_per_row_for_scalar_tasks(tmp_path):
    (tmp_path / "v.json").write_text("[0.5, 1, 2]")
    family = envs.make("cheetah_velocity").task_family
    np.testing.assert_array_equal(eval_cli.read_tasks(str(tmp_path / "v.json"), family), [[0.5], [1.0], [2.0]])


def test_success_interval_is_wilson_and_one_episode_has_none():
    assert eval_cli.interval(np.zeros(3), binary=True)["ci95"] == pytest.approx([0.0, 0.5614970])  # 0 of 3
    assert eval_cli.interval(np.r_[np.ones(10), np.zeros(10)], binary=True)["ci95"] == pytest.approx(
        [0.2992980, 0.7007020]  # 10 of 20, Wilson (1927)
    )
    assert eval_cli.interval(np.array([3.0]))["ci95"] is None


def test_a_failed_video_is_one_line_cut_at_a_word(run_dir, tmp_path, capsys, monkeypatch):
    message = "MuJoCo could not create an OpenGL context: " + "libEGL warning: no driver found " * 20

    def fail(*args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(render, "render_episodes", fail)
    video = tmp_path / "v.mp4"
    assert (
        eval_cli.main([str(run_dir), "--episodes", "1", "--video", str(video), "--out", str(tmp_path / "e.json")]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(" ...") and not video.exists()
    assert err[: -len(" ...")].split()[-1] in message.split()  # cut after a whole word
    assert err.startswith(f"hipi-eval: error: rendering {video} failed: RuntimeError: MuJoCo could not")


def test_iqm_by_hand_and_its_bootstrap_interval():
    assert stats.iqm([1, 2, 3, 4, 100]) == 3.0  # ⌊5/4⌋ = 1 entry trimmed from each end
    assert stats.iqm([4.0, 1.0, 3.0]) == pytest.approx(8 / 3)  # below 4 entries: the mean
    assert stats.iqm_ci([0.7]) is None and stats.iqm_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    lo, hi = stats.iqm_ci([1, 2, 3, 4, 100])
    assert 1.0 <= lo < 3.0 < hi <= 100.0 and stats.iqm_ci([1, 2, 3, 4, 100]) == (lo, hi)  # deterministic


@given(hnp.arrays(np.float64, st.integers(1, 6).map(lambda k: 4 * k), elements=st.floats(-1e6, 1e6)))
def test_iqm_is_the_mean_of_the_sorted_middle_half(x):
    n = len(x)
    assert stats.iqm(x) == pytest.approx(np.sort(x)[n // 4 : 3 * n // 4].mean(), rel=1e-9, abs=1e-6)


def test_hipi_eval_draws_point_goal_paths(run_dir, tmp_path):
    png = tmp_path / "paths.png"
    assert eval_cli.main([str(run_dir), "--episodes", "3", "--out", str(tmp_path / "e.json"), "--video", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")


# ---- logging ----------------------------------------------------------------------------------------


def test_metrics_csv_is_one_tidy_row_per_run_per_evaluation(run_dir):
    records = rundir.read_jsonl(run_dir / "metrics.jsonl")
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records) * TINY_CONFIG.runs
    assert list(rows[0])[:5] == ["run", "seed_index", "env_steps", "updates", "wall_s"]
    for i, row in enumerate(rows):
        rec, run = records[i // 2], i % 2
        assert int(row["run"]) == run and int(row["env_steps"]) == rec["env_steps"]
        assert float(row["eval_return"]) == rec["eval_return"][run]
        assert row["critic_loss"] == ("" if i < 2 else repr(rec["critic_loss"][run]))


def test_metrics_jsonl_has_no_float32_noise(run_dir):
    text = (run_dir / "metrics.jsonl").read_text()
    for value in rundir.read_jsonl(run_dir / "metrics.jsonl")[-1]["critic_loss"]:
        assert repr(value) == str(np.float32(value))  # the shortest decimal of the float32
    assert "000000" not in text.replace("0.000000", "")


def test_tensorboard_event_files_hold_the_metrics(run_dir):
    from test_loggers import scalars as read_scalars

    f32 = lambda x: float(np.float32(x))
    records = rundir.read_jsonl(run_dir / "metrics.jsonl")
    for run, label in enumerate(("seed0", "seed1")):
        scalars = read_scalars(run_dir / "tensorboard" / label)
        assert [s for s, _ in scalars["eval_return"]] == [r["env_steps"] for r in records]
        assert [v for _, v in scalars["eval_return"]] == [f32(r["eval_return"][run]) for r in records]
        assert [v for _, v in scalars["critic_loss"]] == [f32(r["critic_loss"][run]) for r in records[1:]]


# ---- the Python API and its examples ----------------------------------------------------------------


def test_the_package_exports_the_api():
    for name in ("TrainConfig", "train", "load_policy", "rollout", "envs", "Policy", "__version__"):
        assert hasattr(hipi_jax, name), name
    assert callable(hipi_jax.train) and callable(hipi_jax.envs.register)


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="'nav2d' is already registered"):
        envs.register("nav2d", envs.make)


def run_example(name: str, argv: list[str]):
    sys.path.insert(0, str(EXAMPLES))
    try:
        module = __import__(name)
        return module.main(argv)
    finally:
        sys.path.remove(str(EXAMPLES))


TINY_NAV = ["--env-steps", "96", "--warmup-steps", "32", "--eval-every", "32", "--hidden", "8,8"]


def test_example_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "nav"
    summary = run_example("train_from_python", ["--out", str(out), *TINY_NAV])
    assert summary["env_steps"] == 96 and len(summary["eval_success"]) == 2
    assert (out / "metrics.csv").is_file() and policy.steps(out) == [64, 96]
    result = run_example("evaluate_policy", [str(out), "--episodes", "3"])
    assert set(result) == {"return", "success"} and 0.0 <= result["success"] <= 1.0
    assert "point_goal policy at 96 env steps" in capsys.readouterr().out


def test_example_custom_env_trains_and_evaluates_with_import(tmp_path, capsys):
    out = tmp_path / "line"
    try:
        result = run_example("custom_env", ["--out", str(out), "--env-steps", "160",
                                            "--warmup-steps", "32", "--hidden", "8,8"])  # fmt: skip
        assert 0.0 <= result["success"] <= 1.0 and len(result["train_success"]) == 1
        assert "line" in envs.names()
        envs._REGISTRY.pop("line")  # as in a new process
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            eval_cli.main([str(out), "--episodes", "2"])
        assert e.value.code == 2
        assert "'line' is not registered here; a custom env's module: --import MODULE" in capsys.readouterr().err
        assert eval_cli.main([str(out), "--episodes", "2", "--import", str(EXAMPLES / "custom_env.py")]) == 0
        assert json.loads((out / "eval.json").read_text())["episodes"] == 2
        with pytest.raises(SystemExit):
            eval_cli.main([str(out), "--import", str(tmp_path / "missing.py")])
        assert "--import" in capsys.readouterr().err
    finally:
        envs._REGISTRY.pop("line", None)


def test_examples_are_documented_scripts():
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text()
        assert text.startswith('"""') and "def main(argv" in text and f"examples/{path.name}" in text, path.name


def test_a_policy_prints_its_sizes_not_its_arrays(run_dir):
    policy = load_policy(run_dir)
    text = repr(policy)
    assert text.startswith("Policy(env='point_goal', env_steps=") and len(text) < 300
    count = sum(x.size for x in jax.tree.leaves(policy.params))
    assert text.endswith(f"hidden=(8, 8), parameters={count:,})")


def test_hipi_plot_draws_several_runs_on_one_figure(run_dir, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        (other / name).write_bytes((run_dir / name).read_bytes())
    png = tmp_path / "both.png"
    assert plot_cli.main([str(run_dir), str(other), "--labels", "a,b", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "2 curves" in out and "interquartile mean (IQM) over seeds with its 95% percentile-bootstrap" in out
    table = out.splitlines()[-3:]
    assert table[0].split("  ")[0] == "curve" and "success: IQM [95% CI]" in table[0]
    final = [r for r in rundir.read_jsonl(run_dir / "metrics.jsonl") if "eval_success" in r][-1]
    iqm, (lo, hi) = stats.iqm(final["eval_success"]), stats.iqm_ci(final["eval_success"])
    assert table[1].startswith("a: inverse_rl (2 seeds)") and table[1].endswith(f"{iqm:.3f} [{lo:.3f}, {hi:.3f}]")
    assert table[2].startswith("b: inverse_rl (2 seeds)")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    lines = plot_cli.curves(run_dir, "a")
    assert list(lines) == ["a: inverse_rl (2 seeds)"] and lines["a: inverse_rl (2 seeds)"] == rundir.read_jsonl(
        run_dir / "metrics.jsonl"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--labels", "a"], "--labels gives 1 labels for 2 run directories"),
        (["--labels", "a,a"], "the labels a, a repeat"),
        (["--out", "{tmp}/x.pdf"], "must end in .png"),
        (["--out", "{tmp}/no/x.png"], "must be a file in an existing directory"),
        (["--out", "{run}/curves.png"], "is the run's own curves.png"),
    ],
)
def test_hipi_plot_bad_input_is_one_line(run_dir, tmp_path, capsys, argv, fragment):
    argv = [a.format(tmp=tmp_path, run=run_dir) for a in argv]
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as e:
        plot_cli.main([str(run_dir), str(run_dir), "--out", str(tmp_path / "x.png"), "--labels", "a,b", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert snapshot(tmp_path) == before


def test_hipi_plot_names_a_directory_that_holds_no_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot_cli.main([str(tmp_path), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert (
        err.startswith(f"hipi-plot: error: {tmp_path} is not a readable hipi-train run") and len(err.splitlines()) == 1
    )


def test_the_readme_python_snippet_runs_as_printed(run_dir, capsys):
    """The `load_policy` block of README "Using a trained policy", on a tiny point_goal run in its place."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    after = readme[readme.index("## Using a trained policy") :]
    snippet = after[after.index("```python\n") + len("```python\n") :]
    snippet = snippet[: snippet.index("```")]
    assert 'load_policy("runs/point_goal")' in snippet
    exec(snippet.replace("runs/point_goal", str(run_dir)), {})
    assert capsys.readouterr().out.startswith("Policy(env='point_goal', env_steps=")
