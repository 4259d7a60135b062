"""planner.program.risk: Ledoit-Wolf shrinkage against the paper's formulas written out
here, the class-level fallback, the covariance estimate from prices, and the risk model's
two forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.program.risk import (
    RiskModel,
    estimate_covariance,
    fallback_covariance,
    ledoit_wolf,
    risk_model,
)

VOL2 = 0.15**2  # the fallback's variance: 15% annualised volatility


def lw_by_hand(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit & Wolf (2004), written out observation by observation with the paper's
    norm ``||A||^2 = tr(A A') / n``: ``m = <S, I>``, ``d^2 = ||S - m I||^2``,
    ``b_bar^2 = (1/T^2) sum_k ||x_k x_k' - S||^2``, ``b^2 = min(b_bar^2, d^2)``, and the
    estimate ``(b^2/d^2) m I + (1 - b^2/d^2) S``."""
    t, n = returns.shape
    x = returns - returns.mean(axis=0)

    def norm2(a):
        return float(np.trace(a @ a.T)) / n

    sample = sum(np.outer(row, row) for row in x) / t
    m = float(np.trace(sample)) / n
    d2 = norm2(sample - m * np.eye(n))
    b_bar2 = sum(norm2(np.outer(row, row) - sample) for row in x) / t**2
    b2 = min(b_bar2, d2)
    intensity = b2 / d2
    return intensity * m * np.eye(n) + (1 - intensity) * sample, intensity


FIXED_RETURNS = np.array(
    [
        [0.010, -0.004, 0.002],
        [-0.006, 0.003, 0.001],
        [0.004, 0.008, -0.005],
        [0.000, -0.002, 0.007],
        [-0.012, 0.001, -0.003],
        [0.007, -0.006, 0.004],
        [0.003, 0.005, -0.001],
    ]
)


def test_ledoit_wolf_matches_the_paper_on_a_fixed_sample():
    shrunk, intensity = ledoit_wolf(FIXED_RETURNS)
    expected, expected_intensity = lw_by_hand(FIXED_RETURNS)
    assert 0.0 < expected_intensity < 1.0  # an interior case: both parts count
    assert intensity == pytest.approx(expected_intensity, rel=1e-12)
    np.testing.assert_allclose(shrunk, expected, rtol=1e-12, atol=1e-18)


def test_ledoit_wolf_on_identical_columns_worked_by_hand():
    """Two identical columns a = (1, -1, 2, -2): S = 2.5 [[1, 1], [1, 1]], m = 2.5,
    d^2 = 6.25, b_bar^2 = (1/16) sum_k 2 (a_k^2 - 2.5)^2 = 18/16, intensity 0.18: the
    estimate is [[2.5, 2.05], [2.05, 2.5]], positive definite although S is singular."""
    a = np.array([1.0, -1.0, 2.0, -2.0])
    shrunk, intensity = ledoit_wolf(np.c_[a, a])
    assert intensity == pytest.approx(0.18, abs=1e-14)
    np.testing.assert_allclose(shrunk, [[2.5, 2.05], [2.05, 2.5]], atol=1e-14)
    assert np.linalg.eigvalsh(shrunk).min() == pytest.approx(0.45, abs=1e-14)


def test_ledoit_wolf_intensity_is_capped_at_one():
    """Returns (1, 0), (0, 1), (-1, -1): S = [[2, 1], [1, 2]] / 3, m = 2/3, d^2 = 1/9 and
    b_bar^2 = (7/9 + 7/9 + 10/9) / (2 x 9) = 4/27 > d^2: full shrinkage to (2/3) I."""
    shrunk, intensity = ledoit_wolf(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    assert intensity == 1.0
    np.testing.assert_allclose(shrunk, np.eye(2) * 2 / 3, atol=1e-15)


def test_ledoit_wolf_barely_shrinks_a_long_well_conditioned_sample():
    """5,000 draws from a covariance far from a scaled identity (variances 1 to 16,
    correlated): the sample is reliable, the intensity small and the estimate within 1%
    of the sample covariance."""
    cov = np.array([[1, 0.6, 0, 0], [0.6, 4, 1, 0], [0, 1, 9, -2], [0, 0, -2, 16]]) * 1e-4
    x = np.random.default_rng(0).multivariate_normal(np.zeros(4), cov, size=5000)
    shrunk, intensity = ledoit_wolf(x)
    assert 0.0 < intensity < 0.01
    sample = np.cov(x, rowvar=False, bias=True)
    np.testing.assert_allclose(shrunk, sample, atol=0.01 * np.abs(sample).max())


def test_ledoit_wolf_without_dispersion_does_not_shrink():
    """A sample covariance that already is a scaled identity (d = 0) is kept as it is."""
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    shrunk, intensity = ledoit_wolf(x)
    assert intensity == 0.0
    np.testing.assert_allclose(shrunk, np.eye(2) * 0.5, atol=1e-15)


def test_fallback_covariance_values():
    cov = fallback_covariance(["EQ", "EQ", "BD"])
    same, cross = 0.95 * 0.0225, 0.30 * 0.0225
    expected = np.array(
        [
            [0.0225, same, cross],
            [same, 0.0225, cross],
            [cross, cross, 0.0225],
        ]
    )
    np.testing.assert_allclose(cov, expected, rtol=0, atol=1e-15)


# -- estimate_covariance --------------------------------------------------------------------


def _prices(returns: np.ndarray, symbols, start="2024-01-01") -> pd.DataFrame:
    """Daily prices whose log returns are exactly ``returns`` (first price 100)."""
    levels = 100.0 * np.exp(np.vstack([np.zeros(returns.shape[1]), np.cumsum(returns, axis=0)]))
    index = pd.bdate_range(start, periods=len(levels))
    return pd.DataFrame(levels, index=index, columns=list(symbols))


def _returns(days: int, n: int, seed: int = 5) -> np.ndarray:
    """About 16% annualised volatility, moderately correlated."""
    rng = np.random.default_rng(seed)
    mix = np.eye(n) + 0.5
    return rng.normal(0.0, 0.01, size=(days, n)) @ mix / np.sqrt(n)


CLASSES = {"A": "EQ", "B": "EQ", "C": "EQ", "D": "BD"}


def test_estimate_without_prices_is_the_fallback():
    for prices in (None, pd.DataFrame()):
        cov, note = estimate_covariance(prices, ["A", "D"], CLASSES)
        np.testing.assert_allclose(cov, [[VOL2, 0.3 * VOL2], [0.3 * VOL2, VOL2]], atol=1e-15)
        assert note.startswith("fallback (no price history)")


def test_estimate_needs_more_than_sixty_prices():
    """Sixty prices are too few and the note says so; sixty-one give sixty returns."""
    r = _returns(60, 2)
    short = _prices(r[:59], ["A", "D"])
    assert len(short) == 60
    cov, note = estimate_covariance(short, ["A", "D"], CLASSES)
    np.testing.assert_allclose(cov, fallback_covariance(["EQ", "BD"]), atol=1e-15)
    assert note == "fallback (no usable price history)"
    enough = _prices(r, ["A", "D"])
    cov, note = estimate_covariance(enough, ["A", "D"], CLASSES)
    expected, intensity = lw_by_hand(r)
    np.testing.assert_allclose(cov, expected * 252, rtol=1e-9)
    assert note == f"Ledoit-Wolf on 60 daily returns (shrinkage {intensity:.3f})"


def test_estimate_needs_common_history():
    """A and B each have 100 prices, but on different days: nothing to estimate from."""
    r = _returns(200, 2)
    prices = _prices(r, ["A", "B"])
    prices.iloc[100:, 0] = np.nan
    prices.iloc[:100, 1] = np.nan
    cov, note = estimate_covariance(prices, ["A", "B"], CLASSES)
    np.testing.assert_allclose(cov, fallback_covariance(["EQ", "EQ"]), atol=1e-15)
    assert note == "fallback (too little common price history)"


def test_estimate_from_prices_with_securities_on_the_fallback():
    """A and B have 300 days of prices: their block is Ledoit-Wolf on the last 100 log
    returns (the look-back), annualised with 252 days. C (no column) stands in as the
    half-and-half mix of A and B, its class, with 5% more variance; D (30 prices) is alone
    in its class and keeps the fallback's variance, uncorrelated with the rest."""
    r = _returns(299, 2)
    prices = _prices(r, ["A", "B"])
    prices["D"] = np.nan
    prices.iloc[-30:, 2] = 50.0
    symbols = ["A", "C", "B", "D"]
    cov, note = estimate_covariance(prices, symbols, CLASSES, lookback_days=100)
    block, intensity = lw_by_hand(r[-100:])
    ab = [0, 2]
    np.testing.assert_allclose(cov[np.ix_(ab, ab)], block * 252, rtol=1e-9)
    s = block * 252
    mix = np.array([0.5, 0.5])
    c_row = [mix @ s[:, 0], 1.05 * (mix @ s @ mix), mix @ s[:, 1], 0.0]
    np.testing.assert_allclose(cov[1], c_row, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(cov[3], [0.0, 0.0, 0.0, VOL2], atol=1e-18)
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    assert note == (
        f"Ledoit-Wolf on 100 daily returns (shrinkage {intensity:.3f}); "
        "2 securities on the class-level fallback"
    )


def test_estimate_is_positive_semidefinite_with_a_low_volatility_security():
    """A bond fund with about 3% volatility and a new bond fund without history: the new
    one stands in as its class's mix (at the fallback's own 0.95 x 15% x 15% the matrix
    had a negative eigenvalue and risk_model's Cholesky raised)."""
    r = np.random.default_rng(1).normal(0.0, 0.002, size=(299, 1))
    prices = _prices(r, ["BND"])
    prices["NEW"] = np.nan
    classes = {"BND": "BD", "NEW": "BD"}
    cov, _ = estimate_covariance(prices, ["BND", "NEW"], classes)
    assert np.linalg.eigvalsh(cov).min() >= 0.0
    assert cov[0, 1] == pytest.approx(cov[0, 0])  # NEW stands in as BND, its class
    assert cov[1, 1] == pytest.approx(1.05 * cov[0, 0])
    risk_model(prices, ["BND", "NEW"], classes)


def test_a_security_without_history_no_longer_stops_a_plan():
    import dataclasses

    from planner.io import load_book
    from planner.run import plan

    book = load_book(Path(__file__).resolve().parents[1] / "data" / "demo")
    without = dataclasses.replace(book, prices=book.prices.drop(columns=["SCHP"]))
    result = plan(without, accounts=sorted(book.accounts)[:3], executor="serial")
    assert len(result.summary) == 3


# -- risk_model and RiskModel ---------------------------------------------------------------


def _classes(n: int) -> dict[str, str]:
    return {f"S{i:03d}": f"C{i % 4}" for i in range(n)}


def test_risk_model_is_cholesky_up_to_a_hundred_securities():
    classes = _classes(100)
    symbols = list(classes)
    model = risk_model(None, symbols, classes)
    assert model.exposures.shape == (100, 100)
    np.testing.assert_array_equal(model.specific_variance, np.zeros(100))
    assert np.allclose(model.exposures, np.triu(model.exposures))  # L', upper triangular
    assert model.source.endswith("; Cholesky form")
    expected, _ = estimate_covariance(None, symbols, classes)
    # The estimate plus the 1e-8 ridge, to round-off.
    np.testing.assert_allclose(model.covariance, expected + 1e-8 * np.eye(100), atol=1e-15)


def test_risk_model_is_a_factor_model_above_a_hundred():
    classes = _classes(101)
    symbols = list(classes)
    model = risk_model(None, symbols, classes)
    assert model.exposures.shape == (20, 101)
    assert model.specific_variance.shape == (101,)
    assert np.all(model.specific_variance > 0)
    assert model.source.endswith("; 20-factor PCA form")
    cov = estimate_covariance(None, symbols, classes)[0] + 1e-8 * np.eye(101)
    # Variances are exact; a covariance is off by at most the 21st eigenvalue, the
    # largest variance the 20 factors leave out.
    np.testing.assert_allclose(np.diag(model.covariance), np.diag(cov), rtol=1e-12)
    left_out = np.sort(np.linalg.eigvalsh(cov))[::-1][20]
    assert np.abs(model.covariance - cov).max() <= left_out * (1 + 1e-9)
    # Explicit factors below the count give the factor form on a small universe too.
    small = risk_model(None, symbols[:6], classes, factors=2)
    assert small.exposures.shape == (2, 6) and small.source.endswith("; 2-factor PCA form")


def test_risk_model_covariance_reproduces_the_estimate_from_prices():
    r = _returns(299, 3, seed=11)
    prices = _prices(r, ["A", "B", "D"])
    model = risk_model(prices, ["A", "B", "D"], CLASSES)
    expected = lw_by_hand(r)[0] * 252 + 1e-8 * np.eye(3)
    np.testing.assert_allclose(model.covariance, expected, rtol=1e-9)
    assert model.source.startswith("Ledoit-Wolf on 299 daily returns")


def test_tracking_error_by_hand():
    """Two independent securities at 20% and 10%: active (+10%, -10%) has variance
    0.02^2 + 0.01^2 = 0.0005. With one common factor (0.1, 0.1) and specific variances
    (0.01, 0.04), the active (0.5, -0.5) has no factor exposure and variance
    0.25 x 0.01 + 0.25 x 0.04 = 0.0125."""
    cholesky = RiskModel(("A", "B"), np.diag([0.2, 0.1]), np.zeros(2), "test")
    assert cholesky.tracking_error(np.array([0.1, -0.1])) == pytest.approx(np.sqrt(0.0005))
    factor = RiskModel(("A", "B"), np.array([[0.1, 0.1]]), np.array([0.01, 0.04]), "test")
    assert factor.tracking_error(np.array([0.5, -0.5])) == pytest.approx(np.sqrt(0.0125))
    assert factor.tracking_error(np.array([0.5, 0.5])) == pytest.approx(
        np.sqrt(0.1**2 + 0.0125)  # factor exposure 0.1
    )
    assert factor.tracking_error(np.zeros(2)) == 0.0


def test_subset_reorders():
    exposures = np.array([[0.1, 0.2, 0.3], [0.0, 0.05, -0.1]])
    model = RiskModel(("A", "B", "C"), exposures, np.array([0.01, 0.02, 0.03]), "src")
    sub = model.subset(["C", "A"])
    assert sub.symbols == ("C", "A")
    assert sub.source == "src"
    np.testing.assert_array_equal(sub.exposures, [[0.3, 0.1], [-0.1, 0.0]])
    np.testing.assert_array_equal(sub.specific_variance, [0.03, 0.01])
    full = model.covariance
    np.testing.assert_allclose(sub.covariance, full[np.ix_([2, 0], [2, 0])], atol=1e-15)
    assert sub.covariance[0, 1] == pytest.approx(0.3 * 0.1 + (-0.1) * 0.0)
    assert sub.covariance[0, 0] == pytest.approx(0.3**2 + 0.1**2 + 0.03)
