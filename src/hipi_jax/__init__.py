"""hipi-jax: hindsight relabeling as inverse RL (HIPI), compiled end to end in JAX."""

__version__ = "0.1.0"
