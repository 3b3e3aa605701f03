"""The run directory on disk: what belongs to a run, who may write it, and writes that never leave a
file half-written.

- Which files and directories are a run's (`RUN_FILES`, `RUN_DIRS`, `LOCK`), whether a path is one of
  them (`run_file`), and the refusals of an `--out` that cannot or may not be written (`check_writable`,
  `check_out_dir`, `check_resume`, `output_file`).
- The lock a running hipi-train holds on its directory (`lock_run_dir`).
- Atomic writes: `atomic_path` / `atomic_open` / `write_text` (written aside, fsynced, renamed), fsynced
  appends (`append_line`) whose torn last line `read_jsonl` drops, and OSErrors re-raised naming the file
  (`naming`). report.py writes its files through them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hipi_jax.config import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "summary.json", "curves.png")
STALE_FILES = ("eval.json",)  # written by hipi-eval about an earlier run
RUN_DIRS = ("checkpoints", "checkpoints-unusable", "policies", "tensorboard", "wandb")
LOCK = ".hipi-train.lock"


def lock_run_dir(out: Path) -> int:
    """Hold an exclusive OS lock on `out` for the life of this process (the kernel releases it on any exit,
    SIGKILL included). Raises ValueError naming the holder's PID when another process holds it."""
    import fcntl

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ValueError(f"--out {out} cannot be created ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ValueError(
            f"--out {out} is in use by another hipi-train (pid {holder}); wait for it or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unwritable_dir(path: Path) -> Path | None:
    """The directory that would refuse writing `path` (itself if a directory, else its nearest existing
    ancestor; a read-only file system refuses too), or None when it can be written."""
    parent = path if path.is_dir() else next(p for p in path.absolute().parents if p.exists())
    return None if os.access(parent, os.W_OK | os.X_OK) else parent


def check_writable(out: Path) -> None:
    """Refuse an `out` that cannot be written: a name longer than the file system allows, or a directory
    (or its nearest existing ancestor) without write access or on a read-only file system."""
    limit = os.pathconf(next(p for p in out.absolute().parents if p.exists()), "PC_NAME_MAX")
    for part in out.absolute().parts:  # before any stat of `out`, which fails on such a name
        if (size := len(os.fsencode(part))) > limit:
            raise ValueError(f"--out: the name {part[:32]}... is {size} bytes; this file system allows {limit}")
    if (denied := unwritable_dir(out)) is not None:
        raise ValueError(f"--out {out} is not writable ({denied} denies write access or is read-only)")


def check_out_dir(out: Path, overwrite: bool, config: TrainConfig | None = None) -> None:
    """Refuse an existing run directory without `overwrite` (unless it holds only the start of this same
    `config`'s run, stopped before its first checkpoint), or one that cannot be created or written."""
    check_writable(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    held = out.is_dir() and any(p.name != LOCK for p in out.iterdir())  # a lock alone: a run stopped at its start
    if held and not overwrite and not (config and unsaved_start(out, config)):
        raise ValueError(
            f"--out {out} already holds files; pass --overwrite (Python: overwrite=True) to replace them or choose "
            "another --out"
        )


def has_checkpoint(out: Path) -> bool:
    """Whether `out/checkpoints` holds a step directory."""
    ckpts = out / "checkpoints"
    return ckpts.is_dir() and any(d.name.isdigit() for d in ckpts.iterdir())


def unsaved_start(out: Path, config: TrainConfig) -> bool:
    """Whether `out` holds a run of this same `config` stopped before its first checkpoint (no step
    directory, no summary.json): rerunning the command then starts it afresh, without --overwrite."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    try:
        if not isinstance(saved, dict) or differing_options(saved, config):
            return False
    except ValueError:  # a config.json of another version
        return False
    return not (out / "summary.json").exists() and not has_checkpoint(out)


def check_resume(out: Path, config: TrainConfig) -> None:
    """Refuse resuming without a run in `out`, or with options that differ from its config.json beyond the
    budget (`check_same` then compares them with the config saved in the checkpoint itself)."""
    check_writable(out)
    missing = [name for name, there in (("config.json", (out / "config.json").is_file()),
                                        ("checkpoints/", (out / "checkpoints").is_dir())) if not there]  # fmt: skip
    if missing:
        raise ValueError(f"--resume: {out} holds no run to resume ({' and '.join(missing)} missing)")
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--resume: {out / 'config.json'} is unreadable ({e}); it is not changed") from None
    check_same(saved, config, out / "config.json")


def differing_options(saved: dict, config: TrainConfig, ignore: Sequence[str] = ()) -> list[str]:
    """The options whose value in a `saved` config dict differs from `config`'s, beyond `ignore`; an
    option added since the dict was saved counts as its default."""
    from hipi_jax.config import DEFAULTS, flat_options

    saved = json.loads(json.dumps({**DEFAULTS, **flat_options(saved)}))
    given = json.loads(json.dumps(config.options()))
    return [k for k in dict.fromkeys([*given, *saved]) if k not in ignore and saved.get(k) != given.get(k)]


def check_same(saved, config: TrainConfig, source: Path | str) -> None:
    """Refuse (ValueError naming each differing option) when the `saved` config differs from `config`
    beyond `env_steps`, the budget a resume may raise."""
    if not isinstance(saved, dict):
        raise ValueError(f"--resume: {source} holds {type(saved).__name__}, not a config object")
    try:
        differ = differing_options(saved, config, ignore=("env_steps",))
    except ValueError as e:
        raise ValueError(f"--resume: {source}: {e}") from None
    if differ:
        from hipi_jax.config import flat_options

        saved, given = flat_options(saved), config.options()
        changes = ", ".join(f"{k}: saved {saved.get(k)!r}, given {given.get(k)!r}" for k in differ)
        raise ValueError(f"--resume: the options differ from those in {source} beyond --env-steps ({changes})")


def run_file(run_dir: Path, path: Path) -> str | None:
    """What `path` is to the run in `run_dir` when it is one of the run's own files (config.json, the
    metrics, curves.png, ... or anything under checkpoints/ or policies/), else None."""
    run, target = run_dir.resolve(), path.resolve()
    if target.parent == run and target.name in (*RUN_FILES, LOCK):
        return target.name
    inside = next((d for d in RUN_DIRS if target.is_relative_to(run / d)), None)
    return f"{inside}/ (a file under it)" if inside else None


def output_file(flag: str, path: Path, run_dirs: Sequence[Path], default: str = "") -> str | None:
    """The problem with writing a command's output `path` (given as `flag`) beside the runs `run_dirs`:
    not a file in an existing directory, or one of a run's own files (`run_file`); None when it may be
    written. `default` names the flag's default in the second message."""
    if path.is_dir() or not path.parent.is_dir():
        return f"{flag} {path}: must be a file in an existing directory"
    for run_dir in run_dirs:
        if name := run_file(run_dir, path):
            return f"{flag} {path} is the run's own {name}; choose another file{default}"
    return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (same directory and suffix) to write to; when the block ends
    without error it is fsynced and renamed over `path`, else removed. So `path` is always either the
    old file or the whole new one, never truncated, whatever fails (a full disk, a kill)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with naming(path, tmp):
            yield tmp
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def naming(path: Path, *aliases: Path) -> Iterator[None]:
    """Re-raise an OSError that names no file (a full disk on write or flush) or one of `aliases` (a
    temporary name) as the same error naming `path`, so that its one-line message says which file."""
    try:
        yield
    except OSError as e:
        if e.errno is not None and (e.filename is None or Path(e.filename) in aliases):
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """`open(path, mode)` whose content replaces `path` only once complete (see `atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text`, atomically."""
    with atomic_open(path) as f:
        f.write(text)


def append_line(path: Path, line: str) -> None:
    """Append `line` and a newline in one write (O_APPEND), flushed to disk. A write cut short (a full
    disk) leaves at most a torn last line, which `read_jsonl` drops."""
    with naming(path), open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL file. A torn last line (a process killed, or a disk full, mid-append: no
    newline at its end) is dropped; any other undecodable line raises ValueError naming it."""
    text = Path(path).read_text()
    lines = text.split("\n")
    if lines and lines[-1].strip():  # no newline after the last line: possibly torn
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines = lines[:-1]
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: not JSON ({e.msg})") from None
    return records
