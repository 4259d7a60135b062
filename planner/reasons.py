"""Why each order of a solved account is made, and what held the plan back: the ``reason``
of every order row and the notes of the account's summary ``message``.

An order's reason is the first of these that fits:

- a cash-only plan: ``raise cash for withdrawal of $8,000``, ``invest contribution of
  $78,600``;
- a sale of a legacy holding: ``legacy holding, not in model``;
- a substitute: a buy of a security the model does not target, in a class none of whose
  targeted securities is bought because each is blocked, with why:
  ``substitute for VNQ (VNQ sold at a loss in this plan)``;
- a tax-loss harvest: a taxable loss sale beyond what moving the security to its goal needs
  (:mod:`planner.harvest`; the loss shown is that part), replaced by another security of
  its class or, in a class it takes no nearer its target, held as cash:
  ``tax-loss harvest: $1,234 loss, replaced by ITOT`` (``..., held as cash``; in a class
  that also goes down, ``..., partly replaced by ITOT; US_EQUITY 49.2% -> 34.0% (target
  36.0%)``);
- a class move towards the target, on a sale when the class goes down and a buy when it
  goes up: ``rebalance US_EQUITY: 40.1% -> 36.0% (target 36.0%)``; one that carries the
  class past its target for a pending flow says so (``raise cash for withdrawal of $8,000:
  TIPS 10.7% -> 3.3% (target 6.0%)``);
- a swap inside a class: ``replaced by VTI within US_EQUITY`` and ``replaces SCHB within
  US_EQUITY``, ``replaces VNQ sold for a tax loss``; a sale of a security the account may
  not buy back names the restriction (``VTI on the account's do-not-buy list: replaced by
  ITOT``);
- any other sale says what it pays for (``raise cash for the cash floor: ...``, ``fund buys
  in US_BONDS, TIPS: US_SMALL 3.8% -> 0.7% (target 5.0%)``), any other buy what it invests
  (``invest cash: REIT 11.05% -> 11.10% (target 9.0%)``).

The notes name, for every class the plan leaves outside its band (the trigger's bounds of a
partial rebalance, else the model's inner band), what holds it there: a do-not-sell or
do-not-trade list, a firm-wide restriction, wash-sale blocks, lots held until long-term, a
used gain budget or short-term cap, a reached turnover cap, cash at its floor, another class
held above its band; else whole shares, the minimum trade, or the tax and cost the optimiser
weighs. A turnover cap the whole-share rounding overshoots is noted.

Weights are fractions of the account value before the plan and after it; money is dollars.
Percentages have one decimal, or more where two would read equal, so that a move's
direction is always visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from constraints.base import AccountInputs
from planner.decisions import Decision, pct_pair
from planner.domain import CASH, Model
from planner.triggers import legacy_band

MOVE_TOL = 1e-6
"""A class weight change smaller than this (a fraction) is no move."""

BAND_TOL = 1e-6
"""A class weight within this of a band edge is inside (the triggers' edge tolerance and
the solver's round-off)."""

SHOWN_TOL = 5e-4
"""A class within this of its target (half the last printed digit of 0.1%) is at it."""

LIMIT_TOL = 1.0
"""Dollars within which a gain limit or the turnover cap counts as used up (binding)."""


class Reasons:
    """Reasons for the orders of one solved account, and notes on its plan.

    ``pre_class`` / ``post_class``: asset class -> weight before and after the plan (cash
    apart); ``cash_flow``: the account's pending flow in dollars (> 0 a contribution)."""

    def __init__(
        self,
        inputs: AccountInputs,
        decision: Decision,
        model: Model,
        executable,
        pre_class: Mapping[str, float],
        post_class: Mapping[str, float],
        cash_flow: float = 0.0,
        harvested: np.ndarray | None = None,
    ):
        self.inputs = inputs
        self.decision = decision
        self.model = model
        self.executable = executable
        self.cash_flow = cash_flow
        self.symbols = inputs.symbols
        n = len(inputs.prices)
        sold_shares = np.bincount(inputs.lot_security, weights=executable.sell_shares, minlength=n)
        self.sold = sold_shares * inputs.prices
        self.bought = executable.buy_shares * inputs.prices
        gain = executable.sell_shares * (inputs.lot_price - inputs.lot_unit_cost)
        self.gain = np.bincount(inputs.lot_security, weights=gain, minlength=n)
        sold_slot = executable.sell_shares > 0
        sold_lots = np.bincount(inputs.lot_security, weights=sold_slot, minlength=n)
        sold_loss_lots = np.bincount(
            inputs.lot_security, weights=sold_slot & inputs.lot_loss, minlength=n
        )
        if harvested is None:
            # A harvest sells loss lots only, in a taxable account.
            self.harvest = inputs.taxable & (sold_lots > 0) & (sold_loss_lots == sold_lots)
            self.harvest_loss = np.where(self.harvest, -self.gain, 0.0)
        else:
            # The loss sold beyond the security's excess over goal (planner.harvest).
            self.harvest = np.asarray(harvested) > 0
            self.harvest_loss = np.asarray(harvested, dtype=float)
        self.klass = np.asarray(inputs.asset_classes, dtype=object)
        target = inputs.target_weight if inputs.target_weight is not None else inputs.goal_weight
        self.targeted = inputs.in_model & (np.asarray(target, dtype=float) > 0)
        self.pre, self.post = dict(pre_class), dict(post_class)
        self.target = model.class_targets
        self._class_text: dict[str, str] = {}  # per class, on first use
        # Per class, the securities sold and bought (the per-order rules look them up).
        self._members: dict[tuple[str, bool], list[int]] = {}
        for flow in (self.sold, self.bought):
            for j in np.flatnonzero(flow > 0).tolist():
                self._members.setdefault((inputs.asset_classes[j], flow is self.sold), []).append(j)

    # -- class moves ---------------------------------------------------------------------

    def move(self, c: str) -> int:
        """+1 if class ``c`` goes up, -1 down, 0 not at all."""
        d = self.post.get(c, 0.0) - self.pre.get(c, 0.0)
        return 0 if abs(d) < MOVE_TOL else (1 if d > 0 else -1)

    def towards_target(self, c: str) -> bool:
        """Whether class ``c`` ends nearer its target than it starts."""
        t = self.target.get(c, 0.0)
        return abs(self.post.get(c, 0.0) - t) < abs(self.pre.get(c, 0.0) - t) - MOVE_TOL

    def past_target(self, c: str) -> int:
        """+1 if class ``c`` ends above its target as printed, -1 below, else 0."""
        d = self.post.get(c, 0.0) - self.target.get(c, 0.0)
        return 0 if abs(d) < SHOWN_TOL else (1 if d > 0 else -1)

    def shift(self, c: str) -> str:
        """Class ``c``'s weights before and after, e.g. ``40.1% -> 36.0% (target 36.0%)``."""
        if c not in self._class_text:
            a, b = pct_pair(self.pre.get(c, 0.0), self.post.get(c, 0.0))
            self._class_text[c] = f"{a} -> {b} (target {self.target.get(c, 0.0):.1%})"
        return self._class_text[c]

    def class_move(self, c: str) -> str:
        """E.g. ``US_EQUITY 40.1% -> 36.0% (target 36.0%)``."""
        return f"{c} {self.shift(c)}"

    def rebalance(self, c: str) -> str:
        """E.g. ``rebalance US_EQUITY: 40.1% -> 36.0% (target 36.0%)``."""
        return f"rebalance {c}: {self.shift(c)}"

    def _names(self, idx) -> str:
        return ", ".join(self.symbols[j] for j in idx)

    def _in_class(self, c: str, flow: np.ndarray, but: int = -1) -> list[int]:
        """Securities of class ``c`` with a positive ``flow`` (``self.sold`` or
        ``self.bought``), but ``but``."""
        return [j for j in self._members.get((c, flow is self.sold), ()) if j != but]

    # -- why a security is not bought ------------------------------------------------------

    def buy_block(self, j: int) -> str | None:
        """Why security ``j`` may not be bought in this plan, or None when it may."""
        inputs, name = self.inputs, self.symbols[j]
        if inputs.restricted_buy[j]:
            return f"{name} restricted from buying (firm-wide)"
        if inputs.do_not_trade is not None and inputs.do_not_trade[j]:
            return f"{name} on the account's do-not-trade list"
        if inputs.do_not_buy[j]:
            return f"{name} on the account's do-not-buy list"
        if self.sold[j] > 0:
            return f"{name} sold {'at a loss ' if self.harvest[j] else ''}in this plan"
        group = inputs.wash_groups[j]
        washed = [
            k
            for k in range(len(self.symbols))
            if inputs.wash_groups[k] == group and self.sold[k] > 0 and self.gain[k] < 0
        ]
        if washed:
            return f"{name} would wash the loss sale of {self._names(washed)}"
        if inputs.wash_buy_blocked[j]:
            return f"{name} would wash a recent loss sale"
        if inputs.wash_direction is not None and inputs.wash_direction[j] < 0:
            return f"{name}'s wash group keeps its loss sales"
        return None

    def substitute(self, i: int) -> str | None:
        """The reason of a buy of ``i`` as a substitute, or None if it is not one: ``i`` is
        not targeted, and every targeted security of its class is blocked and not bought."""
        if self.targeted[i] or not self.inputs.in_model[i]:
            return None
        preferred = np.flatnonzero((self.klass == self.klass[i]) & self.targeted).tolist()
        if not preferred or any(self.bought[p] > 0 for p in preferred):
            return None
        blocks = [self.buy_block(p) for p in preferred]
        if any(b is None for b in blocks):
            return None
        return f"substitute for {self._names(preferred)} ({'; '.join(blocks)})"

    # -- the reasons -----------------------------------------------------------------------

    def reasons(self, idx: np.ndarray, is_sell: np.ndarray) -> np.ndarray:
        """The reason of every order (security ``idx``, a sale where ``is_sell``)."""
        out = np.empty(len(idx), dtype=object)
        # Most orders are the plain class move of their class and side: that text is found
        # once per (class, side); the others take the full rules.
        plain: dict[tuple[str, bool], str | None] = {}
        special = (self.harvest | ~self.inputs.in_model).tolist()
        alternate = (~self.targeted).tolist()
        classes = self.inputs.asset_classes
        for k, (i, sell) in enumerate(zip(idx.tolist(), is_sell.tolist(), strict=True)):
            key = (classes[i], sell)
            if key not in plain:
                plain[key] = self._plain_rebalance(*key)
            text = plain[key]
            if text is None or (special[i] if sell else alternate[i]):
                text = self.sale_reason(i) if sell else self.buy_reason(i)
            out[k] = text
        return out

    def _plain_rebalance(self, c: str, sell: bool) -> str | None:
        """The reason :meth:`sale_reason` (``sell``) or :meth:`buy_reason` gives an order in
        class ``c`` of an in-model security that is neither a harvest nor (a buy) an
        alternate, when that is the class move; None when it is something else."""
        if self.decision.mode == "cash_only" or not self.towards_target(c):
            return None
        if sell:
            past_for_cash = self._cash_raise() is not None and self.past_target(c) < 0
            return self.rebalance(c) if self.move(c) < 0 and not past_for_cash else None
        past_for_flow = self.cash_flow > 0 and self.past_target(c) > 0
        return self.rebalance(c) if self.move(c) > 0 and not past_for_flow else None

    def _cash_raise(self) -> str | None:
        if self.cash_flow < 0:
            return f"raise cash for withdrawal of ${-self.cash_flow:,.0f}"
        if self.inputs.cash_weight < self.inputs.cash_floor_weight - BAND_TOL:
            return "raise cash for the cash floor"
        return None

    def sale_reason(self, i: int) -> str:
        inputs, c = self.inputs, self.klass[i]
        if self.decision.mode == "cash_only":
            return self._cash_raise() or "raise cash"
        if not inputs.in_model[i]:
            return "legacy holding, not in model"
        move = self.move(c)
        others = self._in_class(c, self.bought, but=i)
        if self.harvest[i]:
            loss = f"tax-loss harvest: ${self.harvest_loss[i]:,.0f} loss"
            if others and move < 0:
                return f"{loss}, partly replaced by {self._names(others)}; {self.class_move(c)}"
            if others:
                return f"{loss}, replaced by {self._names(others)}"
            if not self.towards_target(c):
                return f"{loss}, held as cash"
        cash = self._cash_raise()
        if move < 0 and self.towards_target(c):
            # A class sold past its target raises cash beyond what the rebalance needs.
            if cash and self.past_target(c) < 0:
                return f"{cash}: {self.class_move(c)}"
            return self.rebalance(c)
        if others:  # a swap within the class
            replaced = f"replaced by {self._names(others)}"
            if inputs.restricted_buy[i] or inputs.do_not_buy[i]:
                return f"{self.buy_block(i)}: {replaced}"
            return f"{replaced} within {c}"
        if cash:
            return f"{cash}: {self.class_move(c)}"
        funded = [k for k in sorted(set(self.klass[self.bought > 0].tolist())) if self.move(k) > 0]
        if funded:
            return f"fund buys in {', '.join(funded)}: {self.class_move(c)}"
        return f"sell {self.class_move(c)}"

    def buy_reason(self, i: int) -> str:
        c = self.klass[i]
        invest = (
            f"invest contribution of ${self.cash_flow:,.0f}"
            if self.cash_flow > 0
            else "invest cash"
        )
        if self.decision.mode == "cash_only":
            return invest
        substitute = self.substitute(i)
        if substitute:
            return substitute
        if self.move(c) > 0 and self.towards_target(c):
            # A class bought past its target invests cash beyond what the rebalance needs.
            if self.cash_flow > 0 and self.past_target(c) > 0:
                return f"{invest}: {self.class_move(c)}"
            return self.rebalance(c)
        sold = self._in_class(c, self.sold, but=i)
        if sold:  # a replacement within the class
            if all(self.harvest[j] for j in sold):
                return f"replaces {self._names(sold)} sold for a tax loss"
            return f"replaces {self._names(sold)} within {c}"
        return f"{invest}: {self.class_move(c)}"

    # -- notes -----------------------------------------------------------------------------

    def notes(self, search_notes: Sequence[str]) -> list[str]:
        """The summary's notes: the search's and the rounding's, what stops a class short of
        its band, and the limits that bind."""
        ex, inputs = self.executable, self.inputs
        out = list(search_notes)
        if ex.cash_shortfall > 0:
            out.append(
                f"cash ends ${ex.cash_shortfall:,.2f} below its floor: no whole-share "
                "sale could cover it"
            )
        out.extend(ex.notes)
        limits = self.binding_limits()
        missed = self.missed_bands() if self.decision.mode != "cash_only" else []
        # A class held above its band by a rule takes the room of those left below theirs.
        held = {c: self.held_back(c, side) for c, side, _ in missed}
        stuck = [f"{c} held above its band" for c, side, _ in missed if side > 0 and held[c]]
        for c, side, edge in missed:
            causes = [*stuck, *held[c]] if side < 0 else held[c]
            where = "above its upper" if side > 0 else "below its lower"
            post, shown_edge = pct_pair(self.post.get(c, 0.0), edge)
            why = "; ".join([*causes, *limits]) or self._trade_off(c, side, edge)
            out.append(f"{c} ends at {post}, {where} band edge {shown_edge}: {why}")
        cap = inputs.turnover_cap
        traded = float(self.sold.sum() + self.bought.sum())
        if cap is not None and traded > cap * inputs.value + 0.005:
            out.append(
                f"turnover {traded / inputs.value:.2%} exceeds the {cap:.2%} cap by "
                f"${traded - cap * inputs.value:,.2f} after whole-share rounding"
            )
        elif limits and not missed:
            out.append("limits reached: " + "; ".join(limits))
        return out

    def binding_limits(self) -> list[str]:
        """The gain limits and turnover cap the plan uses up (within :data:`LIMIT_TOL`)."""
        inputs, out = self.inputs, []
        if inputs.taxable:
            net = float(self.gain.sum())
            if inputs.gain_budget is not None and net >= inputs.gain_budget - LIMIT_TOL:
                out.append(f"gain budget ${inputs.gain_budget:,.0f} used")
            if inputs.st_gain_cap is not None:
                st = self.executable.sell_shares * (inputs.lot_price - inputs.lot_unit_cost)
                st_net = float(st[~inputs.lot_long_term].sum())
                if st_net >= inputs.st_gain_cap - LIMIT_TOL:
                    out.append(f"short-term gain cap ${inputs.st_gain_cap:,.0f} used")
        cap = inputs.turnover_cap
        traded = float(self.sold.sum() + self.bought.sum())
        if cap is not None and traded >= cap * inputs.value - LIMIT_TOL:
            out.append(f"turnover cap {cap:.1%} reached")
        return out

    def missed_bands(self) -> list[tuple[str, int, float]]:
        """(class, +1 above / -1 below, the edge) of every class the plan leaves outside
        its band: the trigger's bounds of a partial rebalance, else the model's inner
        bands (a legacy class: :func:`planner.triggers.legacy_band`). Cash apart: its floor
        is noted on its own."""
        model, out = self.model, []
        if self.decision.mode in ("partial", "harvest"):
            bounds = dict(self.decision.class_bounds)
        else:
            own = {m.asset_class: m for m in model.classes}
            legacy = legacy_band(model)
            bounds = {}
            for c in sorted(set(self.post) | set(own)):
                band = own[c].band if c in own else legacy
                bounds[c] = band.bounds(self.target.get(c, 0.0))
        for c, (lo, hi) in sorted(bounds.items()):
            if c == CASH:
                continue
            w = self.post.get(c, 0.0)
            if w > hi + BAND_TOL:
                out.append((c, 1, hi))
            elif w < lo - BAND_TOL:
                out.append((c, -1, lo))
        return out

    def held_back(self, c: str, side: int) -> list[str]:
        """What keeps class ``c`` from selling more (``side`` +1) or buying more (-1)."""
        inputs = self.inputs
        in_class = self.klass == c
        out = []
        if side > 0:
            # Per security still held, the first rule that keeps (more of) it from sale.
            held = in_class & (inputs.hold_weight * inputs.value - self.sold > 0.005)
            unsold = inputs.lot_real & (self.executable.sell_shares < inputs.lot_shares - 1e-9)
            lots = unsold & held[inputs.lot_security]
            wash = lots & inputs.lot_loss & inputs.wash_loss_sale_blocked[inputs.lot_security]
            # The lots constraints.HoldNearLongTerm keeps from sale.
            near = (
                lots
                & ~inputs.lot_long_term
                & (inputs.lot_gain_frac > 0)
                & (inputs.lot_days_to_long_term <= inputs.hold_lt_days)
            )
            near &= inputs.taxable and inputs.hold_lt_days > 0
            n = len(held)
            rules = (
                ("do-not-sell: {}", inputs.do_not_sell),
                ("do-not-trade: {}", _flags(inputs.do_not_trade, n)),
                ("firm-wide no-sell: {}", inputs.restricted_sell),
                ("wash sale: no loss sales of recently bought {}", _any_lot(inputs, wash, n)),
                (
                    f"gain lots of {{}} held until long-term (within {inputs.hold_lt_days} days)",
                    _any_lot(inputs, near, n),
                ),
            )
            named: dict[str, list[int]] = {}
            for j in np.flatnonzero(held).tolist():
                for label, flags in rules:
                    if flags[j]:
                        named.setdefault(label, []).append(j)
                        break
            for label, _ in rules:
                if label in named:
                    out.append(label.format(self._names(named[label])))
        else:
            buyable = in_class & inputs.in_model
            if not (self.bought[buyable] > 0).any():
                blocks = [self.buy_block(j) for j in np.flatnonzero(buyable).tolist()]
                if blocks and all(blocks):
                    out.append("; ".join(blocks))
            cash = self._cash_raise()
            if cash and self.move(c) < 0:
                out.append(f"sold to {cash}")
            cash_after = self.executable.cash_after
            if cash_after <= inputs.cash_floor_weight * inputs.value + LIMIT_TOL:
                out.append("cash at its floor")
        return out

    def _trade_off(self, c: str, side: int, edge: float) -> str:
        """The cause when no rule holds class ``c`` back from its band ``edge``: whole
        shares or the dust size for a miss smaller than one order, else the tax and cost
        the optimiser weighs against the drift."""
        inputs = self.inputs
        in_class = self.klass == c
        miss = abs(self.post.get(c, 0.0) - edge) * inputs.value
        one_share = float(np.max(inputs.prices[in_class], initial=0.0))
        minimum = np.maximum(inputs.min_trade_value, inputs.dust_value)[in_class]
        smallest_order = float(np.max(minimum, initial=0.0))
        if miss <= one_share:
            return "whole-share rounding"
        if miss <= smallest_order:
            return f"orders below the ${smallest_order:,.0f} minimum are not made"
        if side > 0:
            if inputs.taxable:
                return "the tax on further sales outweighs the drift"
            return "the trading cost outweighs the drift"
        return "cost and tax outweigh the drift"


def _any_lot(inputs: AccountInputs, lots: np.ndarray, n: int) -> np.ndarray:
    """Per security, whether any of its lot slots is in ``lots``."""
    return np.bincount(inputs.lot_security, weights=lots, minlength=n) > 0


def _flags(mask: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
