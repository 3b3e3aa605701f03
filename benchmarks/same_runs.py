"""Does a change of the host side leave runs bitwise the same? Digest three fixed-seed runs, compare.

    python benchmarks/same_runs.py --out /tmp/before            # on the commit before the change
    python benchmarks/same_runs.py --out /tmp/after --against /tmp/before/digests.json

Runs, through the installed CLIs as a user would: `hipi-train` on nav2d and on reacher_goal (2 seeds,
small budgets, a checkpoint every chunk) and `hipi-bc collect` + `hipi-bc train` on point_goal. The
digest of a run is the SHA-256 of its metrics.jsonl with the wall times dropped (`VARYING`) and of every
array of its policies (hipi-train: policies/; hipi-bc: its results.json without timings and the
methods' policies), configs flattened to one layout (`flat`). `--against` exits 1 naming every
digest that differs. Bitwise equality holds on
one machine and JAX version (XLA's CPU code is deterministic there), not across them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

# wall-clock figures, and hipi-bc's dataset path (it names the --out of this script)
VARYING = {"wall_s", "compile_s", "train_s", "env_steps_per_s", "updates_per_s", "seconds", "wall_seconds", "data"}
TRAIN = {
    "nav2d": "--env nav2d --env-steps 6000 --eval-every 2000 --seeds 2".split(),
    "reacher_goal": (
        "--env reacher_goal --env-steps 3000 --eval-every 1000 --seeds 2 --warmup-steps 1000 --hidden 32,32".split()
    ),
}


def drop_varying(x):
    """`x` (parsed JSON) without the keys of `VARYING`, at any depth, its configs in one layout (`flat`)."""
    if isinstance(x, dict):
        return {k: drop_varying(v) for k, v in flat(x).items() if k not in VARYING}
    if isinstance(x, list):
        return [drop_varying(v) for v in x]
    return x


def flat(x: dict) -> dict:
    """0.3's config layouts as 0.2's flat objects of options, so that a layout change alone is no
    difference: a TrainConfig's parts (`"version"`, `hipi_jax.config.flat_options`) and a BCConfig's
    `learner` merged into it. Commits before 0.3 wrote the flat layout."""
    if "version" in x and "run" in x:
        from hipi_jax.config import flat_options

        return flat_options(x)
    if isinstance(x.get("learner"), dict) and "method" in x:
        return {**{k: v for k, v in x.items() if k != "learner"}, **x["learner"]}
    return x


def digest_json_lines(path: Path) -> str:
    lines = [json.dumps(drop_varying(json.loads(line)), sort_keys=True) for line in path.read_text().splitlines()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def digest_arrays(root: Path) -> dict[str, str]:
    """SHA-256 by relative path of every .npz (its arrays), .json and .jsonl (`VARYING` dropped)
    file under `root`."""
    out = {}
    for f in sorted(root.rglob("*")):
        rel = str(f.relative_to(root))
        if f.suffix == ".npz":
            with np.load(f) as z:
                h = hashlib.sha256()
                for k in sorted(z.files):
                    h.update(k.encode() + np.ascontiguousarray(z[k]).tobytes())
                out[rel] = h.hexdigest()
        elif f.suffix == ".jsonl":
            out[rel] = digest_json_lines(f)
        elif f.suffix == ".json":
            text = json.dumps(drop_varying(json.loads(f.read_text())), sort_keys=True)
            out[rel] = hashlib.sha256(text.encode()).hexdigest()
    return out


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for the runs and digests.json")
    p.add_argument("--against", type=Path, help="digests.json of the same runs before the change")
    args = p.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    digests = {}
    for env, flags in TRAIN.items():
        out = args.out / env
        run([str(bin_dir / "hipi-train"), *flags, "--out", str(out), "--overwrite", "--no-progress"])
        digests[f"{env}/metrics.jsonl"] = digest_json_lines(out / "metrics.jsonl")
        digests.update({f"{env}/policies/{k}": v for k, v in digest_arrays(out / "policies").items()})
    bc = args.out / "bc_point_goal"
    hipi_bc = str(bin_dir / "hipi-bc")
    run([hipi_bc, "collect", "--env", "point_goal", "--out", str(bc / "demos.npz"), "--episodes", "40",
         "--expert-steps", "8000", "--overwrite", "--no-progress"])  # fmt: skip
    run([hipi_bc, "train", "--data", str(bc / "demos.npz"), "--out", str(bc / "train"), "--seeds", "2",
         "--max-epochs", "3", "--eval-episodes", "10", "--overwrite"])  # fmt: skip
    digests.update({f"bc_point_goal/{k}": v for k, v in digest_arrays(bc).items()})
    (args.out / "digests.json").write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out / 'digests.json'} ({len(digests)} digests)")
    if args.against is None:
        return 0
    before = json.loads(args.against.read_text())
    differ = sorted(k for k in before.keys() | digests.keys() if before.get(k) != digests.get(k))
    for k in differ:
        print(f"differs: {k} (before {before.get(k, 'missing')[:12]}, after {digests.get(k, 'missing')[:12]})")
    print("bitwise the same" if not differ else f"{len(differ)} of {len(digests)} digests differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
