"""The figure scripts of experiments/ end to end at toy size: Fig. 2's and Fig. 4's claims hold,
strategy_curves (behind Fig. 5 / Fig. 6) writes the results schema and never reruns a complete
(env, strategy) pair, and the HIPI-BC scripts (Fig. 7 / Fig. 8) read a saved dataset."""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from test_bc import random_dataset

from hipi_jax import console, dataset, report, rundir, stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))

import fig2_partition  # noqa: E402
import fig7_bc  # noqa: E402
import fig8_partition_ablation  # noqa: E402
import gridworld_stitching  # noqa: E402
import learning_unchanged  # noqa: E402
import strategy_curves  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compilation")
TINY = {"env": "point_goal", "seeds": 2, "env_steps": 40, "warmup_steps": 9, "num_envs": 2, "batch_size": 8,
        "hidden": (8, 8), "buffer_size": 64, "eval_every": 25, "eval_episodes": 2}  # fmt: skip


def test_fig2_log_z_reassigns_the_small_scale_trajectory(tmp_path):
    assert fig2_partition.main(["--out", str(tmp_path), "--seeds", "2", "--draws", "50"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["without_log_z"]["assigned_task"] == [0, 0]  # both go to the large-scale task
    assert results["with_log_z"]["assigned_task"] == [0, 1]
    assert results["claim_reproduced"] is True
    assert (tmp_path / "fig2_partition.png").read_bytes().startswith(b"\x89PNG")


def test_gridworld_inverse_rl_stitches_and_final_does_not(tmp_path):
    assert gridworld_stitching.main(["--out", str(tmp_path), "--seeds", "1", "--size", "5", "--seed", "0"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    final = results["final"]["success_per_start_and_goal"]
    assert final == {"A->B": 1, "A->D": 0, "C->B": 0, "C->D": 1}  # each trajectory's own goal only
    assert results["inverse_rl"]["success_per_start_and_goal"]["A->D"] == 1  # A -> crossing -> D
    assert results["inverse_rl"]["success_rate"] > results["final"]["success_rate"]
    assert set(results["final"]["success_per_goal"].values()) <= {0, 1}


def test_bad_size_exits_2():
    with pytest.raises(SystemExit) as exc:
        gridworld_stitching.parse(["--size", "2"])
    assert exc.value.code == 2


def test_strategy_curves_writes_the_schema_and_skips_complete_runs(tmp_path, capsys):
    p = strategy_curves.parser("test", "point_goal", "none", str(tmp_path))
    budgets = {"point_goal": {"env_steps": 40, "warmup_steps": 9, "num_envs": 2, "batch_size": 8, "hidden": (8, 8),
                              "buffer_size": 64, "eval_every": 25, "eval_episodes": 2}}  # fmt: skip
    argv = ["--out", str(tmp_path), "--seeds", "2", "--no-progress", "--strategies", "none,random",
            "--updates-per-env-step", "1,2", "--in-process"]  # fmt: skip
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    entry = results["point_goal"]["none"]
    assert set(entry["by_utd"]) == {"1", "2"}
    areas = {u: e["area_eval_success_mean"] for u, e in entry["by_utd"].items()}
    assert entry["utd"] == max(areas, key=areas.get)  # App. C.1: the best by area is reported
    assert entry["eval_success"] == entry["by_utd"][entry["utd"]]["eval_success"]
    assert entry["env_steps"] == [10, 34, 58]
    assert len(entry["eval_success"]) == 2 and len(entry["eval_success"][0]) == 3  # [seeds, points]
    assert (tmp_path / f"{tmp_path.name}.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "point_goal_diagnostics.png").read_bytes().startswith(b"\x89PNG")
    mean, (lo, hi) = entry["final_eval_return_mean"], entry["final_eval_return_ci"]
    text = (tmp_path / "table.md").read_text()
    assert f"| point_goal | `none` | {entry['utd']} (1,2) | 2 | 58 | " in text
    assert f"{mean:.2f} [{lo:.2f}, {hi:.2f}]" in text
    assert "- **point_goal**" in text and ("`none` " in text.split("Paired verdicts")[1])
    assert (tmp_path / "point_goal" / "random" / "utd2" / "summary.json").exists()
    assert not (tmp_path / "point_goal" / "random" / "utd2" / "checkpoints").exists()  # buffers removed
    assert (tmp_path / "point_goal" / "random" / "utd2" / "policies").is_dir()
    capsys.readouterr()
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    assert "complete" in capsys.readouterr().out


def test_strategy_curves_adds_new_runs_to_a_recorded_results_json(tmp_path, capsys, monkeypatch):
    p = strategy_curves.parser("test", "point_goal", "none", str(tmp_path))
    budgets = {"point_goal": {"env_steps": 40, "warmup_steps": 9, "num_envs": 2, "batch_size": 8, "hidden": (8, 8),
                              "buffer_size": 64, "eval_every": 25, "eval_episodes": 2}}  # fmt: skip
    first, later = tmp_path / "first", tmp_path / "later"
    argv = ["--seeds", "2", "--no-progress", "--strategies", "none", "--in-process"]
    monkeypatch.setattr(sys, "argv", ["fig", "first"])
    assert (
        strategy_curves.run(strategy_curves.check(p, p.parse_args([*argv, "--out", str(first)]), budgets), budgets, "t")
        == 0
    )
    record = json.loads((first / "results.json").read_text())["results"]
    later.mkdir()  # a fresh machine: only the committed results.json, no run directories
    (later / "results.json").write_text((first / "results.json").read_text())
    argv = [*argv, "--out", str(later), "--updates-per-env-step", "2"]
    monkeypatch.setattr(sys, "argv", ["fig", "later"])
    capsys.readouterr()
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    assert "diagnostics.png not redrawn, no metrics.jsonl for none" in capsys.readouterr().out
    entry = json.loads((later / "results.json").read_text())["results"]["point_goal"]["none"]
    assert entry["by_utd"]["1"] == record["point_goal"]["none"]["by_utd"]["1"]  # kept as recorded
    assert (later / "point_goal" / "none" / "utd2" / "summary.json").exists()  # the new run, in its directory
    assert set(entry["by_utd"]) == {"1", "2"} and entry["utd"] in ("1", "2")
    made = json.loads((later / "results.json").read_text())["commands"]
    assert made == ["fig first", "fig later"]  # the record names every command that made it
    assert "| point_goal | `none` |" in (later / "table.md").read_text() and "(1,2)" in (later / "table.md").read_text()


def test_strategy_curves_resumes_a_run_stopped_part_way(tmp_path, capsys, monkeypatch):
    p = strategy_curves.parser("test", "point_goal", "none", str(tmp_path))
    budgets = {"point_goal": {"env_steps": 40, "warmup_steps": 9, "num_envs": 2, "batch_size": 8, "hidden": (8, 8),
                              "buffer_size": 64, "eval_every": 25, "eval_episodes": 2}}  # fmt: skip
    argv = ["--out", str(tmp_path), "--seeds", "2", "--no-progress", "--strategies", "none", "--in-process"]
    monkeypatch.setattr(strategy_curves.shutil, "rmtree", lambda *a, **k: None)  # as if stopped before the clean-up
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    run_dir = tmp_path / "point_goal" / "none" / "utd1"
    first = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").unlink()  # stopped after its first chunk's checkpoint:
    steps = sorted((run_dir / "checkpoints").iterdir(), key=lambda d: int(d.name))
    assert len(steps) == 2
    strategy_curves.shutil.move(steps[-1], tmp_path / "later")  # the last chunk's checkpoint never written
    capsys.readouterr()
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads((run_dir / "summary.json").read_text())["eval_return"] == first["eval_return"]
    monkeypatch.undo()
    (run_dir / "summary.json").unlink()  # stopped before its first checkpoint: trained afresh
    strategy_curves.shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "checkpoints").mkdir()
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    assert "point_goal/none/utd1: training" in capsys.readouterr().out
    assert json.loads((run_dir / "summary.json").read_text())["eval_return"] == first["eval_return"]


def hanging_child(config: dict, run_dir: str, resume: bool, progress: bool, always: bool = False) -> None:
    """strategy_curves.train_child whose first attempt (or every one, `always`) hangs after 1 chunk,
    under a 10-second stall guard: the spawned child imports this module to run it."""
    from hipi_jax import runner

    if always or not resume:
        calls, check = [0], runner.check_finite

        def blocking(*args):
            calls[0] += 1
            if calls[0] > 1:
                threading.Event().wait()
            return check(*args)

        runner.check_finite = blocking
    console.setup_logging("hipi-train")
    runner.train(strategy_curves.TrainConfig.from_dict(config), Path(run_dir), overwrite=not resume,
                 resume=resume, progress=False, stall_timeout=10)  # fmt: skip


def always_hanging_child(*args) -> None:
    hanging_child(*args, always=True)


@pytest.fixture
def child_env(tmp_path_factory, monkeypatch):
    """Spawned children compile cheaply and share a persistent cache (jax reads these variables)."""
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "child_cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


def test_a_hung_piece_is_stopped_and_resumed_once_in_a_fresh_process(tmp_path, capfd, child_env):
    config = strategy_curves.TrainConfig.from_options(**{**TINY, "env_steps": 90})  # 4 chunks
    reference = tmp_path / "reference"
    expected = strategy_curves.train_piece(config, reference, False, False)
    run_dir = tmp_path / "run"
    capfd.readouterr()
    summary = strategy_curves.train_piece(config, run_dir, False, False, target=hanging_child)
    out, err = capfd.readouterr()
    assert f"{run_dir}: hung and stopped; resuming once" in out
    assert re.search(r"no progress for \d+ s after env step \d+ ", err)
    assert summary["eval_return"] == expected["eval_return"]
    strip = lambda path: [{k: v for k, v in r.items() if k != "wall_s"} for r in rundir.read_jsonl(path)]  # noqa: E731
    assert strip(run_dir / "metrics.jsonl") == strip(reference / "metrics.jsonl")
    with pytest.raises(SystemExit) as e:  # a second stall is not retried
        strategy_curves.train_piece(config, tmp_path / "again", False, False, target=always_hanging_child)
    assert e.value.code == 75
    assert "training failed (exit 75)" in capfd.readouterr().err


def test_bootstrap_interval_and_paired_verdict_by_hand():
    assert strategy_curves.bootstrap_ci(np.full(5, 0.3)) == pytest.approx((0.3, 0.3))
    lo, hi = strategy_curves.bootstrap_ci(np.array([0.0, 1.0]))
    assert lo == 0.0 and hi == 1.0  # resampling 2 seeds: means 0, 0.5 or 1
    curve = lambda *rows: {"env_steps": [1, 2], "eval_success": [list(r) for r in rows]}
    a = curve((0.5, 0.7), (0.4, 0.6), (0.6, 0.8))  # areas 0.6, 0.5, 0.7
    b = curve((0.1, 0.3), (0.2, 0.2), (0.3, 0.5))  # areas 0.2, 0.2, 0.4: every seed's difference > 0
    d = strategy_curves.paired(a, b)
    assert d["mean"] == pytest.approx(1.0 / 3.0) and d["ci"][0] > 0
    assert strategy_curves.paired(a, curve((0.1, 0.3))) is None  # other seeds: no paired verdict
    results = {"e": {"A": {**a, "area_eval_success_mean": 0.6}, "B": {**b, "area_eval_success_mean": 0.27}}}
    assert d["t_ci"] == pytest.approx((1 / 3 - 4.302653 * 0.057735 / 3**0.5, 1 / 3 + 4.302653 * 0.057735 / 3**0.5))
    assert d["p"] == pytest.approx(0.0098, abs=1e-4)  # t = 10 on 2 degrees of freedom
    line = "`A` faster than `B`: +0.333, bootstrap [+0.300, +0.400], t [+0.190, +0.477], Holm p = 0.0098"
    assert line in strategy_curves.verdicts(results)
    results["e"]["B"] = {**a, "area_eval_success_mean": 0.6}
    assert "not distinguishable" in strategy_curves.verdicts(results)


def test_holm_and_t_intervals_by_hand():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])  # ×3, ×1→0.06, ×2, ×4
    assert stats.holm([0.5]) == pytest.approx([0.5]) and stats.holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])
    assert stats.t_ci([1, 2, 3, 4, 5]) == pytest.approx(
        (3 - 2.776445 * 1.581139 / 5**0.5, 3 + 2.776445 * 1.581139 / 5**0.5)
    )
    assert stats.t_ci([1.0]) is None and stats.t_test_p([0.2, 0.2]) == 0.0 and stats.t_test_p([0.0, 0.0]) == 1.0


def test_a_verdict_the_bootstrap_alone_supports_is_not_faster_after_holm():
    """Three pairs of 3 seeds whose differences (0.01, 0.1, 0.2) keep every bootstrap interval above 0
    but leave a paired t-test near p = 0.2: not faster, and the line says what the bootstrap says."""
    curve = lambda *areas: {"env_steps": [1], "eval_success": [[x] for x in areas]}  # noqa: E731
    strategies = {"A": curve(0.31, 0.4, 0.5), "B": curve(0.3, 0.3, 0.3), "C": curve(0.0, 0.0, 0.0)}
    for e in strategies.values():
        e["area_eval_success_mean"] = float(np.mean(e["eval_success"]))
    text = strategy_curves.verdicts({"e": strategies})
    assert "`A` not distinguishable from `B`" in text and "(the bootstrap interval alone: faster)" in text
    assert "`B` faster than `C`" in text and "3 pairs" in text


@pytest.fixture
def saved_demos(tmp_path, monkeypatch):
    """A random point_goal dataset saved as fig7_bc saves an expert's, and tiny BC networks."""
    monkeypatch.setattr(fig7_bc, "BC", {"hidden": (8, 8), "batch_size": 16, "max_epochs": 2, "candidates": 8})
    argv = ["--domains", "point_goal", "--seeds", "2", "--episodes", "6", "--eval-episodes", "2", "--no-progress"]
    demos = tmp_path / "demos"
    spec = fig7_bc.budget(fig7_bc.parse(fig7_bc.parser(fig7_bc.__doc__), [*argv, "--out", str(demos)]), "point_goal")
    (demos / "point_goal").mkdir(parents=True)
    dataset.save(demos / "point_goal" / "demos.npz", random_dataset("point_goal", n=6))
    report.write_json(demos / "point_goal" / "expert.json", {"budget": spec, "expert": {"eval_return": [0.0]}})
    return [*argv, "--demos", str(demos)]


@pytest.mark.parametrize(
    "script, methods",
    [
        (fig7_bc, set(fig7_bc.METHODS)),
        (fig7_bc, {"hipi", "advantage", "air"}),
        (fig8_partition_ablation, {"hipi", "hipi + bias", "hipi_no_partition", "hipi_no_partition + bias"}),
    ],
)
def test_bc_figures_read_the_saved_dataset_and_write_results(tmp_path, saved_demos, capsys, script, methods):
    out = tmp_path / "out"
    # another number of evaluation episodes than the dataset's budget: the data does not depend on it
    extra = ["--methods", ",".join(sorted(methods))] if script is fig7_bc and methods != set(fig7_bc.METHODS) else []
    assert script.main([*saved_demos, "--out", str(out), "--eval-episodes", "3", *extra]) == 0
    assert "dataset from" in capsys.readouterr().out  # no expert trained
    entry = json.loads((out / "results.json").read_text())["results"]["point_goal"]
    assert set(entry["methods"]) == methods
    for m in entry["methods"].values():
        assert len(m["eval_return"]) == 2 and abs(m["eval_return_mean"]) < float("inf")
    assert (out / f"{script.__name__}.png").read_bytes().startswith(b"\x89PNG")
    hipi = entry["methods"]["hipi"]
    assert (
        f"| point_goal (0.0) | {hipi['eval_return_mean']:.1f} ± {hipi['eval_return_std']:.1f} |"
        in (out / "table.md").read_text()
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--domains", "nope"], "--domains: 'nope' is unknown"),
        (["--seeds", "0"], "--seeds 0 must be a positive integer"),
        (["--reward-bias", "nan"], "--reward-bias nan must be a finite number"),
    ],
)
def test_bc_figure_bad_input_exits_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        fig8_partition_ablation.main([*argv, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_released_episode_ends_reach_only_the_strategies_with_rewards_on_s():
    p = strategy_curves.parser("test", "nav2d", "none", "runs/x")
    args = strategy_curves.check(p, p.parse_args(["--episode-ends", "released"]), {"nav2d": {}})
    ends = {
        s: strategy_curves.config_for(args, "nav2d", s, {}).relabel.episode_ends for s in ("none", "future_released")
    }
    assert ends == {"none": "stored", "future_released": "released"}


def test_strategy_at_candidates_sets_the_candidate_source(capsys):
    budgets = {"nav2d": {}}
    p = strategy_curves.parser("test", "nav2d", "inverse_rl@tasks+achieved,none", "runs/x")
    args = strategy_curves.check(p, p.parse_args([]), budgets)
    config = strategy_curves.config_for(args, "nav2d", "inverse_rl@tasks+achieved", {})
    assert (config.relabel.strategy, config.relabel.candidates) == ("inverse_rl", "tasks+achieved")
    assert strategy_curves.config_for(args, "nav2d", "none", {}).relabel.candidates == "tasks"
    with pytest.raises(SystemExit) as exc:
        strategy_curves.check(p, p.parse_args(["--strategies", "inverse_rl@goals"]), budgets)
    assert (
        exc.value.code == 2 and "strategy 'inverse_rl@goals': candidates='goals' is unknown" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exc:
        strategy_curves.check(p, p.parse_args(["--updates-per-env-step", "1,0"]), budgets)
    assert exc.value.code == 2 and "--updates-per-env-step '1,0'" in capsys.readouterr().err


def test_unpaired_difference_interval_by_hand():
    from hipi_jax.stats import bootstrap_diff_ci

    assert bootstrap_diff_ci(np.full(5, 0.7), np.full(4, 0.2)) == pytest.approx((0.5, 0.5))
    lo, hi = bootstrap_diff_ci(np.array([0.0, 1.0]), np.array([0.5]))
    assert lo == -0.5 and hi == 0.5  # resampling 2 seeds: means 0, 0.5 or 1, minus 0.5


def _fake_run(run_dir: Path, success: list[list[float]]) -> None:
    """A finished run directory: metrics.jsonl with one record per evaluation point, summary.json."""
    run_dir.mkdir(parents=True)
    records = [{"env_steps": 1000 * (i + 1), "eval_success": [seed[i] for seed in success],
                "eval_return": [0.0] * len(success)} for i in range(len(success[0]))]  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "summary.json").write_text(json.dumps({"wall_s": 1.0}))


def test_learning_unchanged_verdicts(tmp_path, capsys):
    same = [[0.1, 0.5], [0.2, 0.6], [0.0, 0.4]]
    _fake_run(tmp_path / "b" / "nav2d" / "future" / "utd1", same)
    _fake_run(tmp_path / "a" / "nav2d" / "future" / "utd1", [[0.2, 0.5], [0.1, 0.6], [0.0, 0.4]])
    _fake_run(tmp_path / "b" / "nav2d" / "none" / "utd1", same)
    _fake_run(tmp_path / "a" / "nav2d" / "none" / "utd1", [[0.9, 1.0], [0.8, 1.0], [0.9, 0.9]])
    _fake_run(tmp_path / "b" / "nav2d" / "random" / "utd1", same)  # no after: not compared
    argv = ["--before", str(tmp_path / "b"), "--after", str(tmp_path / "a"), "--out", str(tmp_path / "o")]
    assert learning_unchanged.main(argv) == 0
    rows = json.loads((tmp_path / "o" / "results.json").read_text())["strategies"]
    assert set(rows) == {"future", "none"}
    assert rows["future"]["area"]["agree"] and rows["future"]["area"]["diff"] == pytest.approx(0.0)
    assert not rows["none"]["area"]["agree"] and rows["none"]["area"]["diff"] == pytest.approx(
        (0.95 + 0.9 + 0.9) / 3 - 0.3
    )
    assert "| none |" in capsys.readouterr().out and "**differ**" in (tmp_path / "o" / "table.md").read_text()
    with pytest.raises(SystemExit) as exc:
        learning_unchanged.main(["--before", str(tmp_path / "nowhere"), "--after", str(tmp_path / "a")])
    assert exc.value.code == 2
