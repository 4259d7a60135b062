"""Restrictions on what may be bought or sold."""

from __future__ import annotations

import numpy as np

from constraints.base import AccountInputs, Constraint, cap_buys, cap_sells


def _names(inputs: AccountInputs, mask: np.ndarray) -> str:
    return ", ".join(s for s, m in zip(inputs.symbols, mask, strict=True) if m) or "none"


class Restricted(Constraint):
    """Firm-wide restrictions from securities.csv: no_buy, no_sell, no_trade."""

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        cap_buys(values, inputs.restricted_buy)
        cap_sells(values, inputs.restricted_sell[inputs.lot_security])

    def active(self, inputs: AccountInputs) -> bool:
        return bool(inputs.restricted_buy.any() or inputs.restricted_sell.any())

    def describe(self, inputs: AccountInputs) -> str:
        return (
            f"restricted securities: no buy {_names(inputs, inputs.restricted_buy)}; "
            f"no sell {_names(inputs, inputs.restricted_sell)}"
        )

    def __repr__(self) -> str:
        return "Restricted(firm-wide no_buy/no_sell/no_trade)"


class DoNotBuy(Constraint):
    """The account's do-not-buy list."""

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        cap_buys(values, inputs.do_not_buy)

    def active(self, inputs: AccountInputs) -> bool:
        return bool(inputs.do_not_buy.any())

    def describe(self, inputs: AccountInputs) -> str:
        return f"do-not-buy: {_names(inputs, inputs.do_not_buy)}"

    def __repr__(self) -> str:
        return "DoNotBuy(account list)"


class DoNotSell(Constraint):
    """The account's do-not-sell list."""

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        cap_sells(values, inputs.do_not_sell[inputs.lot_security])

    def active(self, inputs: AccountInputs) -> bool:
        return bool(inputs.do_not_sell.any())

    def describe(self, inputs: AccountInputs) -> str:
        return f"do-not-sell: {_names(inputs, inputs.do_not_sell)}"

    def __repr__(self) -> str:
        return "DoNotSell(account list)"


class DoNotTrade(Constraint):
    """The account's do-not-trade list: neither buys nor sales of these securities."""

    @staticmethod
    def _mask(inputs: AccountInputs) -> np.ndarray:
        if inputs.do_not_trade is None:
            return np.zeros(len(inputs.symbols), dtype=bool)
        return np.asarray(inputs.do_not_trade, dtype=bool)

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        mask = self._mask(inputs)
        cap_buys(values, mask)
        cap_sells(values, mask[inputs.lot_security])

    def active(self, inputs: AccountInputs) -> bool:
        return bool(self._mask(inputs).any())

    def describe(self, inputs: AccountInputs) -> str:
        return f"do-not-trade: {_names(inputs, self._mask(inputs))}"

    def __repr__(self) -> str:
        return "DoNotTrade(account list)"


class LegacyHoldings(Constraint):
    """Securities outside the model have target 0: they may be sold, never bought."""

    def apply(self, inputs: AccountInputs, values: dict[str, np.ndarray]) -> None:
        cap_buys(values, ~inputs.in_model)

    def active(self, inputs: AccountInputs) -> bool:
        return bool((~inputs.in_model & (inputs.hold_weight > 0)).any())

    def describe(self, inputs: AccountInputs) -> str:
        held = ~inputs.in_model & (inputs.hold_weight > 0)
        return f"legacy holdings (no buys): {_names(inputs, held)}"

    def __repr__(self) -> str:
        return "LegacyHoldings(target 0, no buys)"
