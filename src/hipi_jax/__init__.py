"""hipi-jax: hindsight relabeling as inverse RL (HIPI), compiled end to end in JAX.

The Python API (docs/architecture.md "Python API"):

    import jax
    from hipi_jax import TrainConfig, train, load_policy, envs, rollout
    train(TrainConfig.preset("nav2d", env_steps=30_000), out="runs/nav2d")
    policy = load_policy("runs/nav2d")
    episodes = rollout(envs.make(policy.env), policy.act_fn(), jax.random.PRNGKey(0), n=10)
"""

__version__ = "0.3.0"

from hipi_jax import envs  # noqa: E402
from hipi_jax.config import TrainConfig  # noqa: E402
from hipi_jax.episodes import Episodes, rollout  # noqa: E402
from hipi_jax.policy import Policy, load_policy  # noqa: E402
from hipi_jax.runner import train  # noqa: E402

__all__ = ["Episodes", "Policy", "TrainConfig", "__version__", "envs", "load_policy", "rollout", "train"]
