"""Tax-aware trade planner for portfolio rebalancing."""

import os as _os

# The planner runs accounts in parallel across processes; inside one, each solve is small
# and a BLAS thread pool only spins: measured on 500-security accounts, CPU time doubled
# with no change in wall time, and two such workers on two cores slowed each other down.
# So one BLAS/OpenMP thread per process, unless the user set otherwise (this only takes
# effect if numpy was not imported before the planner).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_name, "1")

__version__ = "0.1.0"
