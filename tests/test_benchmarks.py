"""The benchmark scripts that the throughput issue's figures come from: the stage profile and the
GPU check's CPU dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_profile_update_times_every_stage_of_both_strategies(tmp_path):
    import profile_update

    out = tmp_path / "profile.json"
    assert profile_update.main(["--env", "nav2d", "--hidden", "16,16", "--quick", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    stages = {(r["relabel"], r["stage"]) for r in rows}
    for strategy in ("none", "inverse_rl"):
        for stage in ("collect", "sample", "sample + relabel", "critic step (by difference)", "update", "iteration",
                      "collect: policy", "collect: env step", "collect: buffer insert", "collect: auto-reset",
                      "collect: rest (by difference)"):  # fmt: skip
            assert (strategy, stage) in stages
    assert ("inverse_rl", "relabel: values (sample + B x K)") in stages
    assert ("none", "relabel: values (sample + B x K)") not in stages  # `none` scores nothing
    by = {(r["relabel"], r["stage"]): r for r in rows}
    assert all(r["us_per_call"] > 0 for r in rows if "by difference" not in r["stage"])
    assert by["inverse_rl", "update"]["of_update"] == 1.0
    # the B x K critic evaluation is counted: more FLOPs per relabel with inverse RL than without
    assert by["inverse_rl", "sample + relabel"]["flops_per_call"] > by["none", "sample + relabel"]["flops_per_call"]


def test_round_robin_interleaves_the_calls_and_times_each_one():
    import common

    order = []
    calls = {name: (lambda i, name=name: order.append((name, i))) for name in ("a", "b")}
    times = common.round_robin(calls, 3)
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert {name: len(ts) for name, ts in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for ts in times.values() for t in ts)
    out, seconds = common.timed(lambda x: x + 1, 41)
    assert out == 42 and seconds >= 0


def test_gpu_check_rejects_an_unknown_option():
    out = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--gpus", "2"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown option '--gpus'" in out.stderr and "--cpu-dry-run" in out.stderr


@pytest.mark.slow
def test_gpu_check_cpu_dry_run_writes_one_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = ["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--cpu-dry-run", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["cpu_dry_run"] is True
    assert [r["num_envs"] for r in result["walker_linear_inverse_rl"]] == [8, 16]
    assert all(r["env_steps_per_s"] > 0 for r in result["walker_linear_inverse_rl"])
    assert "rows" in result["relabel_overhead"] and ("skipped" in result["vs_brax"] or "rows" in result["vs_brax"])


def test_before_after_refuses_a_directory_that_is_no_checkout(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/before_after.py"), "--before", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"--before {tmp_path} is not a hipi-jax checkout" in out.stderr


def test_write_docs_renders_every_committed_result_with_its_targets(tmp_path):
    import write_docs

    assert write_docs.main(["--results", str(ROOT / "benchmarks/results"), "--out", str(tmp_path / "b.md")]) == 0
    text = (tmp_path / "b.md").read_text()
    for name, title, _, _ in write_docs.SECTIONS:
        assert f"## {title}" in text and f"`{name}.json` is missing" not in text
    assert "Target ≥ 1.3× Brax" in text and "(256, 256) ≤ 1.2×" in text and "In arithmetic the B × K values" in text
    assert "| inverse_rl, (64,64) | all (the earlier commit) |" in text


def test_jax_versions_tables_report_medians_ratios_and_hangs():
    import jax_versions

    rows = [{"version": v, "round": r, "env": "nav2d", "env_steps_per_s": x}
            for v, r, x in [("a", 0, 100.0), ("b", 0, 50.0), ("a", 1, 300.0), ("b", 1, 150.0), ("a", 2, 200.0),
                            ("b", 2, 100.0)]]  # fmt: skip
    record = {
        "versions": {"a": "1 1", "b": "2 2"},
        "args": {"env_steps": {"num_envs": "64"}},
        "env_steps": rows,
        "deadlock": [{"version": "a", "hung": False}, {"version": "b", "hung": True}, {"version": "b", "hung": False}],
    }
    text = jax_versions.tables(record)
    assert "| `nav2d` | 200 | 100 | 2.00× |" in text
    assert "| a | 0 / 1 |" in text and "| b | 1 / 2 |" in text
    assert list(jax_versions.orders(["a", "b"], 3)) == [(0, ["a", "b"]), (1, ["b", "a"]), (2, ["a", "b"])]


def test_jax_versions_refuses_a_missing_interpreter(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/jax_versions.py"), "--python", f"x={tmp_path / 'none'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "must be LABEL=PATH to an existing interpreter" in out.stderr


def test_jax_versions_adds_a_later_call_as_further_rounds(tmp_path, monkeypatch):
    import jax_versions

    out = tmp_path / "jax_versions.json"
    row = lambda v, r, x: {"version": v, "round": r, "env": "nav2d", "env_steps_per_s": x}  # noqa: E731
    earlier = {"command": "python first", "versions": {"a": "1", "b": "2"}, "args": {"num_envs": "64"},
               "env_steps": [row("a", 0, 100.0), row("b", 0, 50.0)]}  # fmt: skip
    out.write_text(json.dumps(earlier))
    monkeypatch.setattr(jax_versions, "jax_version", lambda python: {"pa": "1", "pb": "2"}[Path(python).name])
    monkeypatch.setattr(jax_versions, "env_steps", lambda versions, args, tmp: [row("b", 0, 70.0), row("a", 0, 300.0)])
    for name in ("pa", "pb"):
        (tmp_path / name).touch()
    argv = ["--python", f"b={tmp_path / 'pb'}", "--python", f"a={tmp_path / 'pa'}", "--parts", "env_steps"]
    assert jax_versions.main([*argv, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert list(record["versions"]) == ["a", "b"] and record["commands"][0] == "python first"
    assert sorted((r["version"], r["round"]) for r in record["env_steps"]) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert "| `nav2d` | 200 | 60 | 3.33× |" in jax_versions.tables(record)
