"""Constraints of the rebalance program: one small class each, with a readable label."""
