"""Imported by a worker started with `--import tests.slow_units`: each unit of work takes
a while longer, so a test can kill the worker in the middle of a job."""

import time

from guideapp.jobs import UNIT_HOOKS

UNIT_HOOKS.append(lambda ctx: time.sleep(0.4))
