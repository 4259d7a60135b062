"""Risk models for the tracking-error term.

Tracking variance of post-trade weights ``w`` against a goal ``g`` is
``(w - g)' S (w - g) = ||X (w - g)||^2 + ||sqrt(d) * (w - g)||^2`` with ``S = X'X + diag(d)``.
Two forms:

- Cholesky (``X = L'``, ``d = 0``): exact, dense ``n x n``; right up to about a hundred
  securities.
- Factor (``X`` = the top ``k`` principal components of ``S`` scaled by their variances, ``d``
  the variance they leave unexplained): ``k x n`` plus a diagonal, so hundreds of securities
  stay sparse.

Covariances are estimated from daily log returns with Ledoit-Wolf shrinkage towards a scaled
identity (Ledoit & Wolf 2004, "A well-conditioned estimator for large-dimensional covariance
matrices") and annualised with 252 trading days. Substitutes such as IVV and VOO come out
almost perfectly correlated, which is what lets the optimiser swap one for the other to
harvest a loss at almost no tracking-error cost.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

TRADING_DAYS = 252
FALLBACK_VOLATILITY = 0.15
"""Annualised volatility assumed for a security without price history."""
FALLBACK_SAME_CLASS_CORRELATION = 0.95
FALLBACK_CROSS_CLASS_CORRELATION = 0.30
MIN_HISTORY_DAYS = 60


@dataclass(frozen=True, eq=False)
class RiskModel:
    """Annualised covariance of security returns in factor form ``S = X'X + diag(d)``.

    ``symbols`` orders the columns of ``exposures`` (``k x n``) and ``specific_variance``
    (``n``). ``source`` says in words where it came from (shown in reports).
    """

    symbols: tuple[str, ...]
    exposures: np.ndarray
    specific_variance: np.ndarray
    source: str

    @functools.cached_property
    def covariance(self) -> np.ndarray:
        """``X'X + diag(d)`` (read-only, computed once)."""
        out = self.exposures.T @ self.exposures + np.diag(self.specific_variance)
        out.setflags(write=False)
        return out

    def tracking_error(self, active: np.ndarray) -> float:
        """Annualised tracking error (a fraction) of active weights ``active``."""
        a = np.asarray(active, dtype=float)
        variance = float(np.sum((self.exposures @ a) ** 2) + np.sum(self.specific_variance * a * a))
        return float(np.sqrt(max(variance, 0.0)))

    def subset(self, symbols: Sequence[str]) -> RiskModel:
        """The same model restricted to (and reordered as) ``symbols``."""
        index = {s: i for i, s in enumerate(self.symbols)}
        cols = [index[s] for s in symbols]
        return RiskModel(
            tuple(symbols), self.exposures[:, cols], self.specific_variance[cols], self.source
        )


def ledoit_wolf(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of ``returns`` (``T x n``) and its shrinkage intensity."""
    x = returns - returns.mean(axis=0)
    t, n = x.shape
    sample = x.T @ x / t
    mu = np.trace(sample) / n
    delta = np.sum((sample - mu * np.eye(n)) ** 2) / n
    x2 = x * x
    beta_bar = np.sum(x2.T @ x2 / t - sample * sample) / (n * t)
    beta = min(beta_bar, delta)
    shrinkage = 0.0 if delta == 0 else beta / delta
    return shrinkage * mu * np.eye(n) + (1.0 - shrinkage) * sample, float(shrinkage)


def fallback_covariance(asset_classes: Sequence[str]) -> np.ndarray:
    """Class-level covariance used without price history: equal volatility, high
    correlation within a class, moderate across classes."""
    classes = np.asarray(asset_classes)
    same = classes[:, None] == classes[None, :]
    corr = np.where(same, FALLBACK_SAME_CLASS_CORRELATION, FALLBACK_CROSS_CLASS_CORRELATION)
    np.fill_diagonal(corr, 1.0)
    return corr * FALLBACK_VOLATILITY**2


def estimate_covariance(
    prices: pd.DataFrame | None,
    symbols: Sequence[str],
    asset_classes: Mapping[str, str],
    lookback_days: int = 3 * TRADING_DAYS,
) -> tuple[np.ndarray, str]:
    """Annualised covariance of ``symbols`` from daily prices, and a note on its source.

    Securities with at most :data:`MIN_HISTORY_DAYS` prices in the window stand in as the
    mix of their class's securities with history (see :func:`_with_fallback_rows`), so one
    new fund does not spoil the estimate and the matrix stays a covariance.
    """
    symbols = list(symbols)
    classes = [asset_classes[s] for s in symbols]
    cov = fallback_covariance(classes)
    if prices is None or prices.empty:
        return cov, "fallback (no price history): 15% vol, 0.95 same-class / 0.30 cross-class"
    window = prices.iloc[-(lookback_days + 1) :]
    have = [
        s for s in symbols if s in window.columns and window[s].notna().sum() > MIN_HISTORY_DAYS
    ]
    if len(have) == 0:
        return cov, "fallback (no usable price history)"
    sub = window[have].dropna()
    if len(sub) <= MIN_HISTORY_DAYS:
        return cov, "fallback (too little common price history)"
    returns = np.diff(np.log(sub.to_numpy(dtype=float)), axis=0)
    shrunk, intensity = ledoit_wolf(returns)
    shrunk *= TRADING_DAYS
    pos = [symbols.index(s) for s in have]
    note = f"Ledoit-Wolf on {len(returns)} daily returns (shrinkage {intensity:.3f})"
    missing = len(symbols) - len(have)
    if missing:
        cov = _with_fallback_rows(cov, shrunk, pos, classes)
        note += f"; {missing} securities on the class-level fallback"
    else:
        cov[np.ix_(pos, pos)] = shrunk
    return cov, note


def _with_fallback_rows(
    fallback: np.ndarray, shrunk: np.ndarray, pos: list[int], classes: Sequence[str]
) -> np.ndarray:
    """The estimate on the securities with history (``pos``) and, for each one without, a
    stand-in that keeps the matrix a covariance: the equal-weight mix of its class's
    securities with history, plus a specific variance of
    ``1 - FALLBACK_SAME_CLASS_CORRELATION`` of the mix's; a class with no history at all
    keeps the fallback's own rows, uncorrelated with the rest."""
    n = len(classes)
    missing = [i for i in range(n) if i not in set(pos)]
    members = {c: [k for k, p in enumerate(pos) if classes[p] == c] for c in set(classes)}
    mix = np.zeros((len(missing), len(pos)))
    for row, i in enumerate(missing):
        own = members[classes[i]]
        if own:
            mix[row, own] = 1.0 / len(own)
    cov = np.zeros((n, n))
    cov[np.ix_(pos, pos)] = shrunk
    cov[np.ix_(missing, pos)] = mix @ shrunk
    cov[np.ix_(pos, missing)] = (mix @ shrunk).T
    cov[np.ix_(missing, missing)] = mix @ shrunk @ mix.T
    mixed = mix.sum(axis=1) > 0
    for row, i in enumerate(missing):
        if mixed[row]:
            cov[i, i] *= 2.0 - FALLBACK_SAME_CLASS_CORRELATION
    alone = [i for row, i in enumerate(missing) if not mixed[row]]
    cov[np.ix_(alone, alone)] = fallback[np.ix_(alone, alone)]
    return cov


def risk_model(
    prices: pd.DataFrame | None,
    symbols: Sequence[str],
    asset_classes: Mapping[str, str],
    factors: int | None = None,
) -> RiskModel:
    """Risk model for ``symbols``: Cholesky form, or ``factors`` principal components.

    ``factors=None`` picks Cholesky up to 100 securities and 20 factors above that.
    """
    cov, note = estimate_covariance(prices, symbols, asset_classes)
    n = len(symbols)
    # A tiny ridge keeps the factorisation well defined when substitutes are collinear.
    cov = cov + np.eye(n) * 1e-8
    if factors is None:
        factors = n if n <= 100 else 20
    if factors >= n:
        exposures = np.linalg.cholesky(cov).T
        return RiskModel(tuple(symbols), exposures, np.zeros(n), note + "; Cholesky form")
    values, vectors = np.linalg.eigh(cov)
    top = np.argsort(values)[::-1][:factors]
    exposures = (vectors[:, top] * np.sqrt(np.maximum(values[top], 0.0))).T
    explained = np.sum(exposures**2, axis=0)
    specific = np.maximum(np.diag(cov) - explained, 1e-10)
    return RiskModel(tuple(symbols), exposures, specific, note + f"; {factors}-factor PCA form")
