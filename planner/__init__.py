"""Tax-aware trade planner for portfolio rebalancing.

The flow, one package or module per step: :mod:`planner.io` (books in, plan files out) ->
:mod:`planner.triggers` -> :mod:`planner.program` (the convex program of one account) ->
:mod:`planner.solvers` -> :mod:`planner.search` (the non-convex rules) ->
:mod:`planner.rounding` -> :mod:`planner.orders`; :mod:`planner.run` drives a batch and
:mod:`planner.cli` is the ``rebalance`` command. Tax maths is in :mod:`planner.tax`.
"""

__version__ = "0.1.0"
