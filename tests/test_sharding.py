"""Runs laid out over devices (`programs.Placement`), checked against one device:

- 2 forced host devices, 2 seeds: the run axis is split over both devices;
- 2 devices, 1 seed: the env axis of the env states and the replay buffer is split instead;
- 2 processes of 1 device each (`hipi-train --coordinator`, jax.distributed with CPU collectives),
  then resumed with a larger budget in the same layout.

Each gives the single-device metrics up to float rounding (XLA partitions the program, so reductions
may round in another order); counts and evaluation returns are equal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

CONFIG = dict(env="point_goal", env_steps=80, warmup_steps=16, num_envs=2, batch_size=8, hidden=(8, 8),
              buffer_size=64, eval_every=20, eval_episodes=2)  # fmt: skip
FLAGS = ["--env", "point_goal", "--env-steps", "80", "--warmup-steps", "16", "--num-envs", "2", "--batch-size", "8",
         "--hidden", "8,8", "--buffer-size", "64", "--eval-every", "20", "--eval-episodes", "2",
         "--no-progress"]  # fmt: skip
EXACT = ("env_steps", "updates", "eval_return", "eval_success")

SCRIPT = """
import json, sys, jax
from hipi_jax import programs, runner, training
from hipi_jax.config import TrainConfig
cfg = TrainConfig.from_options(**json.loads(sys.argv[1]))
records = []
_, state = runner.loop(programs.build(cfg), records.append, progress=False)
mesh = dict(programs.Placement.of(cfg).mesh.shape)
env_devices = len(state.buffer.data.obs.sharding.device_set), state.buffer.data.obs.sharding.spec
print(json.dumps({"mesh": mesh, "buffer": [env_devices[0], str(env_devices[1])], "records": records}))
"""


def devices_env(devices: int) -> dict:
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def run_on(devices: int, **overrides) -> dict:
    argv = [sys.executable, "-c", SCRIPT, json.dumps({**CONFIG, **overrides})]
    out = subprocess.run(argv, env=devices_env(devices), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_same_metrics(one: list[dict], many: list[dict]) -> None:
    assert len(one) == len(many)
    for a, b in zip(one, many, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key in EXACT:
                assert a[key] == b[key], key
            elif key != "wall_s":
                np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_seeds_split_over_two_devices_match_one_device():
    one, two = run_on(1, seeds=2), run_on(2, seeds=2)
    assert one["mesh"] == {"runs": 1, "envs": 1} and two["mesh"] == {"runs": 2, "envs": 1}
    assert two["buffer"] == [2, "P('runs', 'envs')"]
    assert len(one["records"]) == 5  # the first evaluation and 4 chunks
    assert_same_metrics(one["records"], two["records"])


def test_envs_split_over_two_devices_when_seeds_are_fewer():
    one, two = run_on(1, seeds=1), run_on(2, seeds=1)
    assert two["mesh"] == {"runs": 1, "envs": 2}
    assert two["buffer"] == [2, "P('runs', 'envs')"]  # each device holds one env's ring
    assert_same_metrics(one["records"], two["records"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def hipi_train_processes(out: Path, *flags: str, processes: int = 2) -> list[subprocess.CompletedProcess]:
    """`hipi-train` as `processes` processes of one CPU device each, joined by jax.distributed."""
    coordinator = f"localhost:{free_port()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hipi_jax",
                *FLAGS,
                *flags,
                "--out",
                str(out),
                "--coordinator",
                coordinator,
                "--num-processes",
                str(processes),
                "--process-id",
                str(i),
            ],  # fmt: skip
            env=devices_env(1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return results


def records_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_process_and_resume(tmp_path):
    single = tmp_path / "single"
    from hipi_jax import cli

    assert cli.main([*FLAGS, "--seeds", "2", "--env-steps", "120", "--out", str(single)]) == 0

    multi = tmp_path / "multi"
    for p in hipi_train_processes(multi, "--seeds", "2"):
        assert p.returncode == 0, p.stderr
        assert "2 for runs x 1 for envs" in p.stdout
    expected = [".hipi-train.lock", "checkpoints", "config.json", "curves.png", "metrics.csv", "metrics.jsonl",
                "policies", "summary.json"]  # fmt: skip
    assert sorted(p.name for p in multi.iterdir()) == expected
    assert_same_metrics(records_of(single)[:5], records_of(multi))

    for p in hipi_train_processes(multi, "--seeds", "2", "--env-steps", "120", "--resume"):
        assert p.returncode == 0, p.stderr
        assert "resuming" in p.stdout
    assert_same_metrics(records_of(single), records_of(multi))


def test_a_multi_process_run_must_use_every_device(tmp_path):
    """1 seed x 1 env cannot be split over 2 processes: refused with exit 2, nothing written."""
    for p in hipi_train_processes(tmp_path / "run", "--seeds", "1", "--num-envs", "1"):
        assert p.returncode == 2, p.stderr
        assert "must use them all" in p.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
