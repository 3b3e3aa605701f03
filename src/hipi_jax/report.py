"""What a run leaves behind (docs/architecture.md): metrics.jsonl, summary.json and curves.png."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Replace `path` with `records`, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def write_benchmark(path: Path, args: dict, rows: list[dict]) -> None:
    """A benchmark's JSON: the command, machine, versions, arguments and its rows."""
    import os
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
    axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bars(results: dict[str, dict[str, dict]], path: Path, key: str = "eval_return", title: str = "") -> None:
    """One panel per group (e.g. env), one bar per method: mean ± std over seeds of `key`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 4), squeeze=False)
    for ax, (group, methods) in zip(axes[0], results.items(), strict=True):
        names = list(methods)
        means = [methods[m][f"{key}_mean"] for m in names]
        stds = [methods[m][f"{key}_std"] for m in names]
        ax.bar(range(len(names)), means, yerr=stds, capsize=4, color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(group)
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
