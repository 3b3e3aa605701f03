"""The figure scripts of experiments/ end to end at toy size: Fig. 2's and Fig. 4's claims hold,
and strategy_curves (behind Fig. 5 / Fig. 6) writes the results schema and never reruns a complete
(env, strategy) pair."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))

import fig2_partition  # noqa: E402
import gridworld_stitching  # noqa: E402
import strategy_curves  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_compilation")


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
    argv = ["--out", str(tmp_path), "--seeds", "2", "--no-progress"]
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    entry = results["point_goal"]["none"]
    assert entry["env_steps"] == [10, 34, 58]
    assert len(entry["eval_success"]) == 2 and len(entry["eval_success"][0]) == 3  # [seeds, points]
    assert (tmp_path / f"{tmp_path.name}.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    assert strategy_curves.run(strategy_curves.check(p, p.parse_args(argv), budgets), budgets, "t") == 0
    assert "complete" in capsys.readouterr().out
