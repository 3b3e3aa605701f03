"""How cost grows with work: whole `hipi-train` runs (compilation and evaluation included) for a
range of env-step budgets and of replay capacities, each in a fresh process so that its peak memory
(max RSS) is its own. Reports wall time, compile time, compiled-chunk env steps/s and peak memory.

    python benchmarks/scaling.py                 # nav2d, none: 1e4..1e6 env steps; capacity 1e4..1e6
    python benchmarks/scaling.py --quick         # CI-size
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hipi_jax import report

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import resource, sys
from hipi_jax import cli
rc = cli.main(sys.argv[1:])
print("MAXRSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(rc)
"""


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="nav2d", help="registry name of the environment")
    p.add_argument("--relabel", default="none", help="relabel strategy")
    p.add_argument("--env-steps", default="10000,100000,1000000", help="budgets (buffer 1e6)")
    p.add_argument("--capacities", default="10000,100000,1000000", help="replay capacities (budget 1e5 steps)")
    p.add_argument("--quick", action="store_true", help="CI-size: budgets 1e4, 3e4; capacities 1e4, 1e5")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scaling.json", help="JSON output")
    args = p.parse_args(argv)
    if args.quick:
        args.env_steps, args.capacities = "10000,30000", "10000,100000"
    return args


def run(args, env_steps: int, buffer_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["--env", args.env, "--relabel", args.relabel, "--env-steps", str(env_steps), "--buffer-size",
                 str(buffer_size), "--eval-every", str(max(5_000, env_steps // 10)), "--out", f"{tmp}/run",
                 "--no-progress", "--ckpt-every", "0"]  # fmt: skip
        out = subprocess.run([sys.executable, "-c", CHILD, *flags], capture_output=True, text=True, timeout=3600)
        if out.returncode:
            sys.exit(f"scaling: the run failed:\n{out.stderr[-3000:]}")
        summary = json.loads(Path(f"{tmp}/run/summary.json").read_text())
    rss = int(out.stdout.split("MAXRSS_KIB")[-1].split()[0])
    row = {"env_steps": env_steps, "buffer_size": buffer_size, "peak_rss_mib": rss / 1024}
    row.update({k: summary[k] for k in ("wall_s", "compile_s", "train_s", "env_steps_per_s")})
    print(f"env steps {env_steps:>9,}  buffer {buffer_size:>9,}: wall {row['wall_s']:.1f} s, compile "
          f"{row['compile_s']:.1f} s, {row['env_steps_per_s']:,.0f} env steps/s, peak {row['peak_rss_mib']:,.0f} MiB",
          flush=True)  # fmt: skip
    return row


def main(argv=None) -> int:
    args = parse(argv)
    rows = [dict(run(args, int(n), 1_000_000), sweep="env_steps") for n in args.env_steps.split(",")]
    rows += [dict(run(args, 100_000, int(c)), sweep="buffer_size") for c in args.capacities.split(",")]
    report.write_benchmark(args.out, vars(args), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
