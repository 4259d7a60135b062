"""The ``[blotter]`` table of ``book.toml`` (:class:`planner.domain.BlotterSettings`): read
with every problem reported at its key's line, and written back (keys that differ from
their defaults)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields

from planner.domain import BlotterSettings
from planner.io.cells import Issues

ORDER_TYPES = ("market", "limit")
TIMES_IN_FORCE = ("day", "gtc", "opg", "ioc")
_DOLLARS = ("flag_tax_amount", "flag_dust_value", "second_approval_tax", "second_approval_value")
_FRACTIONS = {
    "limit_tolerance": 0.5,
    "flag_tax_fraction": 1.0,
    "flag_turnover": 2.0,  # buys plus sells can reach twice the account's value
    "flag_cash_above_target": 1.0,
}
_SWITCHES = ("flag_short_term_gain", "maker_checker")
BLOTTER_KEYS = tuple(f.name for f in fields(BlotterSettings))


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _expected(key: str, value) -> str | None:
    """What ``key`` expects when ``value`` is not it, else ``None``."""
    if key == "order_type" and value not in ORDER_TYPES:
        return "market or limit"
    if key == "time_in_force" and value not in TIMES_IN_FORCE:
        return " or ".join(TIMES_IN_FORCE)
    if key in _DOLLARS and not (_number(value) and 0 <= value <= 1e12):
        return "a number of dollars from 0 to 1e12"
    if key in _FRACTIONS and not (_number(value) and 0 <= value <= _FRACTIONS[key]):
        return f"a fraction from 0 to {_FRACTIONS[key]:g}"
    if key in _SWITCHES and not isinstance(value, bool):
        return "true or false"
    if key == "flag_price_age_days" and not (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3650
    ):
        return "a whole number of days from 0 to 3650"
    if key == "dividend_reinvest" and not (
        isinstance(value, list) and all(isinstance(s, str) and s.strip() for s in value)
    ):
        return 'a list of symbols (["*"] for all)'
    return None


def read_blotter_table(
    table, issues: Issues, line_of: Callable[[str], int | None]
) -> BlotterSettings:
    """The ``[blotter]`` table as settings; problems go to ``issues`` (file ``book.toml``,
    the key's line from ``line_of``) and their keys keep the defaults."""
    if not isinstance(table, dict):
        issues.add("book.toml", line_of(""), "blotter", f"expected a table, got {table!r}")
        return BlotterSettings()
    values = {}
    for key, value in table.items():
        if key not in BLOTTER_KEYS:
            issues.add(
                "book.toml",
                line_of(key),
                f"blotter.{key}",
                f"unknown setting (expected one of {', '.join(BLOTTER_KEYS)})",
            )
            continue
        expected = _expected(key, value)
        if expected is not None:
            issues.add(
                "book.toml", line_of(key), f"blotter.{key}", f"expected {expected}, got {value!r}"
            )
            continue
        values[key] = tuple(value) if key == "dividend_reinvest" else value
    return BlotterSettings(**values)


def blotter_toml(settings: BlotterSettings) -> str:
    """The ``[blotter]`` table's text for the settings that differ from the defaults (empty
    when none do)."""
    default = BlotterSettings()
    lines = []
    for f in fields(BlotterSettings):
        value = getattr(settings, f.name)
        if value == getattr(default, f.name):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = f'"{value}"'
        elif isinstance(value, tuple):
            text = "[" + ", ".join(f'"{s}"' for s in value) + "]"
        else:
            text = repr(value)
        lines.append(f"{f.name} = {text}")
    return "\n".join(["[blotter]", *lines]) + "\n" if lines else ""
