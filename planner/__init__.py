"""Tax-aware trade planner for portfolio rebalancing."""

__version__ = "0.1.0"
