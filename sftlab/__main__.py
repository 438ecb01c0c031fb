"""`python -m sftlab ...` entry point. The guard matters: vLLM starts its engine in a spawned process."""

import sys

from sftlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
