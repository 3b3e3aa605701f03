"""CLI tests (`hipi-train`): `--help` lists every `TrainConfig` field's flag; bad input of every kind
exits with code 2, one stderr line naming the bad value, no traceback, and creates or modifies nothing;
a tiny run writes the run directory of docs/architecture.md (config.json, metrics.jsonl, summary.json, curves.png),
refuses to overwrite it without --overwrite and replaces its run files with it.

The tiny run is the BASE config of test_train.py, so with the session-local persistent XLA cache
shared with that module it costs no compilation when both files run together.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_CONFIG

import hipi_jax
from hipi_jax import cli, envs, programs, report, rundir, runner
from hipi_jax.config import ENV_PRESETS, HELP, OPTIONS, TrainConfig
from hipi_jax.relabel import STRATEGIES

TINY = ["--env", "point_goal", "--relabel", "inverse_rl", "--seeds", "2", "--env-steps", "40", "--warmup-steps", "9",
        "--num-envs", "2", "--updates-per-env-step", "1.0", "--batch-size", "8", "--hidden", "8,8",
        "--buffer-size", "64", "--eval-every", "25", "--eval-episodes", "2"]  # fmt: skip
CONTINUOUS_ENVS = envs.continuous_names()  # what SAC can train on
RECORD_KEYS = ("env_steps", "updates", "wall_s", "eval_return", "eval_success")


pytestmark = pytest.mark.usefixtures("fast_compilation")


@pytest.fixture
def no_training(monkeypatch):
    """Bad input must never reach training; if it does, fail at once instead of training."""

    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached compiling or training")

    monkeypatch.setattr(programs, "compile_programs", refuse)  # the state's memory check comes before it
    monkeypatch.setattr(runner, "loop", refuse)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (relative) with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def assert_rejected(capsys, argv: list[str], *fragments: str) -> str:
    """main(argv) exits 2 with exactly one stderr line containing every fragment, and prints nothing else."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert err.startswith("hipi-train: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# ---- --help and defaults -----------------------------------------------------------------------------


def test_help_lists_every_config_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    squeezed = "".join(out.split())  # help text is wrapped, possibly at hyphens
    for name in OPTIONS:
        assert "--" + name.replace("_", "-") in out, name
        assert "".join(HELP[name].split())[:40].replace("%%", "%") in squeezed, name
    for flag in ("--out", "--overwrite", "--no-progress"):
        assert flag in out


def test_help_groups_every_option_once_and_lists_choices(capsys):
    grouped = [name for names in cli.GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(OPTIONS)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for title in (*cli.GROUPS, "output and checkpoints", "multi-process runs"):
        assert f"\n{title}" in out, title
    for strategy in STRATEGIES:
        assert strategy in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"hipi-jax {hipi_jax.__version__}"


def config_of(argv: list[str]) -> TrainConfig:
    args = vars(cli.parser().parse_args(argv))
    return TrainConfig.preset(**{name: args[name] for name in OPTIONS if name in args})


def test_no_flags_give_the_config_defaults_and_env_presets_fill_the_rest():
    assert config_of([]) == TrainConfig()
    walker = config_of(["--env", "walker_linear"])
    assert walker.sac.hidden == (64, 64) and walker.run.env_steps == ENV_PRESETS["walker_linear"]["env_steps"]
    assert config_of(["--env", "walker_linear", "--hidden", "8,8"]).sac.hidden == (8, 8)  # a flag beats the preset
    assert walker.relabel.strategy == "inverse_rl" and config_of(["--env", "sawyer_reach"]).relabel.strategy == "future"
    assert config_of(["--env", "sawyer_reach", "--relabel", "inverse_rl"]).relabel.strategy == "inverse_rl"


def test_tiny_flags_parse_to_the_tiny_config():
    assert config_of(TINY) == TINY_CONFIG


@pytest.fixture
def trained(monkeypatch) -> list[TrainConfig]:
    """runner.train replaced by a recorder of the configs it is given."""
    configs = []
    monkeypatch.setattr(runner, "train", lambda config, out, **kwargs: configs.append(config))
    return configs


def test_config_file_gives_the_options_flags_override_it_and_presets_fill_it(tmp_path, trained):
    file = tmp_path / "config.json"
    file.write_text(json.dumps(TINY_CONFIG.to_dict()))  # what a run writes to its config.json
    assert cli.main(["--config", str(file), "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["--config", str(file), "--seed", "3", "--out", str(tmp_path / "b")]) == 0
    file.write_text('{"env": "walker_linear", "batch_size": 64}')
    assert cli.main(["--config", str(file), "--out", str(tmp_path / "c")]) == 0
    assert trained == [TINY_CONFIG, TINY_CONFIG.replace(seed=3), config_of(["--env", "walker_linear",
                       "--batch-size", "64"])]  # fmt: skip


def test_a_yaml_config_file_reads_as_its_json_twin(tmp_path, trained):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG.to_dict()))
    (tmp_path / "short.yml").write_text("env: walker_linear\nbatch_size: 64\nhidden: [32, 32]\n")
    assert cli.main(["--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["--config", str(tmp_path / "short.yml"), "--out", str(tmp_path / "b")]) == 0
    assert trained == [TINY_CONFIG, config_of(["--env", "walker_linear", "--batch-size", "64", "--hidden", "32,32"])]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(None, ["--config", "cannot read it", "No such file"], id="missing"),
        pytest.param("{", ["--config", "cannot read it"], id="not-json"),
        pytest.param("[1]", ["--config", "holds list, not an object"], id="not-an-object"),
        pytest.param('{"batch": 8}', ["--config", "unknown option(s) 'batch'", "batch_size"], id="unknown-option"),
        pytest.param(
            '{"batch_size": "8"}', ["--config", 'batch_size is "8"', "an integer, e.g. 32"], id="string-for-int"
        ),
        pytest.param(
            '{"hidden": [8, 8.5]}', ["--config", "hidden is [8, 8.5]", "a list of integers"], id="float-width"
        ),
        pytest.param('{"gamma": 2}', ["gamma=2"], id="out-of-range"),
    ],
)
@pytest.mark.usefixtures("no_training")
def test_a_bad_config_file_is_one_line(tmp_path, capsys, text, fragments):
    file = tmp_path / "config.json"
    if text is not None:
        file.write_text(text)
    before = snapshot(tmp_path)
    assert_rejected(capsys, ["--config", str(file), "--out", str(tmp_path / "run")], *fragments)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("env: [", "cannot read it"), ("- 1\n", "holds list"), ("learning_rate: one\n", 'learning_rate is "one"')],
)
@pytest.mark.usefixtures("no_training")
def test_a_bad_yaml_config_file_is_one_line(tmp_path, capsys, text, fragment):
    (tmp_path / "config.yml").write_text(text)
    before = snapshot(tmp_path)
    assert_rejected(capsys, ["--config", str(tmp_path / "config.yml"), "--out", str(tmp_path / "run")], fragment)
    assert snapshot(tmp_path) == before


def test_python_dash_m_help():
    result = subprocess.run([sys.executable, "-m", "hipi_jax", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "hipi-train" in result.stdout and "--no-progress" in result.stdout


# ---- bad input ---------------------------------------------------------------------------------------

BAD_INPUTS = [
    pytest.param(["--env", "nope"], ["nope", *CONTINUOUS_ENVS], id="unknown-env"),
    pytest.param(["--env", "gridworld"], ["gridworld", "invalid choice", "nav2d"], id="discrete-env"),
    pytest.param(["--relabel", "hindsight"], ["hindsight", *STRATEGIES], id="unknown-relabel"),
    pytest.param(["--relabel-values", "oracle"], ["oracle", "critic", "backup"], id="unknown-relabel-values"),
    pytest.param(["--relabel-fraction", "1.5"], ["relabel_fraction=1.5"], id="fraction-above-1"),
    pytest.param(["--candidates", "states"], ["candidates='states'", "tasks, achieved, future"], id="bad-candidates"),
    pytest.param(
        ["--env", "walker_linear", "--relabel", "future_released"],
        ["relabel='future_released'", "goal-reaching", "walker_linear"],
        id="released-her-on-linear-tasks",
    ),
    pytest.param(
        ["--relabel", "inverse_rl_released", "--candidates", "tasks+future"],
        ["inverse_rl_released", "candidates=tasks"],
        id="released-inverse-rl-candidates",
    ),
    pytest.param(["--relabel", "future", "--relabel-values", "backup"], ["inverse-RL strategy"], id="values-for-her"),
    pytest.param(["--critic-bound", "0,-1"], ["critic_bound='0,-1'", "LOW < HIGH"], id="critic-bound-reversed"),
    pytest.param(["--critic-bound", "x"], ["critic_bound='x'", "LOW,HIGH"], id="critic-bound-malformed"),
    pytest.param(["--relabel-fraction", "-0.1"], ["relabel_fraction=-0.1"], id="fraction-below-0"),
    pytest.param(["--seeds", "0"], ["seeds=0"], id="zero-seeds"),
    pytest.param(["--seeds", "two"], ["--seeds", "'two'"], id="non-integer-seeds"),
    pytest.param(["--batch-size", "128"], ["batch_size=128", "buffer_size=64"], id="batch-larger-than-buffer"),
    pytest.param(["--num-envs", "0"], ["num_envs=0"], id="zero-envs"),
    pytest.param(["--hidden", "a,b"], ["--hidden", "'a,b'"], id="non-integer-hidden"),
    pytest.param(["--hidden", "8,0"], ["hidden=(8, 0)"], id="zero-width-hidden"),
    pytest.param(["--gamma", "1.0"], ["gamma=1.0"], id="gamma-1"),
    pytest.param(["--learning-rate", "nan"], ["learning_rate=nan"], id="nan-learning-rate"),
    pytest.param(["--warmup-steps", "4"], ["warmup_steps=4", "batch_size=8"], id="warmup-below-batch"),
    pytest.param(["--env-steps", "9"], ["warmup_steps=9", "env_steps=9"], id="no-steps-after-warmup"),
    pytest.param(["--updates-per-env-step", "0.3"], ["0.6"], id="fractional-updates-per-iteration"),
    pytest.param(["--bogus", "1"], ["--bogus"], id="unknown-flag"),
    pytest.param(["--updates-per-env-step", "inf"], ["updates_per_env_step=inf"], id="infinite-updates-per-env-step"),
    pytest.param(["--learning-rate", "inf"], ["learning_rate=inf"], id="infinite-learning-rate"),
    pytest.param(["--grad-clip", "nan"], ["grad_clip=nan"], id="nan-grad-clip"),
    pytest.param(["--sweep", "lr=1,2"], ["sweep='lr=1,2'", "relabel_fraction, learning_rate"], id="sweep-unknown-name"),
    pytest.param(["--sweep", "gamma"], ["sweep='gamma'", "NAME=V1,V2"], id="sweep-without-values"),
    pytest.param(["--sweep", "gamma=0.9,x"], ["sweep='gamma=0.9,x'", "numbers"], id="sweep-non-numeric"),
    pytest.param(["--sweep", "gamma=0.9,0.9"], ["sweep='gamma=0.9,0.9'", "repeats"], id="sweep-repeated-value"),
    pytest.param(["--sweep", "relabel_fraction=0,1.5"], ["sweep=", "fraction=1.5"], id="sweep-value-out-of-range"),
    pytest.param(["--coordinator", "localhost"], ["'localhost'", "HOST:PORT"], id="coordinator-without-port"),
    pytest.param(["--coordinator", "localhost:1234"], ["--num-processes", "--process-id"], id="coordinator-alone"),
    pytest.param(
        ["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"],
        ["--process-id 2", "[0, --num-processes 2)"],
        id="process-id-out-of-range",
    ),
    pytest.param(["--process-id", "1"], ["--coordinator"], id="process-id-without-coordinator"),
    pytest.param(["--starts", "random"], ["--starts", "'random'", "'fresh', 'reuse'"], id="unknown-starts"),
    pytest.param(["--logger", "mlflow"], ["--logger", "'mlflow'", "'tensorboard', 'wandb'"], id="unknown-logger"),
    pytest.param(
        ["--buffer-size", str(2**31 - 1)], ["GiB per device", "buffer_size=2147483647"], id="buffer-too-big-for-device"
    ),
]


@pytest.mark.parametrize(("bad", "fragments"), BAD_INPUTS)
@pytest.mark.usefixtures("no_training")
def test_bad_input_exits_2_with_one_line_and_creates_nothing(tmp_path, capsys, bad, fragments):
    before = snapshot(tmp_path)
    out = tmp_path / "run"
    assert_rejected(capsys, [*TINY, *bad, "--out", str(out), "--no-progress"], *fragments)
    assert not out.exists()
    assert snapshot(tmp_path) == before


@pytest.mark.usefixtures("no_training")
def test_hindsight_goal_strategy_on_a_non_goal_env(tmp_path, capsys):
    non_goal = [name for name in CONTINUOUS_ENVS if not envs.make(name).task_family.supports_hindsight_goals]
    assert non_goal  # e.g. walker_linear, cheetah_velocity
    for strategy in ("final", "future"):
        out = tmp_path / "run"
        assert_rejected(capsys, [*TINY, "--env", non_goal[0], "--relabel", strategy, "--out", str(out)], strategy)
        assert not out.exists()


@pytest.mark.usefixtures("no_training")
def test_out_holding_files_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"old": true}\n')
    (out / "notes.txt").write_bytes(b"\x00keep me")
    (out / "checkpoints").mkdir()
    before, mtimes = snapshot(tmp_path), {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert_rejected(capsys, [*TINY, "--out", str(out), "--no-progress"], str(out), "--overwrite")
    assert snapshot(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes


@pytest.mark.usefixtures("no_training")
def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.write_bytes(b"not a directory")
    before = snapshot(tmp_path)
    assert_rejected(capsys, [*TINY, "--out", str(out)], str(out), "not a directory")
    assert snapshot(tmp_path) == before


@pytest.mark.usefixtures("no_training")
def test_out_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "plain").write_bytes(b"a file, not a directory")
    out = tmp_path / "plain" / "run"
    before = snapshot(tmp_path)
    assert_rejected(capsys, [*TINY, "--out", str(out)], str(out))
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
@pytest.mark.usefixtures("no_training")
def test_out_under_a_read_only_directory_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        out = locked / "sub" / "run"
        assert_rejected(capsys, [*TINY, "--out", str(out)], str(out), "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


# ---- a real run --------------------------------------------------------------------------------------


def check_run_dir(out: Path, config: TrainConfig) -> None:
    assert {p.name for p in out.iterdir()} >= set(rundir.RUN_FILES) | {"checkpoints", "policies"}
    stored = json.loads((out / "config.json").read_text())
    assert stored == json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(stored) == config  # JSON stores the tuple as a list

    lines = (out / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == config.num_chunks + 1
    for rec in records:
        for key in RECORD_KEYS:
            assert key in rec, key
        for key in ("eval_return", "eval_success"):
            assert isinstance(rec[key], list) and len(rec[key]) == config.run.seeds
    assert [r["env_steps"] for r in records] == [10, 34, 58]
    assert [r["updates"] for r in records] == [0, 24, 48]
    assert all(len(r["critic_loss"]) == config.run.seeds for r in records[1:])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 58 and summary["updates"] == 48
    assert summary["eval_return"] == records[-1]["eval_return"]
    assert summary["env_steps_per_s"] > 0 and summary["updates_per_s"] > 0

    png = (out / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert not list(out.glob("*.tmp"))


def test_run_writes_the_run_directory_and_guards_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*TINY, "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert f"writing {out}" in stdout and "done in" in stdout
    check_run_dir(out, TINY_CONFIG)

    # a second run into the same directory is refused and touches nothing
    before = snapshot(out)
    assert_rejected(capsys, [*TINY, "--out", str(out), "--no-progress"], str(out), "--overwrite")
    assert snapshot(out) == before

    # --overwrite replaces the run files (metrics are not appended), keeps other files, replaces checkpoints
    (out / "notes.txt").write_text("mine")
    (out / "checkpoints" / "stale").write_text("old")
    assert cli.main([*TINY, "--out", str(out), "--no-progress", "--overwrite"]) == 0
    check_run_dir(out, TINY_CONFIG)
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "checkpoints" / "stale").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["1", "2"]  # --keep 2 of 2 chunks
    # same config, same seed: the metrics are the same apart from wall-clock time
    strip = lambda text: [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in text.splitlines()]
    assert strip((out / "metrics.jsonl").read_text()) == strip(before["metrics.jsonl"].decode())


def test_resume_takes_the_options_and_loggers_from_the_run(tmp_path, capsys):
    """`--resume --out DIR` alone continues with the options in DIR/config.json and the loggers the run used;
    a raised --env-steps extends it to what one longer run gives; a differing option is still refused."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert cli.main([*TINY, "--out", str(whole), "--no-progress"]) == 0
    assert cli.main([*TINY, "--env-steps", "20", "--out", str(part), "--no-progress", "--logger", "tensorboard"]) == 0
    assert len(metrics(part)) == 2  # after the warm-up and after the one chunk
    assert cli.main(["--resume", "--out", str(part), "--env-steps", "40", "--no-progress"]) == 0
    capsys.readouterr()
    assert metrics(part) == metrics(whole)
    assert json.loads((part / "config.json").read_text()) == json.loads((whole / "config.json").read_text())
    runs = list((part / "tensorboard").iterdir())  # one event directory per run (seed)
    assert len(runs) == 2
    for run in runs:  # the first process's event file and the resumed one's
        assert len(list(run.glob("events.out.tfevents.*"))) == 2, run
    assert cli.logged_to(part) == ("tensorboard",) and cli.logged_to(whole) == ()
    assert_rejected(capsys, ["--resume", "--out", str(part), "--batch-size", "4"], "batch_size", "saved 8, given 4")


def metrics(out: Path) -> list[dict]:
    """metrics.jsonl without wall-clock time."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in lines]


def test_sweep_is_the_separate_runs_in_one_program(tmp_path, capsys):
    """--sweep gamma=0.9,0.99 with 2 seeds = 4 runs in one vmapped program; run r has value r // 2 and
    seed index r % 2, and equals the separate 2-seed run with that value: bitwise here, with XLA's
    optimizations off (test_reproducibility.py states what holds under the CLI's default settings)."""
    out = tmp_path / "sweep"
    assert cli.main([*TINY, "--sweep", "gamma=0.9,0.99", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    swept = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == [
        {"run": 2 * i + s, "seed_index": s, "gamma": g} for i, g in enumerate((0.9, 0.99)) for s in (0, 1)
    ]
    for i, gamma in enumerate((0.9, 0.99)):
        alone = []
        runner.loop(programs.build(TINY_CONFIG.replace(gamma=gamma)), alone.append, progress=False)
        assert len(alone) == len(swept)
        for a, b in zip(alone, swept, strict=True):
            for key, value in a.items():
                if key != "wall_s":
                    expected = b[key][2 * i : 2 * i + 2] if isinstance(value, list) else b[key]
                    assert report.short_floats(value) == expected, (gamma, key)
    assert (out / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_diverging_run_exits_1_and_keeps_what_it_wrote(tmp_path, capsys):
    """NonFiniteError: exit 1, one error line naming the quantity; config, metrics so far and curves stay."""
    out = tmp_path / "run"
    assert cli.main([*TINY, "--learning-rate", "1e30", "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"^hipi-train: error: non-finite \w+ at env step 34 \(run index [01]\)", err, re.M), err
    assert "Traceback" not in err
    assert {p.name for p in out.iterdir()} == {*rundir.RUN_FILES, rundir.LOCK, "checkpoints"} - {"summary.json"}
    assert not list((out / "checkpoints").iterdir())  # the non-finite state is never checkpointed
    assert [json.loads(line)["env_steps"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [10]
    assert (out / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_a_config_json_of_hipi_jax_0_2_0_still_resumes(tmp_path):
    """config.json as hipi-jax 0.2.0 wrote it (tests/data/config_0.2.0.json, a flat object of the flags,
    no version field) fills the options of `--resume` and matches the config it gives: a change of the
    config's layout must keep reading it (docs/architecture.md, "What a run leaves behind")."""
    old = Path(__file__).parent / "data" / "config_0.2.0.json"
    (tmp_path / "config.json").write_text(old.read_text())
    saved = cli.saved_options(tmp_path)
    assert saved == json.loads(old.read_text())
    config = TrainConfig.from_dict(saved)
    assert (config.run.env, config.run.seeds, config.sac.hidden, config.run.env_steps) == ("nav2d", 2, (32, 32), 6000)
    assert rundir.differing_options(saved, config) == []
    rundir.check_same(saved, config.replace(env_steps=12000), "config.json")  # a raised budget
    with pytest.raises(ValueError, match="gamma: saved 0.99, given 0.9"):
        rundir.check_same(saved, config.replace(gamma=0.9), "config.json")
