"""The numerical core of :mod:`planner.lotqp`: a structured primal-dual interior-point method.

The program, in fractions of account value (``n`` securities with ``L`` lot slots each,
security ``i`` owning slots ``i*L .. i*L+L-1``; ``y = (x, b)`` the lot sales and the buys)::

    minimise    1/2 w'Qw + q'w + c'y + cz z
    subject to  w = hold - S x + b                  (S sums a security's lot slots)
                lo <= y <= up,  z >= 0
                class_lo <= A w <= class_hi         (A: asset-class membership)
                w_lo <= w <= w_hi
                G y + gz z <= g                     (a few dense rows: cash, turnover, gain
                                                     limits, sale floors, the tax carry row)

Mehrotra's predictor-corrector on the normal equations. The Newton matrix on ``y`` is
``M = B + U W U' + G' T G``: ``B`` is the diagonal barrier term of the boxes, ``U' y = -S x
+ b`` maps trades to weights, ``W = Q + A' T_A A + T_w`` collects every row written on
``w``, and ``T`` weighs the dense rows. With ``D_i = u_i' B_i^{-1} u_i`` per security,
``(B + U W U')^{-1} = Pi + Y (W + D^{-1})^{-1} Y'`` where ``Pi`` is the block inverse
projected off ``u_i`` and ``Y = B^{-1} U D^{-1}``: one dense ``n x n`` Cholesky per step (or,
for a factor risk model, a Woodbury solve of size factors + classes) whatever the number
of lots, then an ``r x r`` Schur complement for the dense rows.

Two details keep it accurate near the optimum, where barrier weights span twenty orders of
magnitude: projections are taken relative to each block's largest-weight entry (an
interior lot's huge weight would otherwise cancel catastrophically), and the carry slack
``z``, which sits in one row only, is eliminated analytically, so that row enters with the
harmonic mean of its dual and ``z``'s barrier weight.

Infeasibility is not certified here (only inconsistent boxes are reported): a run that
does not converge returns a status the caller answers by asking another solver.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OPTIMAL = 0
INFEASIBLE = 1
NOT_CONVERGED = 2

FIXED_EPS = 1e-12
"""A variable whose box is narrower than this (fraction of V) is fixed at its lower end."""
STEP_TO_BOUNDARY = 0.99
"""Fraction of the step to the boundary of the positive orthant taken each iteration."""
X_START = 0.3
"""Starting lot sales as a fraction of each lot's cap (tuned on the benchmark books)."""
B_START = 0.03
"""Starting buys above their floor, and the carry slack (fractions of V)."""
MU_START = 3e-3
"""Starting complementarity of every bound and row."""


@njit(cache=True)
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


@njit(cache=True)
def _cho_solve(c, v):
    """Solve ``(C C') x = v`` in place for the lower factor ``c``."""
    n = c.shape[0]
    for i in range(n):
        s = v[i]
        for k in range(i):
            s -= c[i, k] * v[k]
        v[i] = s / c[i, i]
    for i in range(n - 1, -1, -1):
        s = v[i]
        for k in range(i + 1, n):
            s -= c[k, i] * v[k]
        v[i] = s / c[i, i]


@njit(cache=True)
def _trade_weights(y, hold, n, slots, out):
    """``out = hold + U' y`` (post-trade weights; pass zeros as ``hold`` for a step)."""
    m = n * slots
    for i in range(n):
        s = hold[i] + y[m + i]
        for k in range(i * slots, (i + 1) * slots):
            s -= y[k]
        out[i] = s


@njit(cache=True)
def _q_times(w, use_dense, q_dense, q_x, q_d):
    if use_dense:
        return q_dense @ w
    return q_x.T @ (q_x @ w) + q_d * w


@njit(cache=True)
def _rows_of(y, w, klass, n_class, cr_class, cr_sign, wr_sec, wr_sign, g, out):
    """Row activities ``G_j`` at ``(y, w)``: class rows, weight rows, then dense rows."""
    n_cr = cr_class.shape[0]
    n_wr = wr_sec.shape[0]
    class_w = np.zeros(n_class)
    for i in range(w.shape[0]):
        if klass[i] >= 0:
            class_w[klass[i]] += w[i]
    for j in range(n_cr):
        out[j] = cr_sign[j] * class_w[cr_class[j]]
    for j in range(n_wr):
        out[n_cr + j] = wr_sign[j] * w[wr_sec[j]]
    base = n_cr + n_wr
    for j in range(g.shape[0]):
        s = 0.0
        gj = g[j]
        for k in range(y.shape[0]):
            s += gj[k] * y[k]
        out[base + j] = s


@njit(cache=True)
def _rows_transpose(v, klass, n_class, cr_class, cr_sign, wr_sec, wr_sign, g, n, out_w, out_y):
    """``G' v`` for a row-space ``v``: the rows on ``w`` collect in ``out_w`` (the caller
    routes it through ``U``), the dense rows go straight to ``out_y``."""
    n_cr = cr_class.shape[0]
    n_wr = wr_sec.shape[0]
    out_w[:] = 0.0
    if n_cr:
        per_class = np.zeros(n_class)
        for j in range(n_cr):
            per_class[cr_class[j]] += cr_sign[j] * v[j]
        for i in range(n):
            if klass[i] >= 0:
                out_w[i] += per_class[klass[i]]
    for j in range(n_wr):
        out_w[wr_sec[j]] += wr_sign[j] * v[n_cr + j]
    out_y[:] = 0.0
    base = n_cr + n_wr
    for j in range(g.shape[0]):
        vj = v[base + j]
        if vj != 0.0:
            gj = g[j]
            for k in range(out_y.shape[0]):
                out_y[k] += gj[k] * vj


@njit(cache=True)
def _add_u(vw, n, slots, out_y):
    """``out_y += U vw``: ``-vw_i`` on security ``i``'s lots, ``+vw_i`` on its buy."""
    m = n * slots
    for i in range(n):
        for k in range(i * slots, (i + 1) * slots):
            out_y[k] -= vw[i]
        out_y[m + i] += vw[i]


@njit(cache=True)
def _a1_solve(v, out, e, delta, anchor, n, slots, free_idx, use_dense, kchol, kd, kz, kinner):
    """``out = (B + U W U')^{-1} v`` (``e``: inverse barrier weights, 0 for fixed)."""
    m = n * slots
    nf = free_idx.shape[0]
    mean = np.empty(nf)
    shift = np.empty(nf)
    star = np.empty(nf)
    for f in range(nf):
        i = free_idx[f]
        a = anchor[i]
        # u.v at the anchor (lots have u = -1, the buy u = +1)
        st = v[a] if a >= m else -v[a]
        acc = e[m + i] * (v[m + i] - st)
        for k in range(i * slots, (i + 1) * slots):
            acc += e[k] * (-v[k] - st)
        sh = acc / delta[i]
        star[f] = st
        shift[f] = sh
        mean[f] = st + sh
    # psi = K^{-1} mean
    if use_dense:
        psi = mean.copy()
        _cho_solve(kchol, psi)
    else:
        dv = mean / kd
        t = kz.T @ dv
        _cho_solve(kinner, t)
        psi = dv - (kz @ t) / kd
    out[:] = 0.0
    for f in range(nf):
        i = free_idx[f]
        st, sh = star[f], shift[f]
        r = psi[f] / delta[i]
        for k in range(i * slots, (i + 1) * slots):
            out[k] = -e[k] * ((-v[k] - st) - sh) - e[k] * r
        out[m + i] = e[m + i] * ((v[m + i] - st) - sh) + e[m + i] * r


@njit(cache=True)
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
    g,
    gz,
    g_rhs,
    tol,
    max_iter,
):
    """Solve the program of the module doc for ``y = (x, b)`` with bounds ``lo <= y <= up``
    and linear cost ``cost``. Returns ``(status, y, z, iterations)``."""
    n = hold.shape[0]
    big_n = lo.shape[0]
    m = big_n - n
    r = g_rhs.shape[0]
    n_class = class_lo.shape[0]

    y = lo.copy()
    z = 0.0
    free = np.empty(big_n, np.bool_)
    for k in range(big_n):
        if up[k] < lo[k] - FIXED_EPS:
            return INFEASIBLE, y, z, 0
        free[k] = up[k] - lo[k] > FIXED_EPS

    # Rows on w: classes (both sides) and weight limits; sign +1: a'w <= rhs, -1: -a'w <= -lo.
    n_cr = 0
    for c in range(n_class):
        n_cr += np.isfinite(class_lo[c]) + np.isfinite(class_hi[c])
    n_wr = 0
    for i in range(n):
        n_wr += np.isfinite(w_lo[i]) + np.isfinite(w_hi[i])
    n_rows = n_cr + n_wr + r
    cr_class = np.empty(n_cr, np.int64)
    cr_sign = np.empty(n_cr)
    wr_sec = np.empty(n_wr, np.int64)
    wr_sign = np.empty(n_wr)
    rhs = np.empty(n_rows)
    j = 0
    for c in range(n_class):
        if np.isfinite(class_lo[c]):
            cr_class[j], cr_sign[j], rhs[j] = c, -1.0, -class_lo[c]
            j += 1
        if np.isfinite(class_hi[c]):
            cr_class[j], cr_sign[j], rhs[j] = c, 1.0, class_hi[c]
            j += 1
    for i in range(n):
        if np.isfinite(w_lo[i]):
            wr_sec[j - n_cr], wr_sign[j - n_cr], rhs[j] = i, -1.0, -w_lo[i]
            j += 1
        if np.isfinite(w_hi[i]):
            wr_sec[j - n_cr], wr_sign[j - n_cr], rhs[j] = i, 1.0, w_hi[i]
            j += 1
    base = n_cr + n_wr
    for j in range(r):
        rhs[base + j] = g_rhs[j]
    carry = -1
    for j in range(r):
        if gz[j] != 0.0:
            carry = j

    # Starting point: lots part-way into their boxes, buys a little above their floor.
    for k in range(big_n):
        if free[k]:
            y[k] = lo[k] + min(X_START * (up[k] - lo[k]), B_START) if k >= m else X_START * up[k]
    if has_z:
        z = B_START
    zl = np.zeros(big_n)
    zu = np.zeros(big_n)
    for k in range(big_n):
        if free[k]:
            zl[k] = MU_START / (y[k] - lo[k])
            zu[k] = MU_START / (up[k] - y[k])
    zz = MU_START / z if has_z else 0.0
    w = np.empty(n)
    _trade_weights(y, hold, n, slots, w)
    act = np.empty(n_rows)
    _rows_of(y, w, klass, n_class, cr_class, cr_sign, wr_sec, wr_sign, g, act)
    s = np.empty(n_rows)
    lam = np.empty(n_rows)
    for j in range(n_rows):
        zterm = gz[j - base] * z if j >= base else 0.0
        s[j] = max(rhs[j] - act[j] - zterm, 1e-2)
        lam[j] = MU_START / s[j]
    n_comp = 2 * int(free.sum()) + (1 if has_z else 0) + n_rows

    # Work arrays.
    rd = np.empty(big_n)
    rp = np.empty(n_rows)
    e = np.zeros(big_n)
    e_inv = np.zeros(big_n)
    delta = np.zeros(n)
    anchor = np.zeros(n, np.int64)
    theta = np.empty(n_rows)
    vw = np.empty(n)
    gty = np.empty(big_n)
    h = np.empty(big_n)
    dy = np.empty(big_n)
    dw = np.empty(n)
    dact = np.empty(n_rows)
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
    r_lo = np.empty(big_n)
    r_up = np.empty(big_n)
    rho = np.empty(n_rows)
    vg = np.empty((r, big_n))
    c1 = np.empty((r, r))
    coef = np.empty(r)
    best_y = y.copy()
    best_z = z
    best_merit = np.inf
    it = 0
    for it in range(max_iter + 1):
        # ---- residuals ---------------------------------------------------------------------
        _trade_weights(y, hold, n, slots, w)
        grad_w = _q_times(w, use_dense, q_dense, q_x, q_d) + q_lin
        _rows_of(y, w, klass, n_class, cr_class, cr_sign, wr_sec, wr_sign, g, act)
        for j in range(n_rows):
            zterm = gz[j - base] * z if j >= base else 0.0
            rp[j] = act[j] + zterm + s[j] - rhs[j]
        _rows_transpose(lam, klass, n_class, cr_class, cr_sign, wr_sec, wr_sign, g, n, vw, rd)
        vw += grad_w
        _add_u(vw, n, slots, rd)
        comp = 0.0
        dres = 0.0
        for k in range(big_n):
            if free[k]:
                rd[k] += cost[k] - zl[k] + zu[k]
                comp += (y[k] - lo[k]) * zl[k] + (up[k] - y[k]) * zu[k]
                dres = max(dres, abs(rd[k]))
            else:
                rd[k] = 0.0
        rdz = 0.0
        if has_z:
            rdz = z_cost - zz
            for j in range(r):
                rdz += gz[j] * lam[base + j]
            comp += z * zz
            dres = max(dres, abs(rdz))
        pres = 0.0
        for j in range(n_rows):
            comp += s[j] * lam[j]
            pres = max(pres, abs(rp[j]))
        mu = comp / max(n_comp, 1)
        merit = max(pres, dres, 10.0 * comp)
        if merit < best_merit:
            best_merit = merit
            best_y[:] = y
            best_z = z
        if merit <= tol or not np.isfinite(merit) or merit > 1e6 * best_merit:
            break
        if it == max_iter:
            break

        # ---- factorisation -----------------------------------------------------------------
        for k in range(big_n):
            if free[k]:
                e_inv[k] = zl[k] / (y[k] - lo[k]) + zu[k] / (up[k] - y[k])
                e[k] = 1.0 / e_inv[k]
            else:
                e_inv[k] = 0.0
                e[k] = 0.0
        nf = 0
        for i in range(n):
            best = e[m + i]
            total = best
            anchor[i] = m + i
            for k in range(i * slots, (i + 1) * slots):
                total += e[k]
                if e[k] > best:
                    best = e[k]
                    anchor[i] = k
            delta[i] = total
            if total > 0.0:
                nf += 1
        free_idx = np.empty(nf, np.int64)
        f = 0
        for i in range(n):
            if delta[i] > 0.0:
                free_idx[f] = i
                f += 1
        for j in range(n_rows):
            theta[j] = lam[j] / s[j]
        zbar = zz / z if has_z else 0.0
        if carry >= 0:
            # z eliminated: the carry row's weight is the harmonic mean of its own and z's.
            tc = theta[base + carry]
            theta[base + carry] = tc * zbar / (tc + zbar)
        class_t = np.zeros(n_class)
        for j in range(n_cr):
            class_t[cr_class[j]] += theta[j]
        w_diag = np.zeros(n)
        for j in range(n_wr):
            w_diag[wr_sec[j]] += theta[n_cr + j]
        kchol = np.zeros((0, 0))
        kd = np.zeros(0)
        kz = np.zeros((0, 0))
        kinner = np.zeros((0, 0))
        if use_dense:
            kchol = np.empty((nf, nf))
            for a in range(nf):
                ia = free_idx[a]
                ca = klass[ia]
                for c in range(a + 1):
                    ic = free_idx[c]
                    v = q_dense[ia, ic]
                    if ca >= 0 and ca == klass[ic]:
                        v += class_t[ca]
                    kchol[a, c] = v
                kchol[a, a] += w_diag[ia] + 1.0 / delta[ia]
            _cholesky(kchol, 1e-14)
        else:
            k_f = q_x.shape[0]
            kd = np.empty(nf)
            kz = np.zeros((nf, k_f + n_class))
            for a in range(nf):
                ia = free_idx[a]
                kd[a] = q_d[ia] + w_diag[ia] + 1.0 / delta[ia]
                for c in range(k_f):
                    kz[a, c] = q_x[c, ia]
                if klass[ia] >= 0:
                    kz[a, k_f + klass[ia]] = np.sqrt(class_t[klass[ia]])
            kinner = (kz.T / kd) @ kz
            for c in range(k_f + n_class):
                kinner[c, c] += 1.0
            _cholesky(kinner, 1e-14)
        # dense rows: V = A1^{-1} G' and the Schur complement C1 = T^{-1} + G V
        for j in range(r):
            _a1_solve(
                g[j], vg[j], e, delta, anchor, n, slots, free_idx, use_dense, kchol, kd, kz, kinner
            )
        for j in range(r):
            for k in range(j + 1):
                acc = 0.0
                gj = g[j]
                vk = vg[k]
                for t in range(big_n):
                    acc += gj[t] * vk[t]
                c1[j, k] = acc
            c1[j, j] += 1.0 / theta[base + j]
        _cholesky(c1, 1e-15)

        # ---- predictor (phase 0) and corrector (phase 1) -----------------------------------
        sigma_mu = 0.0
        a_dz = 0.0
        a_dzz = 0.0
        for phase in range(2):
            for j in range(n_rows):
                r_sl[j] = s[j] * lam[j]
            for k in range(big_n):
                r_lo[k] = (y[k] - lo[k]) * zl[k]
                r_up[k] = (up[k] - y[k]) * zu[k]
            r_zz = z * zz
            if phase == 1:
                for j in range(n_rows):
                    r_sl[j] += a_ds[j] * a_dlam[j] - sigma_mu
                for k in range(big_n):
                    r_lo[k] += a_dy[k] * a_dzl[k] - sigma_mu
                    r_up[k] += -a_dy[k] * a_dzu[k] - sigma_mu
                r_zz += a_dz * a_dzz - sigma_mu
            for j in range(n_rows):
                rho[j] = (-r_sl[j] + lam[j] * rp[j]) / s[j]
            # h = -rd - G' rho - r_lo / t_lo + r_up / t_up
            _rows_transpose(rho, klass, n_class, cr_class, cr_sign, wr_sec, wr_sign, g, n, vw, gty)
            _add_u(vw, n, slots, gty)
            for k in range(big_n):
                if free[k]:
                    h[k] = -rd[k] - gty[k] - r_lo[k] / (y[k] - lo[k]) + r_up[k] / (up[k] - y[k])
                else:
                    h[k] = 0.0
            hz = 0.0
            tc = 0.0
            if has_z:
                hz = -rdz - r_zz / z
                for j in range(r):
                    hz -= gz[j] * rho[base + j]
                tc = lam[base + carry] / s[base + carry]
                gc = g[carry]
                scale = tc * hz / (zbar + tc)
                for k in range(big_n):
                    h[k] += gc[k] * scale
            # Newton direction
            _a1_solve(h, dy, e, delta, anchor, n, slots, free_idx, use_dense, kchol, kd, kz, kinner)
            for j in range(r):
                acc = 0.0
                gj = g[j]
                for k in range(big_n):
                    acc += gj[k] * dy[k]
                coef[j] = acc
            _cho_solve(c1, coef)
            for j in range(r):
                vj = vg[j]
                cj = coef[j]
                for k in range(big_n):
                    dy[k] -= vj[k] * cj
            for k in range(big_n):
                if not free[k]:
                    dy[k] = 0.0
            dz = 0.0
            if has_z:
                gc = g[carry]
                acc = 0.0
                for k in range(big_n):
                    acc += gc[k] * dy[k]
                dz = (hz + tc * acc) / (zbar + tc)
            # slacks and duals, and the longest step that keeps them positive
            _trade_weights(dy, np.zeros(n), n, slots, dw)
            _rows_of(dy, dw, klass, n_class, cr_class, cr_sign, wr_sec, wr_sign, g, dact)
            amax = 1.0
            for j in range(n_rows):
                zterm = gz[j - base] * dz if j >= base else 0.0
                ds[j] = -rp[j] - dact[j] - zterm
                dlam[j] = (-r_sl[j] - lam[j] * ds[j]) / s[j]
                if ds[j] < 0.0:
                    amax = min(amax, -s[j] / ds[j])
                if dlam[j] < 0.0:
                    amax = min(amax, -lam[j] / dlam[j])
            for k in range(big_n):
                if free[k]:
                    t_lo = y[k] - lo[k]
                    t_up = up[k] - y[k]
                    dzl[k] = (-r_lo[k] - zl[k] * dy[k]) / t_lo
                    dzu[k] = (-r_up[k] + zu[k] * dy[k]) / t_up
                    if dy[k] < 0.0:
                        amax = min(amax, -t_lo / dy[k])
                    elif dy[k] > 0.0:
                        amax = min(amax, t_up / dy[k])
                    if dzl[k] < 0.0:
                        amax = min(amax, -zl[k] / dzl[k])
                    if dzu[k] < 0.0:
                        amax = min(amax, -zu[k] / dzu[k])
                else:
                    dzl[k] = 0.0
                    dzu[k] = 0.0
            dzz = 0.0
            if has_z:
                dzz = (-r_zz - zz * dz) / z
                if dz < 0.0:
                    amax = min(amax, -z / dz)
                if dzz < 0.0:
                    amax = min(amax, -zz / dzz)
            if phase == 0:
                # Mehrotra's centring from the affine step's complementarity.
                comp_aff = 0.0
                for j in range(n_rows):
                    comp_aff += (s[j] + amax * ds[j]) * (lam[j] + amax * dlam[j])
                for k in range(big_n):
                    if free[k]:
                        comp_aff += (y[k] - lo[k] + amax * dy[k]) * (zl[k] + amax * dzl[k])
                        comp_aff += (up[k] - y[k] - amax * dy[k]) * (zu[k] + amax * dzu[k])
                if has_z:
                    comp_aff += (z + amax * dz) * (zz + amax * dzz)
                sigma = min((comp_aff / max(comp, 1e-300)) ** 3, 1.0)
                sigma_mu = sigma * mu
                a_dy[:] = dy
                a_ds[:] = ds
                a_dlam[:] = dlam
                a_dzl[:] = dzl
                a_dzu[:] = dzu
                a_dz = dz
                a_dzz = dzz
            else:
                alpha = min(1.0, STEP_TO_BOUNDARY * amax)
                for k in range(big_n):
                    y[k] += alpha * dy[k]
                    zl[k] += alpha * dzl[k]
                    zu[k] += alpha * dzu[k]
                for j in range(n_rows):
                    s[j] += alpha * ds[j]
                    lam[j] += alpha * dlam[j]
                z += alpha * dz
                zz += alpha * dzz
    # Round-off may stall the very last steps: the best iterate stands if it is within a
    # hundred times the tolerance.
    status = OPTIMAL if best_merit <= 100.0 * tol else NOT_CONVERGED
    for k in range(big_n):
        if not free[k]:
            best_y[k] = lo[k]
    return status, best_y, best_z, it
