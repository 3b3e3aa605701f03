#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one script, sized for 8 minutes on one NVIDIA GPU from a fresh clone (never run on one yet):
#   (a) walker_linear, inverse RL, batch 256, (256, 256) networks, at 256, 1024 and 2048 envs: `hipi-train`
#       for a fixed budget (2 compiled chunks after the warm-up); env steps/s, updates/s, compile time
#   (b) vs_brax at 256 envs and batch 256 (needs Brax's peer venv with a CUDA jax, `make peers`; recorded
#       as skipped when it is missing)
#   (c) relabel_overhead at B = 256 and 1024, (256, 256) networks
# then merges the JSON of each part into one file.
#
#   benchmarks/gpu_check.sh                  # installs the `cuda` extra into .venv first (pip must reach PyPI)
#   benchmarks/gpu_check.sh --no-install     # uses `python` as it is (e.g. an image that has jax with CUDA)
#   benchmarks/gpu_check.sh --cpu-dry-run    # every step at CPU sizes, to test the script (~20 min on 2 busy cores)
#   benchmarks/gpu_check.sh --out FILE       # default: benchmarks/results/gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."

install=1 dry=0 out=benchmarks/results/gpu_check.json
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) install=0 ;;
    --cpu-dry-run) dry=1 install=0 ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0" | cut -c3-; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1'; allowed: --no-install, --cpu-dry-run, --out FILE" >&2; exit 2 ;;
  esac
  shift
done

if [ "$install" = 1 ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -e ".[cuda]"
fi
[ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$dry" = 1 ]; then  # CPU sizes: the same steps, small
  envs="8 16" batch=32 hidden=32,32 steps_per_env=64 relabel_b=32 brax_envs=16 brax_batch=32 brax_epoch=2048
else
  "$PY" -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" \
    || { echo "gpu_check.sh: jax sees no GPU ($("$PY" -c 'import jax; print(jax.devices())')); use --cpu-dry-run" >&2; exit 2; }
  envs="256 1024 2048" batch=256 hidden=256,256 steps_per_env=200 relabel_b="256,1024" brax_envs=256 brax_batch=256
  brax_epoch=102400
fi

# (a) walker_linear with inverse RL: warm-up + 2 chunks of steps_per_env vector steps each
for n in $envs; do
  chunk=$((n * steps_per_env))
  "$PY" -m hipi_jax.cli --env walker_linear --relabel inverse_rl --num-envs "$n" --batch-size "$batch" \
    --hidden "$hidden" --warmup-steps "$((n * 10))" --env-steps "$((n * 10 + 2 * chunk))" --eval-every "$chunk" \
    --eval-episodes 1 --updates-per-env-step "$(python3 -c "print(1 / $n)")" --out "$work/walker_$n" --no-progress
done

# (b) vs_brax at GPU sizes (Brax's SAC trainer needs jax < 0.8 in its own venv)
if [ -x .venv-peers/brax/bin/python ]; then
  "$PY" benchmarks/vs_brax.py --repeats 1 --epochs 1 --num-envs "$brax_envs" --batch-size "$brax_batch" \
    --epoch-steps "$brax_epoch" --out "$work/vs_brax.json"
else
  echo '{"skipped": "no .venv-peers/brax (make peers)"}' > "$work/vs_brax.json"
fi

# (c) relabeling overhead at large B
"$PY" benchmarks/relabel_overhead.py --batch-sizes "$relabel_b" --hidden "$hidden" --candidates 32 --repeats 2 \
  --seconds 0.5 --out "$work/relabel_overhead.json"

"$PY" - "$work" "$out" "$dry" <<'EOF'
import json, sys
from pathlib import Path

work, out, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
walker = []
for d in sorted(work.glob("walker_*"), key=lambda d: int(d.name.split("_")[1])):
    s = json.loads((d / "summary.json").read_text())
    walker.append({"num_envs": int(d.name.split("_")[1])} | {k: s[k] for k in ("env_steps_per_s", "updates_per_s", "compile_s")})
result = {
    "cpu_dry_run": dry,
    "walker_linear_inverse_rl": walker,
    "vs_brax": json.loads((work / "vs_brax.json").read_text()),
    "relabel_overhead": json.loads((work / "relabel_overhead.json").read_text()),
}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result, indent=1))
print(f"wrote {out}")
EOF
