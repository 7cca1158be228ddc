"""Pipeline steps: the primitives (generate, extend, inject, copy, critique, revise, score, select,
fuse, repeat) and the compositions built on them (beam_search, dvts, budget_force, deepconf)."""
