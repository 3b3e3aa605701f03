"""TrainConfig is made of its parts' own configs: the options map onto them one to one, config.json
round-trips (and 0.2's flat files still read), and the learner and relabeler get their part itself."""

import dataclasses
import json
from pathlib import Path

import pytest

from hipi_jax import training
from hipi_jax.config import CONFIG_VERSION, DEFAULTS, ENV_PRESETS, OPTIONS, PARTS, TrainConfig, flat_options


def test_every_field_of_every_part_is_exactly_one_option():
    fields = [(part, f.name) for part, cls in PARTS.items() for f in dataclasses.fields(cls)]
    fields.append(("", "sweep"))
    assert sorted(OPTIONS.values()) == sorted(fields)


@pytest.mark.parametrize("env", sorted(ENV_PRESETS))
def test_config_json_round_trips_every_preset(env):
    config = TrainConfig.preset(env, seeds=3, sweep="gamma=0.9,0.95")
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["version"] == CONFIG_VERSION and set(saved) == {"version", *PARTS, "sweep"}
    assert TrainConfig.from_dict(saved) == config
    assert TrainConfig.from_options(**config.options()) == config


def test_options_land_in_their_part_and_presets_keep_the_rest():
    config = TrainConfig.preset("sawyer_reach", relabel_fraction=0.25, learning_rate=1e-3, eval_episodes=7)
    assert config.relabel.fraction == 0.25 and config.relabel.strategy == "future"  # the preset's strategy
    assert config.sac.learning_rate == 1e-3 and config.sac.hidden == (64, 64) and config.sac.grad_clip == 1.0
    assert config.evaluation.episodes == 7 and config.evaluation.every == 10_000
    assert TrainConfig().options() == DEFAULTS and TrainConfig().sac.hidden == (32, 32)  # nav2d's widths
    assert config.replace(seed=4).run.seed == 4 and config.replace(seed=4).sac == config.sac


def test_the_0_2_0_flat_file_reads_as_the_same_config():
    old = json.loads((Path(__file__).parent / "data" / "config_0.2.0.json").read_text())
    config = TrainConfig.from_dict(old)
    assert flat_options(json.loads(json.dumps(config.to_dict()))) == json.loads(json.dumps(config.options()))
    added = {"episode_ends": "stored"}  # options added since 0.2.0 read as their defaults
    assert json.loads(json.dumps(config.options())) == {**old, **added}


@pytest.mark.parametrize(
    "saved, message",
    [
        ({"version": 9}, "config version 9"),
        ({"version": CONFIG_VERSION, "batch_size": 8}, "config key 'batch_size' is unknown"),
        ({"version": CONFIG_VERSION, "run": []}, "config part 'run' holds list"),
        ({"version": CONFIG_VERSION, "run": {"batch": 8}}, "unknown option(s) 'run.batch'"),
        ({"version": CONFIG_VERSION, "sac": {"gamma": 1.5}}, "gamma=1.5 is outside [0, 1)"),
        ({"gamma": 1.5}, "gamma=1.5 is outside [0, 1)"),
    ],
)
def test_a_bad_config_json_names_the_problem(saved, message):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_dict(saved)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("relabel_fraction", 1.5, "relabel_fraction=1.5 is outside [0, 1]"),
        ("eval_every", 0, "eval_every=0 must be a positive integer"),
        ("tau", 0.0, "tau=0.0 is outside (0, 1]"),
        ("updates_per_env_step", float("inf"), "updates_per_env_step=inf must be a finite number"),
        ("sweep", "tau=0.5,2", "sweep='tau=0.5,2': tau=2.0 is outside (0, 1]"),
    ],
)
def test_each_part_checks_its_own_options(option, value, message):
    with pytest.raises(ValueError) as e:
        TrainConfig.preset("nav2d", **{option: value})
    assert message in str(e.value)


def test_the_learner_and_the_relabeler_are_handed_their_part():
    config = TrainConfig.preset("point_goal", gamma=0.9, hidden=(8,), relabel="future")
    trainer = training.build(config)
    assert trainer.agent.config is config.sac and trainer.config.relabel is config.relabel
