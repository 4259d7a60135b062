"""The command line's lists for ``rebalance whatif``: sweeps, numbers, rate pairs."""

from __future__ import annotations

from collections.abc import Callable

from planner.errors import ConfigError


def sweep_names(text: str) -> tuple[str, ...]:
    """``te_value,wait`` as a tuple of sweep names (``te``/``tax``/``budget`` accepted)."""
    aliases = {"te": "te_value", "tax": "tax_rate", "budget": "gain_budget", "rates": "tax_rate"}
    names = tuple(aliases.get(p.strip(), p.strip()) for p in text.split(",") if p.strip())
    return names


def numbers(text: str, what: str, cast: Callable = float) -> tuple:
    """A comma list of numbers, e.g. ``0,7,30``; ConfigError naming ``what`` if not."""
    out = []
    for part in text.split(","):
        part = part.strip().replace("_", "")
        if not part:
            continue
        try:
            out.append(cast(part))
        except ValueError:
            raise ConfigError(f"{what}: {part!r} is not a number") from None
    if not out:
        raise ConfigError(f"{what}: no values given")
    return tuple(out)


def bracket_pairs(text: str) -> tuple[tuple[float, float], ...]:
    """``0.24:0.15,0.37:0.20`` (ordinary:long-term) as rate pairs."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        st, sep, lt = part.partition(":")
        if not sep:
            raise ConfigError(f"--brackets: {part!r}: expected ORDINARY:LONGTERM, e.g. 0.37:0.20")
        out.append(numbers(f"{st},{lt}", "--brackets"))
    if not out:
        raise ConfigError("--brackets: no values given")
    return tuple(out)
