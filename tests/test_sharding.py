"""Seeds sharded over devices (`train.seed_sharding`): with 2 (forced host) devices the seed axis is split
over both, and the run's metrics equal the single-device run's up to float rounding (XLA partitions
the program differently, so reductions may round in another order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = """
import json, jax
from hipi_jax import train
from hipi_jax.config import TrainConfig
cfg = TrainConfig(env="point_goal", seeds=2, env_steps=80, warmup_steps=16, num_envs=2, batch_size=8, hidden=(8, 8),
                  buffer_size=64, eval_every=20, eval_episodes=2)
records = []
_, state = train.run(cfg, records.append, progress=False)
print(json.dumps({"devices": len(state.key.devices()), "records": records}))
"""


def run_on(devices: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_devices_match_one_device():
    one, two = run_on(1), run_on(2)
    assert (one["devices"], two["devices"]) == (1, 2)  # the state's seed axis lives on both devices
    assert len(one["records"]) == len(two["records"]) == 5  # the first evaluation and 4 chunks
    for a, b in zip(one["records"], two["records"], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key == "wall_s":
                continue
            if key in ("env_steps", "updates", "eval_return", "eval_success"):
                assert a[key] == b[key], key
            else:
                np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)
