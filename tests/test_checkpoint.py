"""Exact resume: a run SIGKILLed at random points and resumed ends bitwise as the uninterrupted run;
a damaged newest checkpoint falls back to the previous one; a changed config is refused."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hipi_jax import cli

ARGS = ["--env", "point_goal", "--seeds", "2", "--env-steps", "200", "--warmup-steps", "16", "--num-envs", "2",
        "--batch-size", "8", "--hidden", "8,8", "--buffer-size", "128", "--eval-every", "20", "--eval-episodes", "2",
        "--no-progress", "--keep", "3"]  # fmt: skip
CHUNKS = 10  # (200 - 16) steps / 20 per chunk, rounded up


def train(out: Path, *extra: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hipi_jax", *ARGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def records(out: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field (the only value that may differ)."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in lines]


def final_fingerprint(out: Path) -> str:
    newest = max(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    meta = json.loads((out / "checkpoints" / str(newest) / "meta" / "metadata").read_text())
    assert meta["chunks_done"] == CHUNKS
    return meta["fingerprint"]  # SHA-256 of the whole final state: parameters, optimizers, buffer, keys


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Subprocess environment sharing a persistent compilation cache, so restarts compile once."""
    cache = tmp_path_factory.mktemp("jax_cache")
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("reference") / "run"
    code, err = finished(train(out, env=env))
    assert code == 0, err
    return records(out), final_fingerprint(out)


def test_sigkill_at_random_points_then_resume_is_bitwise_identical(tmp_path, env, reference):
    rng = np.random.default_rng(0)
    out = tmp_path / "run"
    proc, kills = train(out, env=env), 0
    while True:
        # kill once the run has logged a random number of records, plus a random delay (mid-chunk or mid-save)
        target = int(rng.integers(1, CHUNKS))
        while proc.poll() is None and (not (out / "metrics.jsonl").exists() or len(records(out)) < target):
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        resumable = (out / "checkpoints").is_dir() and any(p.name.isdigit() for p in (out / "checkpoints").iterdir())
        proc = train(out, "--resume" if resumable else "--overwrite", env=env)
        if kills == 3:
            break
    code, err = finished(proc)
    assert code == 0, err
    assert kills >= 1
    expected_records, expected_fingerprint = reference
    assert records(out) == expected_records
    assert final_fingerprint(out) == expected_fingerprint


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, env, reference):
    out = tmp_path / "run"
    code, err = finished(train(out, "--env-steps", "120", env=env))  # 6 chunks; checkpoints 4, 5, 6 kept
    assert code == 0, err
    newest = out / "checkpoints" / "6" / "state"
    for path in sorted(p for p in newest.rglob("*") if p.is_file() and p.stat().st_size > 64):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    code, err = finished(train(out, "--resume", env=env))  # to the full 200-step budget
    assert code == 0, err
    assert f"checkpoint {out.absolute() / 'checkpoints' / '6'} is unusable" in err
    expected_records, expected_fingerprint = reference
    assert records(out) == expected_records
    assert final_fingerprint(out) == expected_fingerprint


def test_resume_with_a_different_config_is_refused(tmp_path, capsys, reference):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoints").mkdir()
    saved = {**json.loads(json.dumps(cli.TrainConfig.preset("point_goal").to_dict())), "batch_size": 8}
    (out / "config.json").write_text(json.dumps(saved))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as e:
        cli.main(["--env", "point_goal", "--batch-size", "16", "--out", str(out), "--resume"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "batch_size: saved 8, given 16" in err[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(SystemExit) as e:
        cli.main(["--env", "point_goal", "--out", str(tmp_path / "absent"), "--resume"])
    assert e.value.code == 2 and "holds no run to resume" in capsys.readouterr().err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_stop_at_a_chunk_with_a_checkpoint_then_resume_exactly(
    tmp_path, env, reference, signum, code
):
    out = tmp_path / "run"
    proc = train(out, "--ckpt-every", "4", env=env)  # the signal's checkpoint is an extra one
    while proc.poll() is None and (not (out / "metrics.jsonl").exists() or len(records(out)) < 3):
        time.sleep(0.02)
    proc.send_signal(signum)
    returncode, err = finished(proc)
    assert returncode == code, err
    lines = [line for line in err.splitlines() if line.startswith("hipi-train")]
    assert len(lines) == 1 and re.fullmatch(
        r"hipi-train: interrupted at env step \d+; continue with --resume", lines[0]
    )
    assert "Traceback" not in err
    assert int(re.search(r"env step (\d+)", lines[0]).group(1)) == records(out)[-1]["env_steps"]  # the checkpoint's
    returncode, err = finished(train(out, "--resume", "--ckpt-every", "4", env=env))
    assert returncode == 0, err
    expected_records, expected_fingerprint = reference
    assert records(out) == expected_records
    assert final_fingerprint(out) == expected_fingerprint


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, env, reference):
    out = tmp_path / "run"
    code, err = finished(train(out, "--env-steps", "120", env=env))
    assert code == 0, err
    metrics = out / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"env_steps": 140, "eval_ret')  # killed mid-append
    code, err = finished(train(out, "--resume", env=env))
    assert code == 0, err
    assert records(out) == reference[0]


def test_a_second_process_on_the_same_out_is_refused(tmp_path, capsys):
    from hipi_jax import runner

    out = tmp_path / "run"
    fd = runner.lock_run_dir(out)  # as a running hipi-train holds it
    try:
        before = sorted(p.name for p in out.iterdir())
        with pytest.raises(SystemExit) as exc:
            cli.main([*ARGS, "--out", str(out), "--overwrite"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is in use by another hipi-train (pid {os.getpid()})" in err, err
        assert sorted(p.name for p in out.iterdir()) == before
    finally:
        os.close(fd)
