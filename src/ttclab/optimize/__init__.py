"""ttclab.optimize: compute-optimal choices over ledger curves.

- ``curves``: :class:`Curves`, flat (model, strategy, k, accuracy, cost) points from ledgers;
- ``pareto``: Pareto frontier of accuracy vs cost;
- ``optimal``: compute-optimal choice per budget, cost to reach an accuracy, efficiency ratio;
- ``difficulty``: difficulty bins (oracle or held-out) and the per-bin optimal policy;
- ``saturation``: saturating-curve fits and the budget beyond which doubling compute stops paying.
"""

import sys

from ttclab import VerbModule

# ``ttclab.optimize(ev)`` is the optimize verb (a higher layer: named here, imported on first call)
__verb__ = "ttclab.analysis.optimize:optimize"
sys.modules[__name__].__class__ = VerbModule
