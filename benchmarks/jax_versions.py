"""The same code under several JAX versions, alternating in one go: env steps/s of every env
(`env_steps.py`), whole-run training throughput of a few envs (`hipi-train`'s summary.json), and a
deadlock trial (the case that hung jaxlib 0.10.2's CPU runtime: the desk rolled out 5 seeds x 200
episodes in one batch, i.e. MJX's batched Cholesky over 1,000 systems), each in a fresh process.

    make jax-versions                                   # .venv-jax/V for each V in JAX_VERSIONS, then this
    python benchmarks/jax_versions.py --python 0.9.2=.venv-jax/0.9.2/bin/python \\
        --python 0.10.2=.venv-jax/0.10.2/bin/python --parts env_steps,train,deadlock

Every part alternates the versions (A B, then B A, ...), so drift in the machine hits them alike.
Parts can run in separate calls into one --out: a part already there (same versions) keeps its rows and
gains the new call's as further rounds (or trials), and the record lists every command. Pass the
--python flags in the other order for a call that should start with the other version. A deadlock
trial that makes no progress for `--hang-after` seconds is stopped by the stall guard (exit 75) and
counted as hung, with the CPU seconds it used. Writes JSON to --out and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN_ENVS = "nav2d,reacher_goal,quadruped_goal"


def fail(message: str) -> None:
    print(f"jax_versions: error: {message}", file=sys.stderr)
    sys.exit(2)


def versions_of(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        label, _, python = pair.partition("=")
        if not python or not Path(python).exists():
            fail(f"--python {pair!r} must be LABEL=PATH to an existing interpreter")
        out[label] = python
    return out


def orders(labels: list[str], rounds: int):
    """Round r runs the versions in order, reversed on odd rounds."""
    for r in range(rounds):
        yield r, labels if r % 2 == 0 else labels[::-1]


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], timeout: float) -> tuple[int, float, float, str]:
    """(exit code, wall s, child CPU s, stderr tail) of one subprocess."""
    cpu, t0 = child_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, time.perf_counter() - t0, child_cpu_s() - cpu, proc.stderr[-2000:]


def jax_version(python: str) -> str:
    return subprocess.run([python, "-c", "import jax, jaxlib; print(jax.__version__, jaxlib.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def env_steps(versions: dict, args, tmp: Path) -> Iterator[dict]:
    """`env_steps.py` per version and round; an env that hangs (exit 75) is recorded as hung and the
    version goes on from the next env in a fresh process."""
    from hipi_jax import envs

    names = args.envs.split(",") if args.envs else envs.names()
    for r, labels in orders(list(versions), args.rounds):
        for label in labels:
            left, t0 = list(names), time.perf_counter()
            while left:
                out = tmp / f"env_steps_{label}_{r}_{len(left)}.json"
                cmd = [versions[label], "benchmarks/env_steps.py", "--num-envs", str(args.num_envs), "--envs",
                       ",".join(left), "--hang-after", str(args.hang_after), "--out", str(out)]  # fmt: skip
                code, _, _, err = run(cmd, 7200)
                done = json.loads(out.read_text())["rows"] if out.exists() else []
                keep = ("env", "env_steps_per_s", "first_call_s")
                yield from ({"version": label, "round": r, **{k: row[k] for k in keep}} for row in done)
                left = left[len(done) :]
                if code == 75:  # the next env hung: count it, go on without it
                    yield {"version": label, "round": r, "env": left[0], "hung": True}
                    print(f"env_steps {label} round {r}: {left[0]} HUNG ({err.strip().splitlines()[-1]})", flush=True)
                    left = left[1:]
                elif code:
                    sys.exit(f"jax_versions: env_steps.py under {label} failed:\n{err}")
            print(f"env_steps {label} round {r}: {time.perf_counter() - t0:.0f} s", flush=True)


def train(versions: dict, args, tmp: Path) -> Iterator[dict]:
    for env in args.train_envs.split(","):
        for r, labels in orders(list(versions), args.rounds):
            for label in labels:
                out = tmp / f"train_{env}_{label}_{r}"
                cmd = [versions[label], "-m", "hipi_jax", "--env", env, "--seeds", "1", "--env-steps",
                       str(args.train_steps), "--eval-every", str(args.train_steps // 4), "--ckpt-every", "0",
                       "--no-progress", "--overwrite", "--out", str(out)]  # fmt: skip
                code, wall, _, err = run(cmd, 7200)
                if code:
                    sys.exit(f"jax_versions: hipi-train {env} under {label} failed:\n{err}")
                s = json.loads((out / "summary.json").read_text())
                print(f"train {env} {label} round {r}: {s['env_steps_per_s']:,.0f} env steps/s", flush=True)
                yield {"version": label, "round": r, "env": env, "env_steps_per_s": s["env_steps_per_s"],
                       "compile_s": s["compile_s"], "train_s": s["train_s"], "wall_s": wall}  # fmt: skip


DEADLOCK_CHILD = """
import sys, time, jax, jax.numpy as jnp
from hipi_jax import envs, stall
from hipi_jax.episodes import rollout
env = envs.make("desk")
seeds, episodes, hang_after = 5, 200, float(sys.argv[1])
def one(key):  # uniform random actions: the physics, not the policy, is what hung
    act = lambda k, obs, task: jax.random.uniform(k, (obs.shape[0], env.action_dim), minval=-1.0, maxval=1.0)
    return rollout(env, act, key, episodes).returns.mean()
program = jax.jit(jax.vmap(one), compiler_options=env.compiler_options())
keys = jax.random.split(jax.random.key(int(sys.argv[2])), seeds)
compiled = program.lower(keys).compile()
t0 = time.perf_counter()
with stall.StallGuard(lambda waited: f"hung: no result after {waited:.0f} s", timeout=hang_after):
    jax.block_until_ready(compiled(keys))
print(f"finished in {time.perf_counter() - t0:.1f} s")
"""


def deadlock(versions: dict, args, tmp: Path) -> Iterator[dict]:
    for r, labels in orders(list(versions), args.trials):
        for label in labels:
            code, wall, cpu, err = run([versions[label], "-c", DEADLOCK_CHILD, str(args.hang_after), str(r)], 7200)
            if code not in (0, 75):
                sys.exit(f"jax_versions: the deadlock trial under {label} failed:\n{err}")
            print(f"deadlock trial {r} {label}: {'HUNG' if code == 75 else 'finished'} ({wall:.0f} s, {cpu:.0f} CPU s)",
                  flush=True)  # fmt: skip
            yield {"version": label, "trial": r, "hung": code == 75, "wall_s": wall, "cpu_s": cpu}


def medians(rows: list[dict], labels: list[str]) -> dict[str, dict[str, float]]:
    """{env: {version: median env steps/s over the rounds it finished}}: NaN where it never finished."""

    def median(env: str, v: str) -> float:
        done = [r["env_steps_per_s"] for r in rows if r["env"] == env and r["version"] == v and not r.get("hung")]
        return float(np.median(done)) if done else float("nan")

    return {env: {v: median(env, v) for v in labels} for env in dict.fromkeys(r["env"] for r in rows)}


def ratio_table(rows: list[dict], first: str, labels: list[str]) -> list[str]:
    """Markdown: per env the median env steps/s of each version (and how often it hung), and the first
    over the last."""
    a, b = labels[0], labels[-1]
    lines = [f"| {first} | {' | '.join(labels)} | {a} / {b} |", "|---|" + "---:|" * (len(labels) + 1)]
    for env, med in medians(rows, labels).items():
        cells = []
        for v in labels:
            hung = sum(1 for r in rows if r["env"] == env and r["version"] == v and r.get("hung"))
            cells.append(("—" if np.isnan(med[v]) else f"{med[v]:,.0f}") + (f" (hung {hung}×)" if hung else ""))
        ratio = "—" if np.isnan(med[a] / med[b]) else f"{med[a] / med[b]:.2f}×"
        lines.append(f"| `{env}` | {' | '.join(cells)} | {ratio} |")
    return lines + [""]


def tables(record: dict) -> str:
    labels = list(record["versions"])
    lines = []
    if rows := record.get("env_steps"):
        lines += ratio_table(rows, f"env steps/s, {record['args']['env_steps']['num_envs']} envs", labels)
    if rows := record.get("train"):
        lines += ratio_table(rows, "hipi-train env steps/s", labels)
    if rows := record.get("deadlock"):
        lines += ["| deadlock trial (desk, 5 x 200 episodes in one batch) | hung / trials |", "|---|---:|"]
        for v in labels:
            mine = [r for r in rows if r["version"] == v]
            lines.append(f"| {v} | {sum(r['hung'] for r in mine)} / {len(mine)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", action="append", required=True, help="LABEL=PATH of a venv's python (repeatable)")
    p.add_argument("--parts", default="env_steps,train,deadlock", help="comma-separated: env_steps, train, deadlock")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of env_steps and train")
    p.add_argument("--envs", default="", help="env_steps.py --envs (default: every env)")
    p.add_argument("--num-envs", type=int, default=64, help="env_steps.py --num-envs")
    p.add_argument("--train-envs", default=TRAIN_ENVS, help="envs of the training part")
    p.add_argument("--train-steps", type=int, default=20_000, help="hipi-train --env-steps of the training part")
    p.add_argument("--trials", type=int, default=5, help="deadlock trials per version")
    p.add_argument(
        "--hang-after", type=float, default=600.0, help="seconds without a result (a trial, one env) that count as hung"
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/jax_versions.json")
    args = p.parse_args(argv)
    versions = versions_of(args.python)
    parts = {"env_steps": env_steps, "train": train, "deadlock": deadlock}
    if bad := [part for part in args.parts.split(",") if part not in parts]:
        fail(f"--parts {','.join(bad)!r}: each one of {', '.join(parts)}")
    record = {"versions": {v: jax_version(py) for v, py in versions.items()}, "commands": [], "args": {}}
    if args.out.exists():  # the parts run earlier into the same file (same versions) are kept: run in pieces
        earlier = json.loads(args.out.read_text())
        if earlier.get("versions") == record["versions"]:
            record = {**earlier, "commands": earlier.get("commands", [earlier.get("command")]), "args": {
                part: earlier["args"].get(part, earlier["args"]) for part in parts if part in earlier}}  # fmt: skip
            record.pop("command", None)  # a record of one call names its command so
    record["machine"] = f"cpu ({os.cpu_count()} cores), {platform.platform()}"
    record["commands"].append(" ".join(["python"] + sys.argv))
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts.split(","):
            rows, count = record.setdefault(part, []), "trial" if part == "deadlock" else "round"
            offset = 1 + max((r[count] for r in rows), default=-1)  # a part run again adds rounds (trials)
            record["args"][part] = {k: str(v) for k, v in vars(args).items()}
            for row in parts[part](versions, args, Path(tmp)):
                rows.append({**row, count: row[count] + offset})
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(record, indent=1))  # each row kept as it comes
    print(tables(record))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
