"""``python -m colorbench.study RUN``: the same as ``colorbench study RUN``."""

import argparse
import sys

from colorbench.study import add_arguments, run_study

parser = argparse.ArgumentParser(prog="python -m colorbench.study", description=__doc__)
add_arguments(parser)
sys.exit(run_study(parser.parse_args()))
