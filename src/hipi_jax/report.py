"""What a run leaves behind (docs/architecture.md): metrics.jsonl, metrics.csv, summary.json and curves.png.

Floats that came from float32 are written as float32's shortest decimal (0.05, not 0.05000000074505806).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hipi_jax.rundir import append_line, atomic_open, write_text

if TYPE_CHECKING:
    from hipi_jax.config import TrainConfig

_F32_MAX = float(np.finfo(np.float32).max)


def short_float(x: float) -> float:
    """`x`, or, when float32 holds `x` exactly (it came from float32), the float of float32's shortest
    decimal: repr(short_float(x)) then reads back to the same float32 (0.05000000074505806 -> 0.05).
    NaN, inf and floats float32 cannot hold pass unchanged."""
    if not abs(x) <= _F32_MAX:  # NaN, inf, beyond float32
        return x
    f = np.float32(x)
    return float(str(f)) if float(f) == x else x


def short_floats(obj):
    """`obj` with every float (in dicts, lists and tuples) through `short_float`; numpy scalars become
    Python numbers (a float32 one always short)."""
    if isinstance(obj, dict):
        return {k: short_floats(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [short_floats(v) for v in obj]
    if isinstance(obj, float):  # np.float64 too
        return short_float(float(obj))
    if isinstance(obj, np.floating):  # float32, float16: float32 holds them exactly
        return short_float(float(obj)) if obj.dtype.itemsize <= 4 else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def dumps(obj, indent: int | None = None) -> str:
    """JSON of `obj` with floats as short as `short_floats` makes them (NaN and inf as json writes them)."""
    return json.dumps(short_floats(obj), indent=indent)


def append_jsonl(path: Path, record: dict) -> None:
    """Append `record` as one JSON line, fsynced (`rundir.append_line`)."""
    append_line(path, dumps(record))


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Replace `path` with `records`, atomically."""
    write_text(path, "".join(dumps(r) + "\n" for r in records))


def write_json(path: Path, obj: dict) -> None:
    """Replace `path` with `obj` as JSON (floats as `dumps` writes them), atomically."""
    write_text(path, dumps(obj, indent=2) + "\n")


RECORD_COLUMNS = ("env_steps", "updates", "wall_s")  # a record's run-wide values, first in metrics.csv


def _cell(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return repr(short_float(x))  # nan, inf, -inf for the non-finite (pandas and float() read them)
    return str(x)


def csv_text(records: list[dict], config: TrainConfig) -> str:
    """metrics.csv: one row per run per record; columns run, seed_index, [swept name], env_steps, updates,
    wall_s, then every other key of the records in order of first appearance (empty where a record lacks it)."""
    runs = config.run_table()
    metrics = list(dict.fromkeys(k for rec in records for k in rec if k not in RECORD_COLUMNS))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*runs[0], *RECORD_COLUMNS, *metrics])
    for rec in records:
        for k, v in rec.items():
            if isinstance(v, list) and len(v) != config.runs:
                raise ValueError(
                    f"record at env_steps={rec.get('env_steps')}: {k} has {len(v)} values, "
                    f"the config has {config.runs} runs"
                )
        for r, run in enumerate(runs):
            values = [rec.get(k) for k in RECORD_COLUMNS]
            values += [v[r] if isinstance(v := rec.get(k), list) else v for k in metrics]
            w.writerow([_cell(x) for x in (*run.values(), *values)])
    return buf.getvalue()


def write_csv(path: Path, records: list[dict], config: TrainConfig) -> None:
    """Replace `path` with `csv_text(records, config)`, atomically (e.g. from metrics.jsonl after a resume)."""
    write_text(path, csv_text(records, config))


def write_benchmark(path: Path, args: dict, rows: list[dict]) -> None:
    """A benchmark's JSON: the command, machine, versions, arguments and its rows."""
    import platform
    import sys

    import jax

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        path,
        {
            "command": " ".join(["python"] + sys.argv),
            "machine": {
                "platform": platform.platform(),
                "device": jax.devices()[0].device_kind,
                "cpu_count": os.cpu_count(),
            },
            "versions": {"jax": jax.__version__, "python": platform.python_version()},
            "args": {k: str(v) for k, v in args.items()},
            "rows": rows,
        },
    )


def mean_std(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(env_steps, mean over seeds, std over seeds) of a per-seed metric."""
    rows = [r for r in records if key in r]
    steps = np.array([r["env_steps"] for r in rows])
    values = np.array([r[key] for r in rows], dtype=float)  # [points, seeds]
    return steps, values.mean(axis=1), values.std(axis=1)


DIAGNOSTICS = {  # relabeling diagnostics of metrics.jsonl (relabel.relabel), one panel each
    "relabel_success": ("relabel_success",),
    "relabel_kept": ("relabel_kept",),
    "posterior_entropy": ("posterior_entropy",),
    "soft Q of the chosen (solid) vs the commanded task (dashed)": ("soft_q_chosen", "soft_q_commanded"),
    "self_pairs (s' = s)": ("self_pairs",),
}


def plot_curves(curves: dict[str, list[dict]], path: Path, title: str = "") -> None:
    """Learning curves, mean ± std over seeds, one line per entry of `curves` (label -> records), then
    one panel per relabeling diagnostic the records hold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = lambda k: any(k in r for recs in curves.values() for r in recs)
    panels = [(k.replace("_", " "), (k,)) for k in ("eval_return", "eval_success") if present(k)]
    panels += [(name, keys) for name, keys in DIAGNOSTICS.items() if present(keys[0])]
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (name, keys) in zip(axes.flat, panels, strict=False):
        for i, (label, records) in enumerate(curves.items()):
            for key, style in zip(keys, ("-", "--"), strict=False):
                if not any(key in r for r in records):
                    continue
                steps, mean, std = mean_std(records, key)
                ax.plot(steps, mean, style, marker=".", color=f"C{i % 10}", label=label if style == "-" else None)
                ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=f"C{i % 10}")
        ax.set_xlabel("environment steps (per seed)")
        ax.set_ylabel(name if len(keys) == 1 else "soft Q")
        ax.set_title(name if len(keys) > 1 else "", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(title="mean over seeds, shaded ± 1 std", title_fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)


def plot_bars(results: dict[str, dict[str, dict]], path: Path, key: str = "eval_return", title: str = "") -> None:
    """One panel per group (e.g. env), one point per method: the mean over seeds of `key` with an error
    bar of ± 1 std over seeds (points, not bars from 0: returns are often negative)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 4), squeeze=False)
    for ax, (group, methods) in zip(axes[0], results.items(), strict=True):
        names = list(methods)
        means = [methods[m][f"{key}_mean"] for m in names]
        stds = [methods[m][f"{key}_std"] for m in names]
        for i, (mean, std) in enumerate(zip(means, stds, strict=True)):
            ax.errorbar(i, mean, yerr=std, fmt="o", capsize=4, color=f"C{i}")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_title(group)
        ax.set_ylabel(f"{key.replace('_', ' ')}: mean ± 1 std over seeds")
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
