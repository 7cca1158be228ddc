"""Moved to :mod:`ttclab.extract` (a neutral module, so ``tasks`` need not import ``verify``); kept as an alias."""

from ttclab.extract import *  # noqa: F403
from ttclab.extract import __all__  # noqa: F401
