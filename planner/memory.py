"""How large numpy arrays get their memory pages."""

from __future__ import annotations

import contextlib

import numpy as np


@contextlib.contextmanager
def small_pages():
    """Large numpy arrays allocated in this block get ordinary 4 KB pages, not the
    transparent huge pages numpy asks the kernel for by default (``madvise``).

    Reading a book and writing a plan allocate gigabytes of columns and temporaries that
    are written once. On the 2-core VM this project is measured on, faulting memory in as
    2 MB huge pages costs about seven times more per byte (600 MB first touched: 2.0-2.2 s
    against 0.28-0.32 s): loading 5M lots takes 2.8-3.8 s instead of 4.1-5.7 s, writing a
    10,000-account plan 0.95-1.10 s instead of 1.10-1.32 s. The setting is numpy's own,
    process-wide, and is put back afterwards.
    """
    core = getattr(np, "_core", None) or np.core
    setter = getattr(core.multiarray, "_set_madvise_hugepage", None)
    if setter is None:  # a numpy without the switch
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)
