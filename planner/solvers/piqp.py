"""PIQP set up once per template; each account only changes vectors.

cvxpy canonicalises a DPP problem into an affine map from the parameter vector ``theta``
to the solver's data. For a template every matrix (``P``, the equality and inequality
matrices) is the same for all accounts, and the vectors (``q``, ``b``, ``h``) are sparse
linear functions of ``theta``. This module reads those maps once from cvxpy's own
canonicalisation (``get_problem_data``), turns every single-variable inequality row
(``sell <= sell_cap``, ``buy >= 0``, ...) into PIQP's native box bounds, sets PIQP up once,
and then per account computes the vectors with two sparse mat-vecs and calls
``update`` + ``solve``. It is an exact reformulation of the cvxpy problem, not a second
model: tests check it against cvxpy's own solve.

Parameters that enter a matrix (the gain-budget rows) are supported: their matrix values are
recomputed per account with the fixed sparsity pattern and passed to ``update`` only when
they changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import piqp
import scipy.sparse as sp

from planner.errors import SolverError

DENSE_OBJECTIVE_MAX = 600
"""Variables in the quadratic term up to which the objective is read with a dense block."""
_ONE = np.ones(1)


@dataclass(frozen=True)
class FastResult:
    status: str  # optimal | infeasible | <piqp status>
    x: np.ndarray
    objective: float
    solve_ms: float


class FastPIQP:
    """A compiled template's QP held in one PIQP solver object."""

    def __init__(self, problem: cp.Problem, settings: dict | None = None):
        for p in problem.parameters():
            if p.value is None:
                raise SolverError(f"parameter {p.name()} has no value")
        data, _, _ = problem.get_problem_data(cp.PIQP)
        prog = data["param_prob"]
        self._prog = prog
        self.n_var = prog.x.size
        self._param_order = sorted(
            (
                (col, p)
                for p in problem.parameters()
                for pid, col in prog.param_id_to_col.items()
                if pid == p.id
            ),
            key=lambda t: t[0],
        )
        self._param_cols = {p.name(): (col, p.size) for col, p in self._param_order}
        self._names = [p.name() for _, p in self._param_order]
        ends = [col + p.size for col, p in self._param_order]
        starts = [col for col, _ in self._param_order]
        self._contiguous = starts == [0, *ends[:-1]] and (
            not ends or ends[-1] == prog.total_param_size
        )
        self._theta = np.zeros(prog.total_param_size + 1)
        self._theta[-1] = 1.0

        # q and the constant d: rows 0..n-1 and n of the q tensor.
        q_tensor = sp.csr_matrix(prog.q)
        self._q_map = q_tensor[: self.n_var]
        self._d_map = np.asarray(q_tensor[self.n_var].toarray()).ravel()
        self._q_map.sort_indices()

        # P: must not depend on parameters (the tracking-error factor is a constant).
        prog.reduced_P.cache(keep_zeros=True)
        p_vals = prog.reduced_P.reduced_mat
        if p_vals is not None and sp.csr_matrix(p_vals)[:, :-1].nnz:
            raise SolverError("quadratic term depends on parameters; fast path unavailable")
        P, _ = prog.reduced_P.get_matrix_from_tensor(self._theta, with_offset=False)
        self.P = sp.triu(sp.csc_matrix(P), format="csc")
        # The objective of a solution is read per solve: over the few variables P touches
        # (the security weights) a dense block is a few microseconds, a sparse product ten
        # times that.
        full = (self.P + sp.triu(self.P, k=1).T).tocsc()
        self._p_support = np.unique(full.nonzero()[0])
        self._p_dense = (
            full[self._p_support][:, self._p_support].toarray()
            if len(self._p_support) <= DENSE_OBJECTIVE_MAX
            else None
        )
        self._p_full = full

        # [A | b] stacked for equality (zero cone) then inequality (nonneg cone) rows.
        prog.reduced_A.cache(keep_zeros=True)
        reduced = sp.csr_matrix(prog.reduced_A.reduced_mat)
        indices, indptr, shape = prog.reduced_A.problem_data_index
        n_rows = int(shape[0])
        start_b = int(indptr[self.n_var])
        self._a_rows = np.asarray(indices[:start_b])
        self._a_indptr = np.asarray(indptr[: self.n_var + 1])
        self._a_map = reduced[:start_b]
        b_rows = np.asarray(indices[start_b:])
        b_map = reduced[start_b:]
        # Scatter the offset entries into a dense vector of all rows with one sparse matrix.
        scatter = sp.csr_matrix(
            (np.ones(len(b_rows)), (b_rows, np.arange(len(b_rows)))), shape=(n_rows, len(b_rows))
        )
        self._bg_map = (scatter @ b_map).tocsr()
        self.n_eq = int(prog.cone_dims.zero)
        self.n_rows = n_rows
        # q and the row offsets from one product per solve.
        self._vector_map = sp.vstack([self._q_map, self._bg_map], format="csr")
        self._vector_map.sort_indices()

        AF = self._matrix(self._a_map @ self._theta)
        self._structure(AF)
        # Where each entry of [A | G] sits in cvxpy's vector of matrix values: a matrix of
        # entry numbers sliced like the real one gives the permutation once, so a new
        # account's matrices are two fancy-indexing copies, with no sparse slicing.
        numbered = self._matrix(np.arange(1.0, len(self._a_rows) + 1.0))
        eq = numbered[: self.n_eq].tocsc()
        general = numbered[self.n_eq :][self._general_rows].tocsc()
        self._eq_layout = (eq.data.astype(np.int64) - 1, eq.indices, eq.indptr, eq.shape)
        self._g_layout = (
            general.data.astype(np.int64) - 1,
            general.indices,
            general.indptr,
            general.shape,
        )
        # Parameters that enter a matrix (per-lot tax rates, gain-budget rows): the matrices
        # are rebuilt only when one of their values changes, i.e. once per account.
        param_entries = self._a_map[:, :-1].tocsr()
        self._a_param_cols = np.unique(param_entries.indices)
        # Only a matrix with parameter-dependent entries is passed to PIQP's update (the
        # equality rows carry the per-lot tax rates; the general rows only with gain limits).
        varying = np.diff(param_entries.indptr) > 0
        self._eq_varies = bool(varying[self._eq_layout[0]].any())
        self._g_varies = bool(varying[self._g_layout[0]].any())
        self._last_a_key: np.ndarray | None = None
        self._solver = None
        self._settings = settings or {}
        self.last_solver_ms = 0.0  # PIQP's solve() alone, last call
        self.last_update_ms = 0.0  # PIQP's update() alone, last call
        self.piqp_ms_total = 0.0  # PIQP's update() + solve() over every call so far

    @staticmethod
    def _layout(values, positions, indices, indptr, shape) -> sp.csc_matrix:
        return sp.csc_matrix((values[positions], indices, indptr), shape=shape)

    def _matrix(self, values: np.ndarray) -> sp.csc_matrix:
        return sp.csc_matrix(
            (values, self._a_rows, self._a_indptr), shape=(self.n_rows, self.n_var)
        )

    def _structure(self, AF: sp.csc_matrix) -> None:
        """Split rows into equalities, general inequalities and single-variable bounds."""
        ineq = AF[self.n_eq :].tocsr()
        counts = np.diff(ineq.indptr)
        single = np.flatnonzero(counts == 1)
        self._bound_rows = single
        self._bound_var = ineq.indices[ineq.indptr[single]]
        self._bound_coef = ineq.data[ineq.indptr[single]]
        if np.any(self._bound_coef == 0):
            raise SolverError("zero coefficient in a bound row")
        self._general_rows = np.flatnonzero(counts != 1)
        # Several bound rows may bound one variable: take the tightest with one reduceat
        # over rows sorted by variable (ufunc.at is an order of magnitude slower).
        is_upper = -self._bound_coef > 0
        self._bounds = []
        for side in (is_upper, ~is_upper):
            rows = np.flatnonzero(side)
            order = rows[np.argsort(self._bound_var[rows], kind="stable")]
            var = self._bound_var[order]
            starts = np.flatnonzero(np.r_[True, var[1:] != var[:-1]]) if len(var) else var
            self._bounds.append((order, var[starts] if len(var) else var, starts))
        # Most variables have at most one bound row per side: then no reduction is needed.
        self._single_upper = len(self._bounds[0][2]) == len(self._bounds[0][0])
        self._single_lower = len(self._bounds[1][2]) == len(self._bounds[1][0])
        self._no_upper = np.full(self.n_var, np.inf)
        self._no_lower = np.full(self.n_var, -np.inf)

    def _theta_from_problem(self) -> np.ndarray:
        theta = self._theta
        for col, p in self._param_order:
            value = np.asarray(p.value, dtype=float)
            theta[col : col + value.size] = value.ravel(order="F")
        return theta

    def _theta_from_values(self, values: dict[str, np.ndarray]) -> np.ndarray:
        # Parameters fill theta's columns in order, back to back, then the constant 1.
        if self._contiguous:
            self._theta = np.concatenate([*(np.ravel(values[k]) for k in self._names), _ONE])
            return self._theta
        theta = self._theta
        for name, (col, size) in self._param_cols.items():
            theta[col : col + size] = np.ravel(values[name])
        return theta

    def solve(self, values: dict[str, np.ndarray] | None = None) -> FastResult:
        """Solve with ``values`` (parameter name -> array), or else with the values
        currently set on the cvxpy problem."""
        theta = self._theta_from_problem() if values is None else self._theta_from_values(values)
        start = time.perf_counter()
        vectors = self._vector_map @ theta
        q = vectors[: self.n_var]
        bg = vectors[self.n_var :]
        # cvxpy's cone form is  A x + b in K: equalities  A_eq x = -b_eq ; inequalities
        # -A_in x <= b_in. Bounds: a single-variable row  -a x_j <= b  gives x_j <= -b/a
        # (a < 0) or x_j >= -b/a (a > 0).
        b_eq = -bg[: self.n_eq]
        g = bg[self.n_eq :]
        limit = g[self._bound_rows] / -self._bound_coef
        upper = self._no_upper.copy()
        lower = self._no_lower.copy()
        (u_rows, u_vars, u_starts), (l_rows, l_vars, l_starts) = self._bounds
        if len(u_rows):
            upper[u_vars] = (
                limit[u_rows]
                if self._single_upper
                else np.minimum.reduceat(limit[u_rows], u_starts)
            )
        if len(l_rows):
            lower[l_vars] = (
                limit[l_rows]
                if self._single_lower
                else np.maximum.reduceat(limit[l_rows], l_starts)
            )
        h = g[self._general_rows]
        a_key = theta[self._a_param_cols]
        matrices = {}
        if self._solver is None or not np.array_equal(a_key, self._last_a_key):
            a_values = self._a_map @ theta
            if self._solver is None or self._eq_varies:
                matrices["A"] = self._layout(a_values, *self._eq_layout)
            if self._solver is None or self._g_varies:
                matrices["G"] = self._layout(-a_values, *self._g_layout)
            self._last_a_key = a_key.copy()
        if self._solver is None:
            solver = piqp.SparseSolver()
            for key, value in self._settings.items():
                setattr(solver.settings, key, value)
            solver.setup(P=self.P, c=q, b=b_eq, h_u=h, x_l=lower, x_u=upper, **matrices)
            self._solver = solver
            self.last_update_ms = 0.0
        else:
            update_start = time.perf_counter()
            self._solver.update(c=q, b=b_eq, h_u=h, x_l=lower, x_u=upper, **matrices)
            self.last_update_ms = (time.perf_counter() - update_start) * 1e3
        solver_start = time.perf_counter()
        status = self._solver.solve()
        end = time.perf_counter()
        ms = (end - start) * 1e3
        self.last_solver_ms = (end - solver_start) * 1e3
        self.piqp_ms_total += self.last_update_ms + self.last_solver_ms
        x = np.asarray(self._solver.result.x, dtype=float)
        # Status enums compare cheaply; their str() costs tens of microseconds.
        if status == piqp.PIQP_SOLVED:
            objective = self._objective(x, q, theta)
            return FastResult("optimal", x, objective, ms)
        if status == piqp.PIQP_PRIMAL_INFEASIBLE:
            return FastResult("infeasible", x, float("nan"), ms)
        return FastResult(str(status).split(".")[-1].lower(), x, float("nan"), ms)

    def _objective(self, x: np.ndarray, q: np.ndarray, theta: np.ndarray) -> float:
        if self._p_dense is not None:
            xs = x[self._p_support]
            quadratic = xs @ self._p_dense @ xs
        else:
            quadratic = x @ (self._p_full @ x)
        return float(0.5 * quadratic + q @ x + self._d_map @ theta)

    def columns(self, variable: cp.Variable) -> slice:
        """Where ``variable`` sits in the solver's x."""
        col = self._prog.var_id_to_col[variable.id]
        return slice(col, col + variable.size)
