"""Solvers of the compiled program."""
