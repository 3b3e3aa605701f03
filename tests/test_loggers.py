"""Loggers and the files beside metrics.jsonl: float formatting, metrics.csv, TensorBoard events (read back from
their TFRecord framing), the wandb logger against a fake module. No training."""

from __future__ import annotations

import csv
import json
import math
import struct
import sys
import types

import numpy as np
import pytest
from tensorboardX.proto.event_pb2 import Event, SessionLog

from hipi_jax import loggers, report, rundir
from hipi_jax.config import TrainConfig

f32 = lambda x: float(np.float32(x))

PLAIN = TrainConfig.preset(env="nav2d", seeds=2)
SWEEP = TrainConfig.preset(env="nav2d", seeds=2, sweep="relabel_fraction=0.2,0.8")  # 4 runs


def make_records(runs: int, steps=(1000, 2000, 3000), offset: float = 0.0) -> list[dict]:
    """Records as runner.loop makes them: the first without training metrics, float32-derived values."""
    records = []
    for i, step in enumerate(steps):
        rec = {
            "env_steps": step,
            "updates": 10 * i,
            "wall_s": round(1.5 * i + 0.25, 3),
            "eval_return": [f32(0.1 * r + i + offset) for r in range(runs)],
            "eval_success": [f32(0.05 * (r % 2)) for r in range(runs)],
        }
        if i > 0:
            rec["critic_loss"] = [f32(1.0 / (3 + r + i)) for r in range(runs)]
            rec["alpha"] = [f32(1e-8 * (r + 1)) for r in range(runs)]
        records.append(rec)
    return records


# ---- floats ----------------------------------------------------------------------------------------------


def test_short_float_cases():
    assert report.short_float(f32(0.05)) == 0.05 and repr(f32(0.05)) == "0.05000000074505806"
    assert json.dumps(report.short_floats({"a": [f32(0.05), f32(0.1)], "b": 3})) == '{"a": [0.05, 0.1], "b": 3}'
    for x in (1e-8, 1.1754944e-38, 1e-45, 3.4028235e38, 123456.789, -7.3e12, 16777216.0):
        short = report.short_float(f32(x))
        assert np.float32(float(repr(short))) == np.float32(x)  # the float32 value survives exactly
        assert len(repr(short)) <= len(repr(f32(x)))
    assert report.short_float(f32(1e-8)) == 1e-8
    assert report.short_float(f32(-0.0)) == 0.0 and math.copysign(1, report.short_float(-0.0)) == -1
    for x in (0.1, 1 / 3, 3e-4, 1e300, 12.345):  # float64 values float32 cannot hold pass unchanged
        assert report.short_float(x) == x
    assert math.isnan(report.short_float(math.nan))
    assert report.short_float(math.inf) == math.inf and report.short_float(-math.inf) == -math.inf
    out = report.short_floats([1, True, None, "s", np.float32(0.05), np.int64(7), (2.5,)])
    assert out == [1, True, None, "s", 0.05, 7, [2.5]]
    assert type(out[0]) is int and type(out[1]) is bool and type(out[5]) is int
    # NaN and inf as json writes them today
    assert report.dumps([math.nan, math.inf, -math.inf]) == "[NaN, Infinity, -Infinity]"


def test_short_float_random_float32_round_trip():
    bits = np.random.default_rng(0).integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    text = report.dumps([float(v) for v in values])
    back = np.array(json.loads(text), dtype=np.float32)
    np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))
    assert report.dumps(json.loads(text)) == text  # idempotent: rewriting changes nothing


def test_jsonl_and_json_write_short_floats(tmp_path):
    rec = {"env_steps": 5, "eval_return": [f32(0.05), f32(-1.7)], "wall_s": 0.123}
    report.append_jsonl(tmp_path / "m.jsonl", rec)
    assert (tmp_path / "m.jsonl").read_text() == '{"env_steps": 5, "eval_return": [0.05, -1.7], "wall_s": 0.123}\n'
    report.write_jsonl(tmp_path / "m.jsonl", [rec, rec])
    assert (tmp_path / "m.jsonl").read_text().count("[0.05, -1.7]") == 2
    report.write_json(tmp_path / "s.json", {"x": f32(0.3), "n": [math.nan]})
    assert json.loads((tmp_path / "s.json").read_text())["x"] == 0.3
    assert '"n": [\n    NaN\n  ]' in (tmp_path / "s.json").read_text()


# ---- metrics.csv ------------------------------------------------------------------------------------------


def read_csv(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_csv_sweep(tmp_path):
    records = make_records(SWEEP.runs)
    report.write_csv(tmp_path / "metrics.csv", records, SWEEP)
    header, rows = read_csv(tmp_path / "metrics.csv")
    assert header == [
        "run", "seed_index", "relabel_fraction", "env_steps", "updates", "wall_s",
        "eval_return", "eval_success", "critic_loss", "alpha",
    ]  # fmt: skip
    assert len(rows) == len(records) * SWEEP.runs
    for i, rec in enumerate(records):
        for r in range(SWEEP.runs):
            row = rows[i * SWEEP.runs + r]
            assert int(row["run"]) == r and int(row["seed_index"]) == r % 2
            assert float(row["relabel_fraction"]) == (0.2, 0.8)[r // 2]
            assert int(row["env_steps"]) == rec["env_steps"] and int(row["updates"]) == rec["updates"]
            assert float(row["wall_s"]) == rec["wall_s"]
            for key in ("eval_return", "eval_success", "critic_loss", "alpha"):
                if key in rec:
                    assert np.float32(float(row[key])) == np.float32(rec[key][r])
                    assert row[key] == repr(report.short_float(rec[key][r]))  # short: no float32 noise
                else:
                    assert row[key] == ""
    assert rows[1]["eval_success"] == "0.05" and rows[0]["relabel_fraction"] == "0.2"


def test_csv_plain_config_and_mismatch(tmp_path):
    records = make_records(PLAIN.runs, steps=(100,))
    records[0]["eval_return"][1] = math.nan
    text = report.csv_text(records, PLAIN)
    assert text == (
        "run,seed_index,env_steps,updates,wall_s,eval_return,eval_success\n"
        "0,0,100,0,0.25,0.0,0.0\n"
        "1,1,100,0,0.25,nan,0.05\n"
    )
    assert report.csv_text([], PLAIN) == "run,seed_index,env_steps,updates,wall_s\n"
    with pytest.raises(ValueError, match="eval_return has 2 values, the config has 4 runs"):
        report.csv_text(records, SWEEP)


# ---- TensorBoard ------------------------------------------------------------------------------------------


def read_events(path) -> list[Event]:
    """The events of one TFRecord event file (u64 length, u32 crc, data, u32 crc; CRCs not checked)."""
    data, events, i = path.read_bytes(), [], 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        events.append(Event.FromString(data[i + 12 : i + 12 + n]))
        i += 12 + n + 4
    return events


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard shows them: files in name order, and a SessionLog.START at step s
    drops the points read before at steps >= s (purge_step)."""
    points: list[tuple[str, int, float]] = []
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    for path in files:
        for ev in read_events(path):
            if ev.HasField("session_log") and ev.session_log.status == SessionLog.START:
                points = [p for p in points if p[1] < ev.step]
            for v in ev.summary.value:
                points.append((v.tag, ev.step, v.simple_value))
    out: dict[str, list[tuple[int, float]]] = {}
    for tag, step, value in points:
        out.setdefault(tag, []).append((step, value))
    return out


def expected(records: list[dict], r: int) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in records:
        for k, v in rec.items():
            if k != "env_steps":
                out.setdefault(k, []).append((rec["env_steps"], f32(v[r] if isinstance(v, list) else v)))
    return out


def test_run_labels():
    assert loggers.run_labels(PLAIN) == ["seed0", "seed1"]
    assert loggers.run_labels(SWEEP) == [
        "relabel_fraction=0.2,seed0", "relabel_fraction=0.2,seed1",
        "relabel_fraction=0.8,seed0", "relabel_fraction=0.8,seed1",
    ]  # fmt: skip
    lr = TrainConfig.preset(env="nav2d", seeds=1, sweep="learning_rate=0.001,3e-4")
    assert loggers.run_labels(lr) == ["learning_rate=0.001,seed0", "learning_rate=0.0003,seed0"]


def test_tensorboard_scalars_and_resume(tmp_path):
    records = make_records(SWEEP.runs, steps=(1000, 2000, 3000, 4000))
    with loggers.open_loggers(["tensorboard"], tmp_path, SWEEP) as log:
        for rec in records:
            log.log(rec)
    labels = loggers.run_labels(SWEEP)
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == sorted(labels)
    for r, label in enumerate(labels):
        assert scalars(tmp_path / "tensorboard" / label) == expected(records, r)

    # resume after the checkpoint at 2000: the interrupted run's points at 3000 and 4000 are replaced
    redo = make_records(SWEEP.runs, steps=(1000, 2000, 3000, 4000, 5000), offset=100.0)[2:]
    with loggers.open_loggers(["tensorboard"], tmp_path, SWEEP, resume_step=2000) as log:
        for rec in redo:
            log.log(rec)
    for r, label in enumerate(labels):
        run_dir = tmp_path / "tensorboard" / label
        files = sorted(run_dir.glob("events.out.tfevents.*"))
        assert len(files) == 2
        starts = [ev.step for ev in read_events(files[1]) if ev.HasField("session_log")]
        assert starts == [2001]  # purge_step
        assert scalars(run_dir) == expected(records[:2] + redo, r)

    # a fresh start removes the old event files
    with loggers.open_loggers(["tensorboard"], tmp_path, SWEEP) as log:
        log.log(records[0])
    assert scalars(tmp_path / "tensorboard" / labels[3]) == expected(records[:1], 3)


# ---- jsonl and csv loggers ------------------------------------------------------------------------------


def test_jsonl_csv_loggers_resume(tmp_path):
    records = make_records(PLAIN.runs, steps=(1000, 2000, 3000))
    (tmp_path / "metrics.csv").write_text("stale\n")
    with loggers.open_loggers(["jsonl", "csv"], tmp_path, PLAIN) as log:
        assert not (tmp_path / "metrics.csv").exists()
        for rec in records:
            log.log(rec)
    assert rundir.read_jsonl(tmp_path / "metrics.jsonl") == [report.short_floats(r) for r in records]
    assert (tmp_path / "metrics.csv").read_text() == report.csv_text(records, PLAIN)

    redo = make_records(PLAIN.runs, steps=(1000, 2000, 3000, 4000), offset=9.0)[2:]
    with loggers.open_loggers(["csv", "jsonl"], tmp_path, PLAIN, resume_step=2000) as log:
        kept = rundir.read_jsonl(tmp_path / "metrics.jsonl")
        assert [r["env_steps"] for r in kept] == [1000, 2000]
        assert (tmp_path / "metrics.csv").read_text() == report.csv_text(kept, PLAIN)
        for rec in redo:
            log.log(rec)
    final = rundir.read_jsonl(tmp_path / "metrics.jsonl")
    assert final == [report.short_floats(r) for r in records[:2] + redo]
    header, rows = read_csv(tmp_path / "metrics.csv")
    assert [int(row["env_steps"]) for row in rows] == [1000, 1000, 2000, 2000, 3000, 3000, 4000, 4000]
    assert float(rows[4]["eval_return"]) == report.short_float(redo[0]["eval_return"][0])


def test_unknown_logger_and_bad_resume_step(tmp_path):
    with pytest.raises(ValueError, match="unknown logger 'mlflow'; valid: jsonl, csv, tensorboard, wandb"):
        loggers.open_loggers(["tensorboard", "mlflow"], tmp_path / "run", PLAIN)
    assert not (tmp_path / "run").exists()  # nothing written before the names are checked
    with pytest.raises(ValueError, match="resume_step"):
        loggers.open_loggers(["csv"], tmp_path, PLAIN, resume_step=-1)
    with loggers.open_loggers([], tmp_path, PLAIN) as log:
        log.log(make_records(2)[0])  # no logger: nothing happens
    assert list(tmp_path.iterdir()) == []


# ---- wandb ------------------------------------------------------------------------------------------------


class FakeRun:
    def __init__(self, calls: list, kwargs: dict):
        self.calls, self.kwargs = calls, kwargs
        self.logged: list[dict] = []
        self.metrics: list[tuple] = []
        self.finished = False

    def define_metric(self, name, **kwargs):
        self.metrics.append((name, kwargs))

    def log(self, data: dict):
        assert not self.finished
        self.logged.append(dict(data))

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    calls: list[FakeRun] = []
    module = types.ModuleType("wandb")
    module.Settings = lambda **kwargs: ("Settings", kwargs)

    def init(**kwargs):
        assert kwargs["mode"] == "offline" and kwargs["reinit"] == "create_new"
        calls.append(FakeRun(calls, kwargs))
        return calls[-1]

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    return calls


def expected_wandb(records: list[dict], r: int) -> list[dict]:
    return [{k: v[r] if isinstance(v, list) else v for k, v in rec.items()} for rec in records]


def test_wandb_one_run_per_hipi_run(tmp_path, fake_wandb):
    out = tmp_path / "nav2d-sweep"
    records = make_records(SWEEP.runs)
    (out / "wandb" / "offline-run-old").mkdir(parents=True)
    with loggers.open_loggers(["wandb"], out, SWEEP) as log:
        assert list((out / "wandb").iterdir()) == []  # a fresh start removes an earlier run's wandb dir
        for rec in records:
            log.log(rec)
    assert len(fake_wandb) == SWEEP.runs
    for r, (run, label) in enumerate(zip(fake_wandb, loggers.run_labels(SWEEP), strict=True)):
        kw = run.kwargs
        assert kw["project"] == "hipi-jax" and kw["group"] == "nav2d-sweep"
        assert kw["name"] == f"nav2d-sweep/{label}" and kw["dir"] == str(out)
        assert kw["config"]["relabel_fraction"] == (0.2, 0.8)[r // 2]
        assert kw["config"]["seed_index"] == r % 2 and kw["config"]["run"] == r
        assert kw["config"]["env"] == "nav2d" and kw["config"]["sweep"] == "relabel_fraction=0.2,0.8"
        assert kw["settings"] == ("Settings", {"console": "off"})
        assert run.metrics == [("env_steps", {}), ("*", {"step_metric": "env_steps"})]
        assert run.logged == expected_wandb(records, r)
        assert run.finished


def test_wandb_resume_replays_history(tmp_path, fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    records = make_records(PLAIN.runs, steps=(1000, 2000, 3000))
    with loggers.open_loggers(["jsonl", "wandb"], tmp_path, PLAIN) as log:
        for rec in records:
            log.log(rec)
    fake_wandb.clear()
    redo = make_records(PLAIN.runs, steps=(1000, 2000, 3000), offset=5.0)[2:]
    with loggers.open_loggers(["wandb", "jsonl"], tmp_path, PLAIN, resume_step=2000) as log:
        for rec in redo:
            log.log(rec)
    assert [run.kwargs["project"] for run in fake_wandb] == ["mine", "mine"]
    for r, run in enumerate(fake_wandb):  # fresh runs: the kept history, then the new records
        assert run.logged == expected_wandb([report.short_floats(x) for x in records[:2]] + redo, r)
        assert run.finished


def test_wandb_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ValueError) as e:
        loggers.open_loggers(["tensorboard", "wandb"], tmp_path / "run", PLAIN)
    assert str(e.value) == "the wandb logger needs wandb: pip install 'hipi-jax[wandb]'"
    assert not (tmp_path / "run").exists()
