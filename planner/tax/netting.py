"""US netting of a year's capital gains and losses (Schedule D; Pub. 550 "Capital Losses").

All amounts in dollars; rates are fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# --------------------------------------------------------------------------------------
# Netting of capital gains and losses
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NettingResult:
    """Outcome of the Schedule D netting of one year, all in dollars.

    - ``net_st``, ``net_lt``: net short- and long-term result after netting within each
      term (carryovers included) and across terms; a gain is positive, a loss negative.
      A loss of one term absorbs a gain of the other, so a gain and a loss never remain
      side by side.
    - ``ordinary_offset``: net capital loss deducted from ordinary income (positive,
      at most the limit), taken from the short-term loss first.
    - ``carryforward_st``, ``carryforward_lt``: losses carried to next year (positive),
      keeping their character.
    - ``taxable_st``, ``taxable_lt``: gains that are taxed (>= 0).
    """

    net_st: float
    net_lt: float
    ordinary_offset: float
    carryforward_st: float
    carryforward_lt: float
    taxable_st: float
    taxable_lt: float

    @property
    def net_total(self) -> float:
        """Net capital gain (positive) or loss (negative) of the year, Schedule D line 16."""
        return self.net_st + self.net_lt


def net_capital_gains(
    st_gain: float,
    lt_gain: float,
    carryforward_st: float = 0.0,
    carryforward_lt: float = 0.0,
    ordinary_offset_limit: float = 3000.0,
) -> NettingResult:
    """Net one year's capital gains the US way (Schedule D, Pub 550 "Capital Losses").

    ``st_gain`` and ``lt_gain`` are the year's realised short- and long-term results in
    dollars (negative for a net loss); ``carryforward_st`` / ``carryforward_lt`` are the
    losses carried in from last year as positive numbers. Steps:

    1. Carryovers enter as a short- and a long-term loss: net ST = ``st_gain`` minus the ST
       carryover, net LT likewise.
    2. If one net is a gain and the other a loss, they offset.
    3. A remaining net loss is deducted from ordinary income up to
       ``ordinary_offset_limit`` ($3,000; $1,500 married filing separately), short-term
       loss first; the rest carries forward keeping its character (the Capital Loss
       Carryover Worksheet: ST carryover = ST loss - LT gain - deduction; LT carryover =
       LT loss - ST gain - (deduction - ST loss, if positive)).

    Assumes taxable income before the deduction is at least the deduction (worksheet line
    3 >= line 2); with less income the worksheet carries more forward, which is not
    modelled here.
    """
    if carryforward_st < 0 or carryforward_lt < 0:
        raise ValueError("carryforwards are losses given as positive numbers")
    if ordinary_offset_limit < 0:
        raise ValueError("ordinary_offset_limit must be >= 0")
    net_st = st_gain - carryforward_st
    net_lt = lt_gain - carryforward_lt
    # Across terms: a loss of one term absorbs the gain of the other; the sign of the
    # total decides which character survives.
    if net_st < 0 < net_lt or net_lt < 0 < net_st:
        total = net_st + net_lt
        if net_st > 0:  # ST gain against LT loss
            net_st, net_lt = (total, 0.0) if total >= 0 else (0.0, total)
        else:  # LT gain against ST loss
            net_st, net_lt = (0.0, total) if total >= 0 else (total, 0.0)
    st_loss = max(-net_st, 0.0)
    lt_loss = max(-net_lt, 0.0)
    if st_loss + lt_loss <= ordinary_offset_limit:
        # Everything is deducted; computed apart so that no rounding dust is carried.
        offset, carry_st, carry_lt = st_loss + lt_loss, 0.0, 0.0
    else:
        offset = ordinary_offset_limit
        used_st = min(st_loss, offset)
        carry_st = st_loss - used_st
        carry_lt = max(lt_loss - (offset - used_st), 0.0)
    return NettingResult(
        net_st=net_st,
        net_lt=net_lt,
        ordinary_offset=offset,
        carryforward_st=carry_st,
        carryforward_lt=carry_lt,
        taxable_st=max(net_st, 0.0),
        taxable_lt=max(net_lt, 0.0),
    )


def capital_gains_tax(
    st_gain: float,
    lt_gain: float,
    st_rate: float,
    lt_rate: float,
    carryforward_st: float = 0.0,
    carryforward_lt: float = 0.0,
    ordinary_offset_limit: float = 3000.0,
) -> float:
    """Tax in dollars on one year's gains after :func:`net_capital_gains` netting.

    ``taxable_st * st_rate + taxable_lt * lt_rate - ordinary_offset * st_rate``: short-term
    gains are taxed at the ordinary rate, and the loss deducted from ordinary income saves
    tax at that same ordinary rate, hence the ``st_rate`` on the offset. Negative when
    the losses save tax. Rates are fractions; flat marginal rates, no brackets.
    """
    n = net_capital_gains(st_gain, lt_gain, carryforward_st, carryforward_lt, ordinary_offset_limit)
    return n.taxable_st * st_rate + n.taxable_lt * lt_rate - n.ordinary_offset * st_rate


# --------------------------------------------------------------------------------------
# One return's year so far
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YearSoFar:
    """One tax return's year before a plan, in dollars: realised short- and long-term
    gains (year to date, plus the return's accounts planned earlier in the run; negative
    for a loss), losses carried in from earlier years (positive) and the deduction limit
    ($3,000; $1,500 married filing separately)."""

    st_gain: float = 0.0
    lt_gain: float = 0.0
    carryforward_st: float = 0.0
    carryforward_lt: float = 0.0
    deduction_limit: float = 3000.0

    @classmethod
    def of(cls, tax_return) -> YearSoFar:
        """The year to date of a :class:`planner.domain.TaxReturn`."""
        return cls(
            tax_return.ytd_st_gain,
            tax_return.ytd_lt_gain,
            tax_return.carryforward_st,
            tax_return.carryforward_lt,
            tax_return.deduction_limit,
        )

    def netting(self, st_gain: float = 0.0, lt_gain: float = 0.0) -> NettingResult:
        """The year's netting with ``st_gain`` and ``lt_gain`` more realised."""
        return net_capital_gains(
            self.st_gain + st_gain,
            self.lt_gain + lt_gain,
            self.carryforward_st,
            self.carryforward_lt,
            self.deduction_limit,
        )

    def tax(self, st_rate: float, lt_rate: float, st_gain: float = 0.0, lt_gain: float = 0.0):
        """The year's capital-gains tax (negative: the deduction's saving) with ``st_gain``
        and ``lt_gain`` more realised."""
        n = self.netting(st_gain, lt_gain)
        return n.taxable_st * st_rate + n.taxable_lt * lt_rate - n.ordinary_offset * st_rate

    def increment(self, st_gain: float, lt_gain: float, st_rate: float, lt_rate: float) -> float:
        """Tax that realising ``st_gain`` and ``lt_gain`` adds to the year (exact netting)."""
        return self.tax(st_rate, lt_rate, st_gain, lt_gain) - self.tax(st_rate, lt_rate)

    def plus(self, st_gain: float, lt_gain: float) -> YearSoFar:
        """The year after realising ``st_gain`` and ``lt_gain`` more."""
        return replace(self, st_gain=self.st_gain + st_gain, lt_gain=self.lt_gain + lt_gain)

    @property
    def usable_loss(self) -> float:
        """Dollars of further net loss the year still uses this year, against its net gains
        and then the deduction; negative when the carried-in and realised losses already
        exceed both, so that a further gain is first sheltered by a loss that would
        otherwise carry forward."""
        net = self.st_gain + self.lt_gain - self.carryforward_st - self.carryforward_lt
        return net + self.deduction_limit
