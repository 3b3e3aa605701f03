"""The README's reproducibility statement, tested under the CLI's own XLA settings (optimizations on,
unlike the other training tests): seed i's random streams do not depend on how many seeds run beside
it; its start (parameters, warm-up, first evaluation) is identical, and after the first chunk of
updates its numbers agree with the 1-seed run up to float rounding."""

from __future__ import annotations

import jax
import numpy as np
from conftest import TINY_CONFIG

from hipi_jax import programs, runner


def test_seed_0_of_one_and_of_two_seeds():
    assert not jax.config.values["jax_disable_most_optimizations"]  # the CLI's default
    runs = {}
    for seeds in (1, 2):
        records = []
        runner.loop(programs.build(TINY_CONFIG.replace(seeds=seeds)), records.append, progress=False)
        runs[seeds] = records
    one, two = runs[1], runs[2]
    assert len(one) == len(two) == TINY_CONFIG.num_chunks + 1
    first = {k: v for k, v in one[0].items() if k != "wall_s"}
    assert first == {k: (v[:1] if isinstance(v, list) else v) for k, v in two[0].items() if k != "wall_s"}
    for key, value in one[1].items():
        if isinstance(value, list):
            np.testing.assert_allclose(value[0], two[1][key][0], rtol=1e-4, atol=1e-6, err_msg=key)
