"""The numerical core of :mod:`planner.solvers.lotqp`: a structured primal-dual interior-point method.

The program, in fractions of account value (``n`` securities with ``L`` lot slots each,
security ``i`` owning slots ``i*L .. i*L+L-1``; ``y = (x, b)`` the lot sales and the buys,
``s = S x`` the sales per security)::

    minimise    1/2 w'Qw + q'w + c'y + cz z
    subject to  w = hold - s + b
                lo <= y <= up,  z >= 0
                class_lo <= A w <= class_hi         (A: asset-class membership)
                w_lo <= w <= w_hi
                alpha s + beta b <= sec_rhs         (security rows: cash floor and ceiling,
                                                     turnover, sale floors)
                G y + gz z <= lot_rhs               (lot rows: gain limits, the carry row)

Mehrotra's predictor-corrector on the normal equations. With ``U' y = -s + b`` (trades to
weights), the Newton matrix on ``y`` is ``M = A0 + R' T R``: ``A0 = B + U Q U'`` (``B`` the
diagonal barrier term of the boxes) and ``R`` every row, weighed by ``T``.

- ``A0^{-1} = Pi + Y K^{-1} Y'`` with, per security, ``D_i = u_i' B_i^{-1} u_i``,
  ``Y = B^{-1} U D^{-1}``, ``Pi`` the block inverse projected off ``u_i``, and
  ``K = Q + D^{-1}``: one ``n x n`` Cholesky per step (or, for a factor risk model, a
  Woodbury solve of the factor count) whatever the number of lots.
- The rows join through one Schur complement ``C = T^{-1} + R A0^{-1} R'`` of their own
  size. Rows on ``w`` cost only ``K`` solves (``U' Y = I``, ``Pi U = 0``); a security row's
  ``Pi`` image is one number per security; only lot rows touch the lot arrays. Each
  iteration makes about eighteen passes over the lots.

Accuracy near the optimum, where barrier weights span twenty orders of magnitude, takes
four details: projections are taken relative to each block's largest-weight entry (an
interior lot's huge weight would otherwise cancel catastrophically); row duals come from
the Schur complement (``dlam = rho + C^{-1} R t``), never from dividing by a vanishing slack;
primal residuals at round-off level are not chased; and the carry slack ``z``, which sits in
one row only, is eliminated analytically, so that row enters with the harmonic mean of its
dual and ``z``'s barrier weight.

Infeasibility is not certified here (only inconsistent boxes are reported): a run that
does not converge returns a status the caller answers by asking another solver.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from planner.solvers.base import NOISE

OPTIMAL = 0
INFEASIBLE = 1
NOT_CONVERGED = 2

FIXED_EPS = 1e-12
"""A variable whose box is narrower than this (fraction of V) is fixed at its lower end."""
STEP_TO_BOUNDARY = 0.99
"""Fraction of the step to the boundary of the positive orthant taken each iteration; near
convergence the last steps go to ``FINAL_STEP``."""
FINAL_STEP = 0.9999
X_START = 0.3
"""Starting lot sales as a fraction of each lot's cap (tuned on the benchmark books)."""
B_START = 0.03
"""Starting buys above their floor, and the carry slack (fractions of V)."""
MU_START = 3e-3
"""Starting complementarity of every bound and row."""
ROUND_OFF = 1e-14
"""Row residuals (fractions of V) at or below which the Newton step does not chase them."""
SNAP = 0.1
"""Slack-to-dual ratio below which a converged variable is put on its bound."""
ROW_SLACK = 1e-12
"""Row violation (fraction of V) the snap may leave before the rows are restored."""
ROOM = 1e-6
"""Distance from its bounds (fraction of V) a variable needs to take part in restoring the
rows: the trades the optimum makes, not those it leaves at (or near) a bound."""
RESTORE_ROUNDS = 4

_JIT = {"cache": True, "error_model": "numpy"}


@njit(**_JIT)
def _cholesky(a, reg):
    """In-place lower Cholesky of the symmetric ``a`` (lower triangle read). A pivot below
    ``reg`` times its own diagonal entry is raised to that (a dynamic regularisation, as in
    interior-point codes: it only touches directions the matrix barely determines)."""
    n = a.shape[0]
    for j in range(n):
        s = a[j, j]
        floor = reg * max(abs(s), 1e-300)
        for k in range(j):
            s -= a[j, k] * a[j, k]
        if s <= floor:
            s = floor
        d = np.sqrt(s)
        a[j, j] = d
        for i in range(j + 1, n):
            t = a[i, j]
            for k in range(j):
                t -= a[i, k] * a[j, k]
            a[i, j] = t / d


@njit(**_JIT)
def _cho_solve(c, v):
    """Solve ``(C C') x = v`` in place for the lower factor ``c``."""
    n = c.shape[0]
    for i in range(n):
        s = v[i]
        for k in range(i):
            s -= c[i, k] * v[k]
        v[i] = s / c[i, i]
    for i in range(n - 1, -1, -1):
        v[i] /= c[i, i]
        vi = v[i]
        for k in range(i):
            v[k] -= c[i, k] * vi


@njit(**_JIT)
def _mv(a, x, out):
    """``out = a @ x`` (loops: shapes may be empty)."""
    for j in range(a.shape[0]):
        acc = 0.0
        for k in range(a.shape[1]):
            acc += a[j, k] * x[k]
        out[j] = acc


@njit(**_JIT)
def _mtv(a, x, out):
    """``out = a.T @ x`` (loops: shapes may be empty)."""
    out[:] = 0.0
    for j in range(a.shape[0]):
        xj = x[j]
        if xj != 0.0:
            for k in range(a.shape[1]):
                out[k] += a[j, k] * xj


@njit(**_JIT)
def _q_times(w, use_dense, q_dense, q_x, q_d):
    if use_dense:
        return q_dense @ w
    return q_x.T @ (q_x @ w) + q_d * w


@njit(**_JIT)
def _k_factor(free_idx, delta, use_dense, q_dense, q_x, q_d):
    """``K = Q + D^{-1}`` over the free securities: a dense Cholesky factor, or for the
    factor form ``diag(kd) + kz kz'`` with the Cholesky factor of ``I + kz' kd^{-1} kz``."""
    nf = free_idx.shape[0]
    if use_dense:
        k = np.empty((nf, nf))
        for a in range(nf):
            ia = free_idx[a]
            for c in range(nf):
                k[a, c] = q_dense[ia, free_idx[c]]
            k[a, a] += 1.0 / delta[ia]
        # LAPACK when the matrix is positive definite (the usual case); else the
        # regularised factorisation.
        try:
            kchol = np.linalg.cholesky(k)
        except Exception:  # noqa: BLE001 - numba raises LinAlgError for a bad pivot
            kchol = k
            _cholesky(kchol, 1e-14)
        return kchol, np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0))
    k_f = q_x.shape[0]
    kd = np.empty(nf)
    kz = np.empty((nf, k_f))
    for a in range(nf):
        ia = free_idx[a]
        kd[a] = q_d[ia] + 1.0 / delta[ia]
        for c in range(k_f):
            kz[a, c] = q_x[c, ia]
    kinner = (kz.T / kd) @ kz
    for c in range(k_f):
        kinner[c, c] += 1.0
    _cholesky(kinner, 1e-14)
    return np.zeros((0, 0)), kd, kz, kinner


@njit(**_JIT)
def _k_solve(v, free_idx, use_dense, kchol, kd, kz, kinner, out):
    """``out = K^{-1} v`` over the free securities (full-length vectors, 0 when pinned)."""
    nf = free_idx.shape[0]
    vf = np.empty(nf)
    for a in range(nf):
        vf[a] = v[free_idx[a]]
    if use_dense:
        _cho_solve(kchol, vf)
    else:
        dv = vf / kd
        t = kz.T @ dv
        _cho_solve(kinner, t)
        vf = dv - (kz @ t) / kd
    out[:] = 0.0
    for a in range(nf):
        out[free_idx[a]] = vf[a]


@njit(**_JIT)
def _project(v, e, delta, anchor, n, slots, g, out_pi, out_mean, out_lots, out_g):
    """``out_pi = Pi v``, ``out_mean = Y' v`` (per security, the ``e``-weighted mean of
    ``u * v``, taken relative to the block's anchor), ``out_lots`` the per-security sums of
    ``Pi v`` over the lots, and ``out_g[d] = g[d]' Pi v`` for the lot rows."""
    m = n * slots
    r = g.shape[0]
    out_g[:] = 0.0
    # One lot row (the usual case) sums in a register: through memory, each addition would
    # wait for the store of the one before. Same additions, same order.
    g_first = g[0] if r == 1 else np.zeros(0)
    first = 0.0
    for i in range(n):
        lots = 0.0
        if delta[i] <= 0.0:
            out_mean[i] = 0.0
            for k in range(i * slots, (i + 1) * slots):
                out_pi[k] = 0.0
            out_pi[m + i] = 0.0
            out_lots[i] = 0.0
            continue
        a = anchor[i]
        star = v[a] if a >= m else -v[a]
        acc = e[m + i] * (v[m + i] - star)
        for k in range(i * slots, (i + 1) * slots):
            acc += e[k] * (-v[k] - star)
        shift = acc / delta[i]
        out_mean[i] = star + shift
        # u_k e_k ((u v)_k - mean), with u = -1 on lots and +1 on the buy
        if r == 1:
            for k in range(i * slots, (i + 1) * slots):
                p = -e[k] * ((-v[k] - star) - shift)
                out_pi[k] = p
                lots += p
                first += g_first[k] * p
        else:
            for k in range(i * slots, (i + 1) * slots):
                p = -e[k] * ((-v[k] - star) - shift)
                out_pi[k] = p
                lots += p
                for d in range(r):
                    out_g[d] += g[d, k] * p
        p = e[m + i] * ((v[m + i] - star) - shift)
        out_pi[m + i] = p
        out_lots[i] = lots
        if r == 1:
            first += g_first[m + i] * p
        else:
            for d in range(r):
                out_g[d] += g[d, m + i] * p
    if r == 1:
        out_g[0] = first


@njit(**_JIT)
def _rows_transpose(v, a_w, alpha, beta, g, n, slots, vw, ta, tb, out):
    """``out = R' v`` over ``y`` for a row-space ``v``: the rows on ``w`` gather in ``vw``
    (added to what ``vw`` holds) and reach the lots and buys through ``U``, the security
    rows per security (``ta``, ``tb``: scratch), the lot rows directly."""
    n_w, r_s = a_w.shape[0], alpha.shape[0]
    _mtv(a_w, v[:n_w], ta)
    vw += ta
    _mtv(alpha, v[n_w : n_w + r_s], ta)
    _mtv(beta, v[n_w : n_w + r_s], tb)
    _mtv(g, v[n_w + r_s :], out)
    m = n * slots
    for i in range(n):
        term = ta[i] - vw[i]
        for k in range(i * slots, (i + 1) * slots):
            out[k] += term
        out[m + i] += tb[i] + vw[i]


@njit(**_JIT)
def _activities(y, hold, n, slots, a_w, alpha, beta, g, sales, w, out):
    """Row activities at ``y``, and the sales and weights per security (into ``sales``,
    ``w``): rows on ``w``, then the security rows, then the lot rows."""
    m = n * slots
    for i in range(n):
        acc = 0.0
        for k in range(i * slots, (i + 1) * slots):
            acc += y[k]
        sales[i] = acc
        w[i] = hold[i] - acc + y[m + i]
    n_w = a_w.shape[0]
    r_s = alpha.shape[0]
    _mv(a_w, w, out[:n_w])
    for d in range(r_s):
        acc = 0.0
        for i in range(n):
            acc += alpha[d, i] * sales[i] + beta[d, i] * y[m + i]
        out[n_w + d] = acc
    _mv(g, y, out[n_w + r_s :])


@njit(**_JIT)
def _row_coefficients(j, n, slots, a_w, alpha, beta, g, out):
    """Row ``j``'s coefficients on ``y`` (rows in the order of :func:`_activities`): a row
    on ``w`` reaches the lots (-) and the buy (+) of each security, a security row the lots
    through ``alpha`` and the buy through ``beta``, a lot row ``y`` directly."""
    m = n * slots
    n_w, r_s = a_w.shape[0], alpha.shape[0]
    if j >= n_w + r_s:
        for k in range(m + n):
            out[k] = g[j - n_w - r_s, k]
        return
    for i in range(n):
        if j < n_w:
            on_lots, on_buy = -a_w[j, i], a_w[j, i]
        else:
            on_lots, on_buy = alpha[j - n_w, i], beta[j - n_w, i]
        for k in range(i * slots, (i + 1) * slots):
            out[k] = on_lots
        out[m + i] = on_buy


@njit(**_JIT)
def _restore_rows(y, converged, lo, up, hold, n, slots, a_w, alpha, beta, g, rhs, cr):
    """Put the snapped solution ``y`` back inside every row, up to ``ROW_SLACK``.

    Each snapped variable moved by its slack at convergence (up to about 1e-6 of V), which
    can push a row that binds at the optimum past its bound; so would the caller's
    ``clean``, which sets trades below ``NOISE`` to 0, so that dust goes to its bound here
    first. The rows so violated are put back on their bounds by the least-norm change of
    the variables clear of their bounds (the snapped ones stay put); a row that change
    pushes over joins them, for a few rounds. Should that fail (a violated row no such
    variable is in), ``y`` goes back to ``converged``, the iterate before the snap, which
    keeps the rows to the solve's tolerance. The carry row is left out: ``z`` follows
    ``y``."""
    big_n = y.shape[0]
    n_rows = rhs.shape[0]
    sales = np.empty(n)
    w = np.empty(n)
    act = np.empty(n_rows)
    held = np.zeros(n_rows, np.bool_)
    for attempt in range(RESTORE_ROUNDS + 1):
        for k in range(big_n):
            if y[k] - lo[k] < NOISE:
                y[k] = lo[k]
        _activities(y, hold, n, slots, a_w, alpha, beta, g, sales, w, act)
        violated = False
        for j in range(n_rows):
            if j != cr and act[j] - rhs[j] > ROW_SLACK:
                held[j] = True
                violated = True
        if not violated:
            return
        if attempt == RESTORE_ROUNDS:
            break
        rows = np.flatnonzero(held)
        a = np.empty((rows.shape[0], big_n))
        excess = np.empty(rows.shape[0])
        for r in range(rows.shape[0]):
            _row_coefficients(rows[r], n, slots, a_w, alpha, beta, g, a[r])
            for k in range(big_n):
                if y[k] - lo[k] < ROOM or up[k] - y[k] < ROOM:
                    a[r, k] = 0.0
            excess[r] = act[rows[r]] - rhs[rows[r]]
        gram = a @ a.T
        if np.min(np.diag(gram)) == 0.0:
            break
        # dy = -a' (a a')^{-1} excess puts each held row on its bound.
        _cholesky(gram, 1e-12)
        _cho_solve(gram, excess)
        dy = a.T @ excess
        for k in range(big_n):
            y[k] = min(max(y[k] - dy[k], lo[k]), up[k])
    for k in range(big_n):
        y[k] = converged[k]


@njit(**_JIT)
def solve(
    slots,
    lo,
    up,
    cost,
    has_z,
    z_cost,
    use_dense,
    q_dense,
    q_x,
    q_d,
    q_lin,
    hold,
    klass,
    class_lo,
    class_hi,
    w_lo,
    w_hi,
    alpha,
    beta,
    sec_rhs,
    g,
    gz,
    lot_rhs,
    tol,
    gap_tol,
    max_iter,
):
    """Solve the program of the module doc for ``y = (x, b)`` with bounds ``lo <= y <= up``
    and linear cost ``cost``. Converged when the primal and dual residuals are at most
    ``tol`` and the complementarity gap at most ``gap_tol``; a variable at its bound then
    sits within about ``gap_tol / reduced cost`` of it. ``gz`` must be 0 but in the carry
    row, where it is -1. Returns ``(status, y, z, iterations)``."""
    n = hold.shape[0]
    big_n = lo.shape[0]
    m = big_n - n
    r_s = sec_rhs.shape[0]
    r_l = lot_rhs.shape[0]
    n_class = class_lo.shape[0]

    y = lo.copy()
    z = 0.0
    free = np.empty(big_n, np.bool_)
    for k in range(big_n):
        if up[k] < lo[k] - FIXED_EPS:
            return INFEASIBLE, y, z, 0
        free[k] = up[k] - lo[k] > FIXED_EPS

    # Rows, in order: on w (class bands, weight limits) as vectors over securities, then
    # the security rows, then the lot rows; every row reads  activity <= rhs.
    n_w = 0
    for c in range(n_class):
        n_w += int(np.isfinite(class_lo[c])) + int(np.isfinite(class_hi[c]))
    for i in range(n):
        n_w += int(np.isfinite(w_lo[i])) + int(np.isfinite(w_hi[i]))
    b_s = n_w  # first security row
    b_l = n_w + r_s  # first lot row
    n_rows = b_l + r_l
    a_w = np.zeros((n_w, n))
    rhs = np.empty(n_rows)
    j = 0
    for c in range(2 * n_class):
        sign = 1.0 if c % 2 else -1.0
        bound = class_hi[c // 2] if c % 2 else class_lo[c // 2]
        if np.isfinite(bound):
            for i in range(n):
                if klass[i] == c // 2:
                    a_w[j, i] = sign
            rhs[j] = sign * bound
            j += 1
    for i in range(2 * n):
        sign = 1.0 if i % 2 else -1.0
        bound = w_hi[i // 2] if i % 2 else w_lo[i // 2]
        if np.isfinite(bound):
            a_w[j, i // 2] = sign
            rhs[j] = sign * bound
            j += 1
    for d in range(r_s):
        rhs[b_s + d] = sec_rhs[d]
    for d in range(r_l):
        rhs[b_l + d] = lot_rhs[d]
    cr = -1  # the carry row's index among all rows
    for d in range(r_l):
        if gz[d] != 0.0:
            cr = b_l + d
    ab = alpha + beta  # a security row's weight on a trade, per security

    # Starting point: lots part-way into their boxes, buys a little above their floor.
    for k in range(big_n):
        if free[k]:
            if k >= m:
                y[k] = lo[k] + min(X_START * (up[k] - lo[k]), B_START)
            else:
                y[k] = lo[k] + X_START * (up[k] - lo[k])
    if has_z:
        z = B_START
    # The box slacks are state of their own, updated additively: recomputed as up - y they
    # would round to zero once a step goes to within an ulp of the bound.
    tl = np.zeros(big_n)
    tu = np.zeros(big_n)
    zl = np.zeros(big_n)
    zu = np.zeros(big_n)
    for k in range(big_n):
        if free[k]:
            tl[k] = y[k] - lo[k]
            tu[k] = up[k] - y[k]
            zl[k] = MU_START / tl[k]
            zu[k] = MU_START / tu[k]
    zz = MU_START / z if has_z else 0.0
    # 1.0 on free variables, 0.0 on fixed ones: the lot loops stay free of branches, which
    # the random signs of a step would otherwise mispredict.
    mk = free.astype(np.float64)

    sales = np.empty(n)
    w = np.empty(n)
    act = np.empty(n_rows)
    lot_act = np.empty(r_l)

    _activities(y, hold, n, slots, a_w, alpha, beta, g, sales, w, act)
    s = np.empty(n_rows)
    lam = np.empty(n_rows)
    for j in range(n_rows):
        zterm = -z if j == cr else 0.0
        s[j] = max(rhs[j] - act[j] - zterm, 1e-2)
        lam[j] = MU_START / s[j]
    n_comp = 2 * int(free.sum()) + (1 if has_z else 0) + n_rows

    # Work arrays.
    rd = np.empty(big_n)
    rp = np.empty(n_rows)
    e = np.zeros(big_n)
    itl = np.zeros(big_n)  # 1 / tl, 1 / tu of the free variables
    itu = np.zeros(big_n)
    izl = np.zeros(big_n)  # 1 / zl, 1 / zu of the free variables
    izu = np.zeros(big_n)
    sigma_lots = np.zeros(n)
    delta = np.zeros(n)
    anchor = np.zeros(n, np.int64)
    theta = np.empty(n_rows)
    vw = np.empty(n)
    ta = np.empty(n)
    tb = np.empty(n)
    h = np.empty(big_n)
    dy = np.empty(big_n)
    ds = np.empty(n_rows)
    dlam = np.empty(n_rows)
    dzl = np.empty(big_n)
    dzu = np.empty(big_n)
    a_dy = np.zeros(big_n)
    a_ds = np.zeros(n_rows)
    a_dlam = np.zeros(n_rows)
    a_dzl = np.zeros(big_n)
    a_dzu = np.zeros(big_n)
    r_sl = np.empty(n_rows)
    rho = np.empty(n_rows)
    row_m = np.empty((n_rows, n))  # a_j (rows on w) or Y' g_j (security and lot rows)
    row_p = np.empty((n_rows, n))  # K^{-1} row_m[j]
    pi_g = np.empty((r_l, big_n))  # Pi g_j of the lot rows
    pi_g_lots = np.empty((r_l, n))  # ... summed per security over the lots
    g_pi_g = np.empty((r_l, r_l))
    c1 = np.empty((n_rows, n_rows))
    pih = np.empty(big_n)
    mh = np.empty(n)
    pih_lots = np.empty(n)
    g_pih = np.empty(r_l)
    ut = np.empty(n)
    dwv = np.empty(n)
    gamma = np.empty(n)
    coef = np.empty(n_rows)
    best_y = y.copy()
    best_z = z
    best_merit = np.inf
    merit = np.inf
    it = 0
    for it in range(max_iter + 1):
        # ---- residuals ---------------------------------------------------------------------
        _activities(y, hold, n, slots, a_w, alpha, beta, g, sales, w, act)
        pres = 0.0
        psum = 0.0
        for j in range(n_rows):
            zterm = -z if j == cr else 0.0
            rp[j] = act[j] + zterm + s[j] - rhs[j]
            pres = max(pres, abs(rp[j]))
            psum += rp[j]
        # rd = c + U (Q w + q) + R' lam - zl + zu
        # Copies are loops in this kernel: an array-to-array slice assignment makes numba
        # compile its shape-mismatch error message too, seconds of a first run's compile.
        qw = _q_times(w, use_dense, q_dense, q_x, q_d) + q_lin
        for i in range(n):
            vw[i] = qw[i]
        _rows_transpose(lam, a_w, alpha, beta, g, n, slots, vw, ta, tb, rd)
        comp = 0.0
        dres = 0.0
        dsum = 0.0
        for k in range(big_n):
            v = mk[k] * (rd[k] + cost[k] - zl[k] + zu[k])  # 0 on fixed variables
            rd[k] = v
            comp += tl[k] * zl[k] + tu[k] * zu[k]
            dres = max(dres, abs(v))
            dsum += v
        rdz = 0.0
        if has_z:
            rdz = z_cost - lam[cr] - zz
            comp += z * zz
            dres = max(dres, abs(rdz))
            dsum += rdz
        for j in range(n_rows):
            comp += s[j] * lam[j]
        mu = comp / max(n_comp, 1)
        if not (np.isfinite(comp) and np.isfinite(dsum) and np.isfinite(psum)):
            break  # max() cannot see a NaN
        merit = max(pres / tol, dres / tol, comp / gap_tol)
        if merit < best_merit:
            best_merit = merit
            for k in range(big_n):
                best_y[k] = y[k]
            best_z = z
        if merit <= 1.0 or merit > 1e6 * best_merit or it == max_iter:
            break

        # ---- factorisation -----------------------------------------------------------------
        for k in range(big_n):
            # reciprocals once per iteration (0 on fixed variables, whose slacks are 0)
            fixed = 1.0 - mk[k]
            itl[k] = mk[k] / (tl[k] + fixed)
            itu[k] = mk[k] / (tu[k] + fixed)
            izl[k] = mk[k] / (zl[k] + fixed)
            izu[k] = mk[k] / (zu[k] + fixed)
            e[k] = mk[k] / (zl[k] * itl[k] + zu[k] * itu[k] + fixed)
        nf = 0
        for i in range(n):
            best = e[m + i]
            anchor[i] = m + i
            total = 0.0
            for k in range(i * slots, (i + 1) * slots):
                total += e[k]
                if e[k] > best:
                    best = e[k]
                    anchor[i] = k
            eb = e[m + i]
            sigma_lots[i] = total
            delta[i] = total + eb
            if delta[i] > 0.0:
                nf += 1
        free_idx = np.empty(nf, np.int64)
        f = 0
        for i in range(n):
            if delta[i] > 0.0:
                free_idx[f] = i
                f += 1
        kchol, kd, kz, kinner = _k_factor(free_idx, delta, use_dense, q_dense, q_x, q_d)
        for j in range(n_rows):
            theta[j] = lam[j] / s[j]
        zbar = zz / z if has_z else 0.0
        if cr >= 0:
            # z eliminated: the carry row's weight is the harmonic mean of its own and z's.
            theta[cr] = lam[cr] * zbar / (lam[cr] + s[cr] * zbar)
        # Y' g per row: a_j itself for rows on w; for a security row the weighted mean of
        # (-alpha_i on the lots, +beta_i on the buy).
        for j in range(n_w):
            for i in range(n):
                row_m[j, i] = a_w[j, i]
        for d in range(r_s):
            for i in range(n):
                if delta[i] > 0.0:
                    row_m[b_s + d, i] = (
                        -alpha[d, i] * sigma_lots[i] + e[m + i] * beta[d, i]
                    ) / delta[i]
                else:
                    row_m[b_s + d, i] = 0.0
        for d in range(r_l):
            _project(
                g[d],
                e,
                delta,
                anchor,
                n,
                slots,
                g,
                pi_g[d],
                row_m[b_l + d],
                pi_g_lots[d],
                g_pi_g[d],
            )
        for j in range(n_rows):
            _k_solve(row_m[j], free_idx, use_dense, kchol, kd, kz, kinner, row_p[j])
        # C = T^{-1} + R A0^{-1} R' = T^{-1} + row_m K^{-1} row_m' + (rows on y) Pi (rows on y)'
        for j in range(n_rows):
            for k in range(j + 1):
                acc = 0.0
                for i in range(n):
                    acc += row_m[j, i] * row_p[k, i]
                if k >= b_s:
                    if j < b_l:  # security row j, security row k
                        for i in range(n):
                            if delta[i] > 0.0:
                                acc += (
                                    (e[m + i] * sigma_lots[i] / delta[i])
                                    * ab[j - b_s, i]
                                    * ab[k - b_s, i]
                                )
                    elif k < b_l:  # lot row j, security row k: g_k' Pi g_j
                        dj, dk = j - b_l, k - b_s
                        for i in range(n):
                            acc += alpha[dk, i] * pi_g_lots[dj, i] + beta[dk, i] * pi_g[dj, m + i]
                    else:  # lot rows
                        acc += g_pi_g[j - b_l, k - b_l]
                c1[j, k] = acc
            c1[j, j] += 1.0 / theta[j]
        _cholesky(c1, 1e-15)

        # ---- predictor (phase 0) and corrector (phase 1) -----------------------------------
        sigma_mu = 0.0
        a_dz = 0.0
        a_dzz = 0.0
        final = merit < 1e3
        for phase in range(2):
            corr = phase == 1
            for j in range(n_rows):
                r_sl[j] = s[j] * lam[j]
                if corr:
                    r_sl[j] += a_ds[j] * a_dlam[j] - sigma_mu
            r_zz = z * zz + (a_dz * a_dzz - sigma_mu if corr else 0.0)
            for j in range(n_rows):
                rpj = rp[j] if abs(rp[j]) > ROUND_OFF else 0.0
                rho[j] = (-r_sl[j] + lam[j] * rpj) / s[j]
            carry_x = 0.0
            carry_y = 0.0
            carry_den = 1.0
            if has_z:
                # The carry row and z as one exact 2 x 2 block: only bounded terms reach
                # the y-system, whichever of s_c and z is vanishing.
                rpc = rp[cr] if abs(rp[cr]) > ROUND_OFF else 0.0
                carry_x = -r_sl[cr] + lam[cr] * rpc
                carry_y = r_zz / z + rdz
                carry_den = lam[cr] + s[cr] * zbar
                rho[cr] = (zbar * carry_x + lam[cr] * carry_y) / carry_den
            # h = -rd - R' rho - r_lo / t_lo + r_up / t_up
            vw[:] = 0.0
            _rows_transpose(rho, a_w, alpha, beta, g, n, slots, vw, ta, tb, h)
            cm = sigma_mu if corr else 0.0
            cf = 1.0 if corr else 0.0  # the corrector's second-order term
            for k in range(big_n):
                r_lo = tl[k] * zl[k] + cf * a_dy[k] * a_dzl[k] - cm
                r_up = tu[k] * zu[k] - cf * a_dy[k] * a_dzu[k] - cm
                h[k] = mk[k] * (-rd[k] - h[k] - r_lo * itl[k] + r_up * itu[k])
            # Newton direction: t = A0^{-1} h, coef = C^{-1} R t, dy = t - A0^{-1} R' coef.
            _project(h, e, delta, anchor, n, slots, g, pih, mh, pih_lots, g_pih)
            _k_solve(mh, free_idx, use_dense, kchol, kd, kz, kinner, ut)
            for j in range(n_rows):
                acc = 0.0
                for i in range(n):
                    acc += row_m[j, i] * ut[i]
                if b_s <= j < b_l:
                    for i in range(n):
                        acc += alpha[j - b_s, i] * pih_lots[i] + beta[j - b_s, i] * pih[m + i]
                elif j >= b_l:
                    acc += g_pih[j - b_l]
                coef[j] = acc
            _cho_solve(c1, coef)
            # dw = U' dy = K^{-1} Y' h - row_p' coef (U' Pi = 0: no sum over lots); a
            # security row's Pi image per security is e_b (alpha + beta) / D_i.
            for i in range(n):
                dwv[i] = ut[i]
            for j in range(n_rows):
                cj = coef[j]
                for i in range(n):
                    dwv[i] -= row_p[j, i] * cj
            for i in range(n):
                acc = 0.0
                for d in range(r_s):
                    acc += ab[d, i] * coef[b_s + d]
                gamma[i] = acc * e[m + i] / delta[i] if delta[i] > 0.0 else 0.0
            # dy = Pi h - (Pi of the rows) coef + Y dw
            _mtv(pi_g, coef[b_l:], dy)
            for i in range(n):
                if delta[i] > 0.0:
                    spread = dwv[i] / delta[i]
                    lot_shift = gamma[i] + spread
                    for k in range(i * slots, (i + 1) * slots):
                        dy[k] = pih[k] - dy[k] - e[k] * lot_shift
                    k = m + i
                    dy[k] = pih[k] - dy[k] - sigma_lots[i] * gamma[i] + e[k] * spread
            # (dy is 0 on fixed variables: their e is 0)
            _mv(g, dy, lot_act)
            # The box duals, and the longest step that keeps every slack and dual positive,
            # as the largest inverse ratio (multiplications, no branches).
            inv_step = 0.0
            for k in range(big_n):
                v = dy[k]
                r_lo = tl[k] * zl[k] + cf * a_dy[k] * a_dzl[k] - cm
                r_up = tu[k] * zu[k] - cf * a_dy[k] * a_dzu[k] - cm
                dl = (-r_lo - zl[k] * v) * itl[k]
                du = (-r_up + zu[k] * v) * itu[k]
                dzl[k] = dl
                dzu[k] = du
                # (grouped so that one max per variable waits on the running one)
                inv_step = max(
                    inv_step, max(max(-v * itl[k], v * itu[k]), max(-dl * izl[k], -du * izu[k]))
                )
            amax = 1.0 / inv_step if inv_step > 1.0 else 1.0
            # Row duals from the Schur complement; slacks from complementarity where the row
            # is tight (lam >= s), else from the row itself.
            for j in range(n_rows):
                dlam[j] = rho[j] + coef[j]
                if j == cr:
                    continue
                if lam[j] >= s[j]:
                    ds[j] = (-r_sl[j] - s[j] * dlam[j]) / lam[j]
                elif j < b_s:
                    acc = 0.0
                    for i in range(n):
                        acc += a_w[j, i] * dwv[i]
                    ds[j] = -rp[j] - acc
                elif j < b_l:
                    acc = 0.0
                    for i in range(n):
                        # the sale of security i is its buy change less its weight change
                        db = dy[m + i]
                        acc += alpha[j - b_s, i] * (db - dwv[i]) + beta[j - b_s, i] * db
                    ds[j] = -rp[j] - acc
                else:
                    ds[j] = -rp[j] - lot_act[j - b_l]
            dz = 0.0
            dzz = 0.0
            if has_z:
                # carry row (gz = -1):  a - dz + ds_c = -rp_c,  lam_c ds_c + s_c dlam_c = -r_sl,
                # z:  -dlam_c - dzz = -rdz,  zz dz + z dzz = -r_zz;  a = g_c' dy.
                a = lot_act[cr - b_l]
                dz = (carry_x + lam[cr] * a - s[cr] * carry_y) / carry_den
                ds[cr] = -rp[cr] - a + dz
                dzz = rdz - dlam[cr]
                if dz < 0.0:
                    amax = min(amax, -z / dz)
                if dzz < 0.0:
                    amax = min(amax, -zz / dzz)
            for j in range(n_rows):
                if ds[j] < 0.0:
                    amax = min(amax, -s[j] / ds[j])
                if dlam[j] < 0.0:
                    amax = min(amax, -lam[j] / dlam[j])
            if phase == 0:
                # Mehrotra's centring from the affine step's complementarity.
                comp_aff = 0.0
                for j in range(n_rows):
                    comp_aff += (s[j] + amax * ds[j]) * (lam[j] + amax * dlam[j])
                for k in range(big_n):
                    if free[k]:
                        comp_aff += (tl[k] + amax * dy[k]) * (zl[k] + amax * dzl[k])
                        comp_aff += (tu[k] - amax * dy[k]) * (zu[k] + amax * dzu[k])
                if has_z:
                    comp_aff += (z + amax * dz) * (zz + amax * dzz)
                sigma = min((comp_aff / max(comp, 1e-300)) ** 3, 1.0)
                sigma_mu = sigma * mu
                # keep the affine direction: swap the buffers rather than copy
                dy, a_dy = a_dy, dy
                ds, a_ds = a_ds, ds
                dlam, a_dlam = a_dlam, dlam
                dzl, a_dzl = a_dzl, dzl
                dzu, a_dzu = a_dzu, dzu
                a_dz = dz
                a_dzz = dzz
            else:
                step = min(1.0, (FINAL_STEP if final else STEP_TO_BOUNDARY) * amax)
                for k in range(big_n):
                    y[k] += step * dy[k]
                    tl[k] += step * dy[k]
                    tu[k] -= step * dy[k]
                    zl[k] += step * dzl[k]
                    zu[k] += step * dzu[k]
                for j in range(n_rows):
                    s[j] += step * ds[j]
                    lam[j] += step * dlam[j]
                z += step * dz
                zz += step * dzz
    # Round-off may stall the very last steps: the best iterate stands if it is within ten
    # times the tolerances.
    status = OPTIMAL if best_merit <= 10.0 else NOT_CONVERGED
    for k in range(big_n):
        if not free[k]:
            best_y[k] = lo[k]
    converged = best_y.copy()
    if merit <= 1.0:
        # Active-set identification at the converged iterate: a variable whose slack to a
        # bound is far below its dual there sits at that bound, up to the gap; put it on
        # it, so that a trade the optimum does not make is 0 rather than dust. (Where slack
        # and dual are alike the variable is left alone: a degenerate tie.)
        for k in range(big_n):
            if free[k]:
                if tl[k] < SNAP * zl[k]:
                    best_y[k] = lo[k]
                elif tu[k] < SNAP * zu[k]:
                    best_y[k] = up[k]
    if status == OPTIMAL:  # the snap may have pushed a binding row past its bound
        _restore_rows(best_y, converged, lo, up, hold, n, slots, a_w, alpha, beta, g, rhs, cr)
    return status, best_y, best_z, it
