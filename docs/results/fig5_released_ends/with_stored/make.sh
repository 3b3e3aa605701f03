#!/usr/bin/env bash
# The released-ends comparison as one family: each strategy stored (configs runs, 56018b3; inverse_rl_released from
# the 7d8e445 record) beside the same strategy with --episode-ends released (65b445b), replotted together.
set -e
OUT=/work/expruns/cfg_ends; rm -rf $OUT; mkdir -p $OUT/nav2d
for s in future_released final_released inverse_rl_released_tasks; do
  cp -r /work/expruns/fig5_released_configs/nav2d/$s $OUT/nav2d/$s
done
for d in /work/expruns/fig5_released_ends/nav2d/*; do
  s=$(basename $d); [ -f $d/utd1/summary.json ] && cp -r $d $OUT/nav2d/$s+ends
done
python3 - <<'PY'
import json
r = json.load(open('/work/main/docs/results/fig5_random_released/results.json'))
entry = r['results']['nav2d']['inverse_rl_released']
json.dump({'commands': r['commands'], 'results': {'nav2d': {'inverse_rl_released': {'by_utd': entry['by_utd']}}}},
          open('/work/expruns/cfg_ends/results.json', 'w'))
PY
cd /work/exp3 && TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python experiments/fig5_goal_reaching.py --envs nav2d --replot --out $OUT | tail -1
