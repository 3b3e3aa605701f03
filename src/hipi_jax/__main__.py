import sys

from hipi_jax.cli import main

sys.exit(main())
