"""SBX (Stable Baselines JAX) SAC on a Gymnasium MuJoCo env: the Python-loop way (one env, one update
per env step, Python between steps), timed after its first update compiled. Runs in its own venv
(`make peers`) and prints one JSON line; `benchmarks/vs_python_loop.py` starts it as a subprocess."""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Reacher-v5", help="Gymnasium env id")
    p.add_argument("--steps", type=int, default=3_000, help="timed env steps (one update each)")
    p.add_argument("--learning-starts", type=int, default=1_000, help="random steps before updates")
    p.add_argument("--batch-size", type=int, default=32, help="SGD batch size")
    p.add_argument("--hidden", default="64,64", help="hidden widths of actor and critics")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = p.parse_args()

    import gymnasium as gym
    import jax
    import sbx
    from sbx import SAC

    hidden = [int(w) for w in args.hidden.split(",")]
    model = SAC("MlpPolicy", gym.make(args.env), batch_size=args.batch_size, learning_starts=args.learning_starts,
                train_freq=1, gradient_steps=1, buffer_size=100_000, policy_kwargs={"net_arch": hidden},
                seed=args.seed, verbose=0)  # fmt: skip
    t0 = time.perf_counter()
    model.learn(args.learning_starts + 100)  # random prefill, then 100 updates: compiles
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    sec = time.perf_counter() - t0
    print(json.dumps({"peer": f"sbx {sbx.__version__} SAC", "jax": jax.__version__, "env": args.env,
                      "env_steps_per_s": args.steps / sec, "updates_per_s": args.steps / sec,
                      "warmup_and_compile_s": warm_s}))  # fmt: skip


if __name__ == "__main__":
    main()
