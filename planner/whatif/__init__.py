"""What-if sweeps for one account (``rebalance whatif``): see :mod:`planner.whatif.sweep`
for the scenarios, :mod:`planner.whatif.gains` for ``--top-bracket``,
:mod:`planner.whatif.report` for the files."""

from planner.whatif.gains import embedded_gains, top_bracket
from planner.whatif.sweep import (
    BRACKETS,
    COLUMNS,
    GAIN_BUDGETS,
    NIIT,
    SWEEPS,
    TAX_SWEEPS,
    TE_VALUES,
    WAIT_DAYS,
    Scenario,
    WhatIf,
    WhatIfOptions,
    band_decision,
    run_whatif,
    scenarios,
)

__all__ = [
    "BRACKETS",
    "COLUMNS",
    "GAIN_BUDGETS",
    "NIIT",
    "SWEEPS",
    "TAX_SWEEPS",
    "TE_VALUES",
    "WAIT_DAYS",
    "Scenario",
    "WhatIf",
    "WhatIfOptions",
    "band_decision",
    "embedded_gains",
    "run_whatif",
    "scenarios",
    "top_bracket",
]
