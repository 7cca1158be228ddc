"""ttclab.optimize: compute-optimal choices over ledger curves.

- ``curves``: :class:`Curves`, flat (model, strategy, k, accuracy, cost) points from ledgers;
- ``pareto``: Pareto frontier of accuracy vs cost;
- ``optimal``: compute-optimal choice per budget, cost to reach an accuracy, efficiency ratio;
- ``difficulty``: difficulty bins (oracle or held-out) and the per-bin optimal policy;
- ``saturation``: saturating-curve fits and the budget beyond which doubling compute stops paying.
"""
