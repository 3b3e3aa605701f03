"""Faults a long run meets (docs/reliability.md): each ends in one clear line, with the data intact, and a
resumed run ends bitwise as an uninterrupted one. Real subprocesses where it matters: signals, locks, file
size limits (a full disk for files beyond the limit, without root or a special file system)."""

from __future__ import annotations

import errno
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
from conftest import ARGS, final_fingerprint, finished, records, train

from hipi_jax import bc_cli, cli, dataset, load_policy, policy, report, rundir


def one_error_line(err: str, prog: str = "hipi-train") -> str:
    """The single error line of a CLI's stderr (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), err
    return lines[0]


def test_damaged_newest_checkpoint_falls_back_then_is_moved_aside_and_rewritten(tmp_path, run_env, reference):
    out = tmp_path / "run"
    code, err = finished(train(out, "--env-steps", "120", env=run_env))  # 6 chunks; checkpoints 4, 5, 6 kept
    assert code == 0, err
    newest = out / "checkpoints" / "6" / "state"
    for path in sorted(p for p in newest.rglob("*") if p.is_file() and p.stat().st_size > 64):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    damaged = {p.relative_to(newest): p.read_bytes() for p in newest.rglob("*") if p.is_file()}
    proc = train(out, "--resume", env=run_env)  # to the full 200-step budget
    code, err = finished(proc)
    assert code == 0, err
    warning = [line for line in proc.stdout_text.splitlines() if "is unusable" in line]
    assert len(warning) == 1 and f"checkpoint {out.absolute() / 'checkpoints' / '6'} is unusable" in warning[0]
    aside = out / "checkpoints-unusable" / "6" / "state"  # kept for inspection, out of Orbax's way
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == damaged
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [8, 9, 10]  # step 6 was saved again, then
    expected_records, expected_fingerprint = reference
    assert records(out) == expected_records
    assert final_fingerprint(out) == expected_fingerprint


def test_resume_with_a_different_config_is_refused(tmp_path, capsys, reference):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoints").mkdir()
    saved = json.loads(json.dumps(cli.TrainConfig.preset("point_goal").to_dict()))
    saved["run"]["batch_size"] = 8
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
    tmp_path, run_env, reference, signum, code
):
    out = tmp_path / "run"
    proc = train(out, "--ckpt-every", "4", env=run_env)  # the signal's checkpoint is an extra one
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
    returncode, err = finished(train(out, "--resume", "--ckpt-every", "4", env=run_env))
    assert returncode == 0, err
    expected_records, expected_fingerprint = reference
    assert records(out) == expected_records
    assert final_fingerprint(out) == expected_fingerprint


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, run_env, reference):
    out = tmp_path / "run"
    code, err = finished(train(out, "--env-steps", "120", env=run_env))
    assert code == 0, err
    metrics = out / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"env_steps": 140, "eval_ret')  # killed mid-append
    code, err = finished(train(out, "--resume", env=run_env))
    assert code == 0, err
    assert records(out) == reference[0]


def test_a_second_process_on_the_same_out_is_refused(tmp_path, capsys):

    out = tmp_path / "run"
    fd = rundir.lock_run_dir(out)  # as a running hipi-train holds it
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


def test_a_stray_higher_step_directory_is_moved_aside_and_saving_goes_on(tmp_path, run_env, reference):
    out = tmp_path / "run"
    code, err = finished(train(out, "--env-steps", "120", env=run_env))
    assert code == 0, err
    (out / "checkpoints" / "99").mkdir()  # not a checkpoint; Orbax would never save a step below it
    proc = train(out, "--resume", env=run_env)
    code, err = finished(proc)
    assert code == 0, err
    assert (
        "checkpoints/99 is unusable" in proc.stdout_text and "moved the unusable checkpoint(s) 99" in proc.stdout_text
    )
    assert (out / "checkpoints-unusable" / "99").is_dir()
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [8, 9, 10]
    policy = load_policy(out)  # the policies a resumed run saves carry the policy's own metadata
    assert policy.env == "point_goal" and policy.env_steps == reference[0][-1]["env_steps"]
    assert records(out) == reference[0]
    assert final_fingerprint(out) == reference[1]


def test_resume_compares_the_options_with_the_checkpoint_not_only_config_json(tmp_path, run_env, capsys):
    out = tmp_path / "run"
    code, err = finished(train(out, "--env-steps", "120", env=run_env))
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    saved["run"]["batch_size"] = 4
    (out / "config.json").write_text(json.dumps(saved))  # edited by hand
    files = lambda: {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".hipi-train.lock"}
    before = files()
    args = [*ARGS, "--batch-size", "4", "--out", str(out), "--resume"]
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "differ from those in the newest checkpoint" in line and "batch_size: saved 8, given 4" in line
    assert files() == before  # nothing moved or written (the lock file holds this process's PID)
    for damage in ('{"env": "point_goal", "se', "[1, 2]"):
        (out / "config.json").write_text(damage)
        with pytest.raises(SystemExit) as e:
            cli.main(args)
        assert e.value.code == 2
        assert "config.json" in one_error_line(capsys.readouterr().err)
        assert (out / "config.json").read_text() == damage


# The CLI under a file size limit: writes past it fail with EFBIG, as a full disk fails them (Python ignores
# SIGXFSZ). 22,000 bytes from the start: the run's JSON, metrics and the first checkpoint fit (its largest
# file is ~15 kB), a compilation-cache entry does not. A later checkpoint's largest file comes within a few
# kB of the limit, and Orbax splits its data over a varying number of files, so before the 4th save the disk
# fills (4,096 bytes): that save fails whatever the split, the 2nd and 3rd may already have.
FULL_DISK = """
import resource, sys
from hipi_jax import checkpoint, cli
resource.setrlimit(resource.RLIMIT_FSIZE, (22_000, 22_000))
save, calls = checkpoint.save, []
def filling(*args, **kwargs):
    calls.append(1)
    if len(calls) == 4:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    return save(*args, **kwargs)
checkpoint.save = filling
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_full_disk_during_a_save_keeps_the_last_checkpoint_then_resume_is_exact(tmp_path, run_env, reference):
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", FULL_DISK, *ARGS, "--out", str(out)]
    # An empty compilation cache: its entries' writes fail too, and JAX's warning about them must stay muted.
    env = {**run_env, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc.stderr)
    assert re.fullmatch(r"hipi-train: error: checkpoint .* was not written \(EFBIG: File too large\); the newest "
                        r"complete checkpoint is kept \(--resume\)", line), line  # fmt: skip
    steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert steps and steps[-1] < 10
    assert json.loads((out / "config.json").read_text())["run"]["env"] == "point_goal"  # whole files only
    assert not list(out.glob(".*.tmp*"))
    assert not list((out / "checkpoints").glob("*.orbax-checkpoint-tmp*"))  # the failed step's half is removed
    code, err = finished(train(out, "--resume", env=run_env))
    assert code == 0, err
    assert records(out) == reference[0]
    assert final_fingerprint(out) == reference[1]


def test_a_full_disk_during_an_append_tears_one_line_then_resume_is_exact(
    tmp_path, run_env, reference, monkeypatch, capsys
):
    out = tmp_path / "run"
    append, calls = report.append_jsonl, []

    def full_disk(path, record):  # the 6th record: half a line reaches the disk, then ENOSPC
        calls.append(1)
        if len(calls) == 6:
            with open(path, "a") as f:
                f.write(report.dumps(record)[:25])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        append(path, record)

    monkeypatch.setattr(report, "append_jsonl", full_disk)
    assert cli.main([*ARGS, "--out", str(out)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"hipi-train: error: cannot write {out / 'metrics.jsonl'} (ENOSPC: No space left on device); "
                    "the newest complete checkpoint is kept (--resume)")  # fmt: skip
    assert not (out / "metrics.jsonl").read_text().endswith("\n")  # the torn line is there
    monkeypatch.setattr(report, "append_jsonl", append)
    code, err = finished(train(out, "--resume", env=run_env))
    assert code == 0, err
    assert records(out) == reference[0]
    assert final_fingerprint(out) == reference[1]


def test_too_much_memory_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    from hipi_jax import programs

    out = tmp_path / "run"
    monkeypatch.setattr(programs, "device_memory", lambda: 16 * 2**30)  # this CI machine's order, on any host
    # inverse RL scores B x B (sample, task) pairs: B = 2**17 needs about 2**34 floats at once
    big = [
        "--batch-size",
        str(2**17),
        "--buffer-size",
        str(2**18),
        "--warmup-steps",
        str(2**17),
        "--env-steps",
        str(2**18),
    ]
    with pytest.raises(SystemExit) as e:
        cli.main([*ARGS, *big, "--out", str(out)])
    assert e.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "XLA's memory analysis" in line and "lower --batch-size" in line, line
    assert not out.exists()


def test_too_many_evaluation_episodes_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    from hipi_jax import programs

    out = tmp_path / "run"
    monkeypatch.setattr(programs, "device_memory", lambda: 16 * 2**30)
    with pytest.raises(SystemExit) as e:
        cli.main([*ARGS, "--eval-episodes", str(2 * 10**8), "--out", str(out)])
    assert e.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "XLA's memory analysis" in line and "--eval-episodes" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seed", str(2**64)], "seed=18446744073709551616 must be in [0, 2**63)"),
        (["--env-steps", str(2**40)], "env_steps=1099511627776 must be < 2**31"),
        (["--out", "x" * 300], "is 300 bytes; this file system allows"),
    ],
)
def test_out_of_range_integers_and_over_long_names_are_one_line(tmp_path, capsys, args, expected, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main([*ARGS, *args])
    assert e.value.code == 2
    assert expected in one_error_line(capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def _tiny_dataset(path, **changes):
    rng = np.random.default_rng(0)
    n, t = 6, 5
    arrays = {
        "obs": rng.normal(size=(n, t, 2)),
        "actions": rng.uniform(-1, 1, (n, t, 2)),
        "features": rng.normal(size=(n, t, 2)),
        "mask": np.ones((n, t), bool),
        "env": np.asarray("point_goal"),
    }
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"obs": np.full((6, 5, 2), 1e39)}, "obs must hold numbers finite in float32"),
        ({"actions": np.zeros((6, 5, 2), np.complex64)}, "actions has dtype complex64"),
        ({"features": np.full((6, 5, 2), "a")}, "features has dtype <U1"),
        ({"env": np.asarray("gridworld")}, "gridworld has discrete actions"),
        ({"tasks": np.asarray([{"goal": 1}] * 6, dtype=object)}, "not a readable .npz file of numeric arrays"),
    ],
)
def test_malformed_bc_datasets_are_one_line(tmp_path, capsys, changes, expected):
    data = _tiny_dataset(tmp_path / "d.npz", **changes)
    with pytest.raises(SystemExit) as e:
        bc_cli.main(["train", "--data", str(data), "--out", str(tmp_path / "bc")])
    assert e.value.code == 2
    assert expected in one_error_line(capsys.readouterr().err, "hipi-bc")
    assert not (tmp_path / "bc").exists()


def test_a_npy_file_is_not_a_dataset(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros(3))
    with pytest.raises(dataset.DatasetError, match="a single array"):
        dataset.load(tmp_path / "d.npy")


def test_a_diverging_bc_run_stops_with_one_line_and_no_results(tmp_path, capsys):
    data = _tiny_dataset(tmp_path / "d.npz")
    out = tmp_path / "bc"
    args = ["train", "--data", str(data), "--out", str(out), "--methods", "agnostic", "--seeds", "2"]
    args += ["--learning-rate", "1e30", "--max-epochs", "3", "--eval-episodes", "2", "--batch-size", "8"]
    code = bc_cli.main(args)
    assert code == 1
    line = one_error_line(capsys.readouterr().err, "hipi-bc")
    assert re.fullmatch(
        r"hipi-bc: error: non-finite \w+ for method agnostic \(seed index \d\); lower --learning-rate", line
    )
    assert not (out / "results.json").exists()


def test_bc_collect_names_its_own_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bc_cli.main(["collect", "--env", "point_goal", "--out", str(tmp_path / "d.npz"), "--expert-steps", "10"])
    assert e.value.code == 2
    line = one_error_line(capsys.readouterr().err, "hipi-bc")
    assert "--expert-steps 10 must exceed" in line and "warmup_steps" not in line


def test_atomic_writes_leave_the_old_file_whole_when_writing_fails(tmp_path):
    path = tmp_path / "config.json"
    report.write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), rundir.atomic_open(path) as f:
        f.write('{"a": ')
        raise RuntimeError("the disk filled up")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


BLOCK_AFTER = """
import sys, threading
from hipi_jax import cli, runner
calls, check = [0], runner.check_finite
def blocking(*args):  # after the 4th chunk the main thread waits forever, as XLA's hung runtime does
    calls[0] += 1
    if calls[0] > 4:
        threading.Event().wait()
    return check(*args)
runner.check_finite = blocking
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_hung_run_exits_with_one_line_naming_resume_then_resumes_exactly(tmp_path, run_env, reference):
    from hipi_jax.stall import EXIT_STALLED

    out = tmp_path / "run"
    cmd = [sys.executable, "-c", BLOCK_AFTER, *ARGS, "--out", str(out), "--stall-timeout", "10"]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == EXIT_STALLED, proc.stderr
    line = one_error_line(proc.stderr)
    assert re.search(r"no progress for \d+ s after env step \d+ ", line) and f"--resume --out {out} " in line
    assert time.monotonic() - started < 300
    assert len(records(out)) == 5  # the first record and 4 chunks'
    code, err = finished(train(out, "--resume", env=run_env))
    assert code == 0, err
    expected_records, expected_fingerprint = reference
    assert records(out) == expected_records
    assert final_fingerprint(out) == expected_fingerprint


def test_a_run_hung_before_its_first_checkpoint_says_rerun(tmp_path, run_env):
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", BLOCK_AFTER, *ARGS, "--out", str(out), "--stall-timeout", "10", "--ckpt-every", "0"]
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 75, proc.stderr
    assert one_error_line(proc.stderr).endswith(
        "no checkpoints are written with --ckpt-every 0; rerun the same command"
    )


def wait_for(proc: subprocess.Popen, marker: str) -> None:
    """Read the child's stdout up to a line holding `marker`: it has reached that stage."""
    for line in proc.stdout:
        if marker in line:
            return
    raise AssertionError(f"the child ended (exit {proc.wait()}) before printing {marker!r}: {proc.stderr.read()}")


def compiling_env() -> dict:
    """No persistent compilation cache: the child compiles for seconds, and the signal lands meanwhile."""
    return {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_hipi_train_compiles_stops_it_at_once_with_nothing_written(tmp_path, signum, code):
    out = tmp_path / "run"
    proc = train(out, env=compiling_env())
    wait_for(proc, "compiling the training programs")
    proc.send_signal(signum)
    returncode, err = finished(proc)
    assert returncode == code, err
    name = signal.Signals(signum).name
    assert one_error_line(err) == f"hipi-train: stopped by {name}; nothing was saved; rerun the same command"
    assert not out.exists()  # the same command starts afresh


HOLD_IN_CHUNK_6 = """
import sys, threading
from hipi_jax import cli, runner, signals
calls, check = [0], runner.check_finite
def holding(*args):  # chunk 6 never ends, as a long chunk would not for a while
    calls[0] += 1
    if calls[0] == 6:
        threading.Event().wait()
    return check(*args)
runner.check_finite = holding
signals.exit_at_once("hipi-train")  # as the hipi-train command does
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_second_signal_during_a_chunk_stops_at_once_naming_resume(tmp_path, run_env, reference):
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", HOLD_IN_CHUNK_6, *ARGS, "--out", str(out), "--ckpt-every", "4"]
    proc = subprocess.Popen(cmd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and (not (out / "metrics.jsonl").exists() or len(records(out)) < 6):
        time.sleep(0.02)  # records 0..5 written: chunk 6 is held, the checkpoint of chunk 4 is there
    proc.send_signal(signal.SIGINT)
    wait_for(proc, "stopping after this chunk (a second one stops at once)")
    proc.send_signal(signal.SIGINT)
    returncode, err = finished(proc)
    assert returncode == 130, err
    line = one_error_line(err)
    assert line == f"hipi-train: stopped by SIGINT; continue with hipi-train --resume --out {out} and the same options"
    returncode, err = finished(train(out, "--resume", "--ckpt-every", "4", env=run_env))
    assert returncode == 0, err
    expected_records, expected_fingerprint = reference
    assert records(out) == expected_records
    assert final_fingerprint(out) == expected_fingerprint


def test_a_signal_while_hipi_eval_runs_stops_it_at_once_with_nothing_written(tmp_path, reference_dir):
    out = tmp_path / "eval.json"
    cmd = [sys.executable, "-m", "hipi_jax.eval_cli", str(reference_dir), "--episodes", "5000", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=compiling_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(proc, "compiling, then rolling out")
    proc.send_signal(signal.SIGINT)
    returncode, err = finished(proc)
    assert returncode == 130, err
    assert one_error_line(err, "hipi-eval") == "hipi-eval: stopped by SIGINT; nothing was saved; rerun the same command"
    assert not out.exists()


def test_a_signal_while_hipi_bc_trains_leaves_nothing_that_blocks_the_rerun(tmp_path):
    data = _tiny_dataset(tmp_path / "d.npz")
    out = tmp_path / "bc"
    cmd = [sys.executable, "-m", "hipi_jax.bc_cli", "train", "--data", str(data), "--out", str(out),
           "--methods", "hipi,agnostic", "--seeds", "2", "--max-epochs", "3", "--eval-episodes", "2",
           "--batch-size", "8"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=compiling_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(proc, "point_goal / hipi: 2 seed(s)")
    proc.send_signal(signal.SIGINT)
    returncode, err = finished(proc)
    assert returncode == 130, err
    line = one_error_line(err, "hipi-bc")
    assert line == "hipi-bc: stopped by SIGINT; results.json was not written; rerun the same command"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # no --overwrite needed
    assert rerun.returncode == 0, rerun.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"hipi", "agnostic"}
    assert len(rundir.read_jsonl(out / "metrics.jsonl")) == 2  # the stopped run's records are not kept


@pytest.mark.skipif(any(d.platform == "gpu" for d in __import__("jax").devices()), reason="this machine has a GPU")
@pytest.mark.parametrize("prog", ["hipi_jax", "hipi_jax.eval_cli", "hipi_jax.bc_cli"])
def test_an_absent_jax_platform_is_one_line_and_writes_nothing(tmp_path, prog, reference_dir):
    args = {
        "hipi_jax": [*ARGS, "--out", str(tmp_path / "run")],
        "hipi_jax.eval_cli": [str(reference_dir), "--out", str(tmp_path / "eval.json")],
        "hipi_jax.bc_cli": ["train", "--data", str(_tiny_dataset(tmp_path / "d.npz")), "--out", str(tmp_path / "bc")],
    }[prog]
    before = sorted(tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", prog, *args], env={**os.environ, "JAX_PLATFORMS": "cuda"},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    name = {"hipi_jax": "hipi-train", "hipi_jax.eval_cli": "hipi-eval", "hipi_jax.bc_cli": "hipi-bc"}[prog]
    line = one_error_line(proc.stderr, name)
    assert line.startswith(f"{name}: error: JAX_PLATFORMS='cuda': JAX found no such device here")
    assert sorted(tmp_path.rglob("*")) == before


def run_copy(reference_dir, tmp_path) -> Path:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference_dir, out)
    (out / ".hipi-train.lock").unlink(missing_ok=True)
    return out


@pytest.mark.parametrize("target", ["config.json", "metrics.jsonl", "curves.png", "policies/x.json", "video"])
def test_hipi_eval_refuses_to_write_over_the_runs_own_files(tmp_path, reference_dir, capsys, target):
    from hipi_jax import eval_cli

    out = run_copy(reference_dir, tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    flag = ["--video", str(out / "curves.png")] if target == "video" else ["--out", str(out / target)]
    with pytest.raises(SystemExit) as e:
        eval_cli.main([str(out), *flag])
    assert e.value.code == 2
    line = one_error_line(capsys.readouterr().err, "hipi-eval")
    assert "is the run's own" in line and "choose another file" in line
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: {k: v for k, v in a.items() if not k.endswith("kernel")}, "missing "),
        (lambda a: {k: (v[..., :1] if k.endswith("kernel") else v) for k, v in a.items()}, "expected float32"),
        (lambda a: {**a, "extra/bias": a[next(iter(a))]}, "unexpected extra/bias"),
    ],
)
def test_a_policy_whose_arrays_do_not_match_is_one_line(tmp_path, reference_dir, capsys, change, expected):
    from hipi_jax import eval_cli

    out = run_copy(reference_dir, tmp_path)
    for actor in out.glob("policies/step_*/actor.npz"):
        with np.load(actor) as z:
            arrays = change({k: z[k] for k in z.files})
        np.savez(actor, **arrays)
    with pytest.raises(SystemExit) as e:
        eval_cli.main([str(out)])
    assert e.value.code == 2
    line = one_error_line(capsys.readouterr().err, "hipi-eval")
    assert "actor.npz does not match its policy.json" in line and expected in line
    assert not (out / "eval.json").exists()


def test_tasks_holding_a_json_object_are_one_line(tmp_path, reference_dir, capsys):
    from hipi_jax import eval_cli

    tasks = tmp_path / "tasks.json"
    tasks.write_text('{"goal": [0.1, 0.2]}')
    with pytest.raises(SystemExit) as e:
        eval_cli.main([str(reference_dir), "--tasks", str(tasks), "--out", str(tmp_path / "eval.json")])
    assert e.value.code == 2
    assert "cannot read tasks" in one_error_line(capsys.readouterr().err, "hipi-eval")


def test_a_malformed_metrics_record_on_resume_is_one_line(tmp_path, reference_dir, run_env):
    out = run_copy(reference_dir, tmp_path)
    with open(out / "metrics.jsonl", "a") as f:
        f.write("{}\n")
    code, err = finished(train(out, "--resume", "--env-steps", "240", env=run_env))
    assert code == 2, err
    line = one_error_line(err)
    assert re.fullmatch(r"hipi-train: error: --resume: record 12 of .*metrics\.jsonl is not a training record "
                        r"\(no env_steps\): \{\}", line), line  # fmt: skip


def test_resume_without_metrics_jsonl_warns_that_the_history_is_lost(tmp_path, reference_dir, run_env):
    out = run_copy(reference_dir, tmp_path)
    (out / "metrics.jsonl").unlink()
    proc = train(out, "--resume", "--env-steps", "240", env=run_env)
    code, err = finished(proc)
    assert code == 0, err
    warning = [line for line in proc.stdout_text.splitlines() if "holds no record at the checkpoint's" in line]
    assert len(warning) == 1 and "(missing): the records before it are lost" in warning[0]
    steps = [r["env_steps"] for r in records(out)]  # the two new chunks' records only
    assert len(steps) == 2 and min(steps) > records(reference_dir)[-1]["env_steps"]


def test_a_run_stopped_before_its_first_checkpoint_reruns_with_the_same_command(tmp_path, reference_dir, run_env):
    import shutil

    out = run_copy(reference_dir, tmp_path)
    for name in ("checkpoints", "policies"):  # as a run killed before its first checkpoint leaves it
        shutil.rmtree(out / name)
    (out / "checkpoints").mkdir()
    (out / "summary.json").unlink()
    code, err = finished(train(out, env=run_env))  # no --overwrite
    assert code == 0, err
    assert records(out) == records(reference_dir)
    assert final_fingerprint(out) == final_fingerprint(reference_dir)
    code, err = finished(train(out, env=run_env))  # a finished run is still protected
    assert code == 2 and "already holds files; pass --overwrite" in one_error_line(err)
    config = json.loads((out / "config.json").read_text())
    (out / "summary.json").unlink()
    shutil.rmtree(out / "checkpoints")
    config["run"]["batch_size"] = 4
    (out / "config.json").write_text(json.dumps(config))  # another run's start: protected
    code, err = finished(train(out, env=run_env))
    assert code == 2 and "already holds files" in one_error_line(err)


def test_resume_names_what_is_missing(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit) as e:
        cli.main(["--env", "point_goal", "--out", str(out), "--resume"])
    assert e.value.code == 2
    assert one_error_line(capsys.readouterr().err).endswith(
        f"--resume: {out} holds no run to resume (config.json missing)"
    )


def test_bc_methods_named_twice_and_a_directory_as_data_are_one_line(tmp_path, capsys):
    data = _tiny_dataset(tmp_path / "d.npz")
    with pytest.raises(SystemExit) as e:
        bc_cli.main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--methods", "hipi,agnostic,hipi"])
    assert e.value.code == 2
    assert "names hipi more than once" in one_error_line(capsys.readouterr().err, "hipi-bc")
    with pytest.raises(SystemExit) as e:
        bc_cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "a directory, not a dataset file" in one_error_line(capsys.readouterr().err, "hipi-bc")
    assert not (tmp_path / "o").exists()


def test_resume_finishes_a_run_killed_after_its_final_checkpoint(tmp_path, reference_dir, run_env):
    import shutil

    out = run_copy(reference_dir, tmp_path)
    final = load_policy(reference_dir).env_steps
    for name in ("summary.json", "curves.png"):  # SIGKILL after the last checkpoint, before these
        (out / name).unlink()
    shutil.rmtree(policy.step_dir(out, final))
    proc = train(out, "--resume", env=run_env)
    code, err = finished(proc)
    assert code == 0, err
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (out, reference_dir))
    assert summary["finished_by_resume"] is True and summary["eval_return"] == expected["eval_return"]
    assert summary["wall_s"] == records_with_wall(reference_dir)[-1]["wall_s"]
    assert (out / "curves.png").read_bytes().startswith(b"\x89PNG")
    mine, theirs = load_policy(out), load_policy(reference_dir)
    assert mine.env_steps == final
    assert all(np.array_equal(a, b) for a, b in zip(jax_leaves(mine.params), jax_leaves(theirs.params), strict=True))
    code, err = finished(train(out, "--resume", env=run_env))  # now complete: refused as before
    assert code == 2 and "already did its 10 chunks" in one_error_line(err)


def records_with_wall(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def jax_leaves(tree) -> list:
    import jax

    return jax.tree.leaves(tree)


def test_truncated_checkpoint_data_falls_back_quietly(tmp_path, reference_dir, run_env):
    out = run_copy(reference_dir, tmp_path)
    for path in (out / "checkpoints" / "10" / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":  # the data files, cut to half
            os.truncate(path, path.stat().st_size // 2)
    proc = train(out, "--resume", "--env-steps", "240", env=run_env)
    code, err = finished(proc)
    assert code == 0, err
    assert err == ""  # no asyncio or Orbax lines: the warning below is all
    assert sum("is unusable" in line for line in proc.stdout_text.splitlines()) == 1


BC_BLOCK_AFTER = """
import sys, threading
from hipi_jax import bc, bc_cli
def blocking(*args):  # the first method's program never returns, as a hung XLA runtime does not
    threading.Event().wait()
bc.run = blocking
sys.exit(bc_cli.main(sys.argv[1:]))
"""


def test_a_hung_hipi_bc_train_exits_with_one_line_then_reruns(tmp_path, run_env):
    data = _tiny_dataset(tmp_path / "d.npz")
    out = tmp_path / "bc"
    args = ["train", "--data", str(data), "--out", str(out), "--methods", "hipi,agnostic", "--seeds", "2",
            "--max-epochs", "3", "--eval-episodes", "2", "--batch-size", "8"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", BC_BLOCK_AFTER, *args, "--stall-timeout", "10"], env=run_env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 75, proc.stderr
    line = one_error_line(proc.stderr, "hipi-bc")
    assert re.fullmatch(r"hipi-bc: error: no progress for \d+ s in method hipi .*; results\.json was not "
                        r"written; rerun the same command", line), line  # fmt: skip
    rerun = subprocess.run([sys.executable, "-m", "hipi_jax.bc_cli", *args], env=run_env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert set(json.loads((out / "results.json").read_text())["methods"]) == {"hipi", "agnostic"}
