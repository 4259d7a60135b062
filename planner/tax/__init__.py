"""Tax maths: holding periods, gains, US capital-gain netting, wash sales.

Pure functions over plain values, numpy arrays and the frozen dataclasses of
:mod:`planner.domain`; no cvxpy, so every rule here can be tested against worked examples.

Units: shares are share counts, prices and unit costs are dollars per share, gains, losses,
bases and taxes are dollars, rates are fractions, dates are ``datetime.date`` (or numpy
``datetime64`` in the vectorised helpers). Dollars are kept exact (floats, never rounded
here); rounding to cents is the reports' job.

Sources: IRS Publication 550 ("Holding Period", "Wash Sales", "Capital Losses"), the
Schedule D instructions (Capital Loss Carryover Worksheet), Rev. Rul. 66-7 (holding period
in calendar months, acquisition day excluded, disposal day included), Rev. Rul. 2008-5
(IRA purchase after a taxable loss sale), Treas. Reg. 1.1091-1 (matching of replacement
shares in order of acquisition).
"""

from planner.tax.holding import (
    LotSale,
    days_until_long_term,
    first_long_term_date,
    first_long_term_dates,
    holding_term,
    holding_terms,
    realized_by_term,
    unrealized_gain,
)
from planner.tax.netting import NettingResult, YearSoFar, capital_gains_tax, net_capital_gains
from planner.tax.wash import (
    NON_TAXABLE,
    Replacement,
    WashSaleBlocks,
    WashSaleOutcome,
    WashSaleResult,
    apply_wash_sales,
    lot_purchases,
    wash_sale_blocks,
    wash_window,
)

__all__ = [
    "NON_TAXABLE",
    "LotSale",
    "NettingResult",
    "Replacement",
    "WashSaleBlocks",
    "WashSaleOutcome",
    "WashSaleResult",
    "YearSoFar",
    "apply_wash_sales",
    "capital_gains_tax",
    "days_until_long_term",
    "first_long_term_date",
    "first_long_term_dates",
    "holding_term",
    "holding_terms",
    "lot_purchases",
    "net_capital_gains",
    "realized_by_term",
    "unrealized_gain",
    "wash_sale_blocks",
    "wash_window",
]
