"""LP-guided solver for large rounds (10k-1M applications): dual prices, rounding, repair, polish.

The model (see `allocation.problem`) has, besides one "at most one option" row per item and
one cap row per company, only D = R + Q global rows: one per GPU type, the budget, one per
quota. Writing every global row as  sum A[d, i, l] x[i, l] <= b[d]  (a quota row
sum cover >= 0 becomes  sum -cover <= 0), the Lagrangian dual function of prices
lam >= 0 (D numbers) is

    f(lam) = lam . b + sum over blocks  max(0, max over the block's columns of (v - lam . A))

where a *block* is one item (its columns: its allowed options) or, when a company's cap can
bind, one company (its columns: every combination of options of its items that respects the
cap, enumerated exactly). Every f(lam) is a valid upper bound on the integer optimum (weak
duality); its minimum is the LP bound with the company blocks taken as their convex hulls,
i.e. at least as strong as the plain LP relaxation. f is convex and piecewise linear in D <= ~8
variables, and one evaluation is a matrix-vector product over the columns plus a per-block
maximum (vectorised numpy, ~0.1 s at 1M applications). It is minimised by a box-step
stabilised cutting-plane method (the small master LP over the prices is solved by GLOP). With
GPU capacity by month (D = GPU types x months + budget + quotas, ~27) f is modelled in parts, a
cut per part and evaluation (items of one duration and main GPU type; the company blocks):
~20 evaluations instead of ~160 with one cut for the whole of f.

A solution is then built from the prices:
  1. rounding: every block takes its best column at the final prices (the Lagrangian solution);
  2. repair: while a capacity/budget row is over or a quota is short, drop the funded items
     with the lowest reduced value that use the broken row (exact int64 arithmetic);
  3. greedy top-up: offer every (item, higher option) in order of reduced value, accept
     when it fits every limit (exact arithmetic, vectorised prefix passes);
  4. polish: CP-SAT on the undecided core (the items whose reduced value is nearest to zero,
     whole companies), everything else fixed, hinted with the current solution, under a
     deterministic time limit. The core is small, so its objective stays far below int64
     limits (values ~1e13 x a few thousand items) without rescaling. By month: the core is
     sized by options (MONTH_CORE_OPTIONS), and every step stops once the allocation is within
     MONTH_POLISH_TARGET_GAP of the bound; until then
  5. by month, instead of the polish: start moves (move_starts: the core beside the funded
     projects outside it whose GPU type binds, each free to move its start month at its level
     but not to leave), MONTH_MOVE_ROUNDS rounds; the polish only when they have nothing to
     solve. The rounding and every CP-SAT solve's allocation get the exchange search
     (exchange: one project raised or funded, alone or for another lowered or dropped, in
     exact integers), which finds the one-for-one trades a single-worker CP-SAT tree misses.

Everything is deterministic: fixed iteration counts and tolerances, CP-SAT with a fixed seed
and a deterministic time limit; no wall-clock cut-offs.
The reported bound is min f(lam) over the prices evaluated, rounded up by a margin that covers
floating-point error (1e-12 relative), never a heuristic number.
"""

from __future__ import annotations

import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from ortools.linear_solver import linear_solver_pb2, pywraplp

from allocation.model.money import hours_in_month, month_shares
from allocation.model.problem import AllocationProblem, MonthlyWeight, Solution
from allocation.solve.arrays import float_at_least
from allocation.solve.cpsat import solve_cpsat
from allocation.solve.lp import solve_lp_glop

SOLVER_NAME = "lp-guided (dual prices + rounding + cp-sat polish)"

# company blocks with more combinations than this are not enumerated: their cap is then
# dualised away in the bound (still valid, a little weaker) and enforced by the repair step
MAX_BLOCK_COMBINATIONS = 4096
DUAL_MAX_ITERATIONS = 400
DUAL_REL_TOLERANCE = 1e-10
KNOWN_MIN_TOLERANCE = 1e-9     # relative, f(lam) against a known LP optimum (GLOP's accuracy)
SAMPLE_ITEMS = 20_000           # items in the GLOP warm-start LP
# ... and at most this many columns (item x option): 20k items of a 6-month round (18 options).
# GLOP's time grows faster than the columns: 1M x 12 months (36 options), 20k items: 35.6 s;
# 10k items: 10.4 s (then 44 dual iterations instead of 35, 13.4 s instead of 9.9)
SAMPLE_COLUMNS = 360_000
POLISH_CORE_ITEMS = 1_500
# A month round's core holds at most this many options (CP-SAT's work grows with its Booleans):
# 1,500 items at 6 months x 3 levels; 750 at 12 months, where a core of 1,500 items did not
# improve the 10k round at all in 10 deterministic seconds (5.6e-5 below the bound) and one of
# 763 reached 1.25e-5
MONTH_CORE_OPTIONS = 27_000
POLISH_CORE_FRACTIONS = (0.2, 0.35, 0.5, 1.0)   # LNS core sizes for small problems, one lane
POLISH_PARALLEL_FRACTIONS = (0.35, 0.5)        # beside a whole-problem lane, two or more lanes
# CP-SAT parameters for the one core of a large round. linearization_level 2 (LP over all the
# core's rows) found what level 1 missed when several GPU types bind: 20k rounds with every
# GPU type scarce went from 1.6e-5 / 1.2e-5 to 6.0e-6 / 4.5e-6 below the bound. On OR-Library
# (growing cores) it was worse, 0.053% vs 0.032% mean gap on 27 instances, so it stays here.
LARGE_CORE_PARAMETERS: dict[str, object] = {"linearization_level": 2}
# month rounds: the dual prices items in chunks of this many, so that their reduced values (6
# starts x 3 levels x 8 bytes x 2048 = 0.3 MB) stay in cache while the best option is picked
# (100k x 6 months: one best() 0.066 s in one piece, 0.014 s in chunks of 2048, 0.025 s of 8192)
PRICING_CHUNK_ITEMS = 2048
POLISH_DTIME = 10.0             # CP-SAT deterministic time for the polish
# A large month round's polish stops once the allocation is proven this close to the bound
# (relative), as a MIP gap tolerance: its cores cost 2-3x the wall time per deterministic
# second of a single-period round's (100k: the 1.5k core ends 9.9e-6 below the bound after 5
# of its 10 deterministic seconds, 6 s of wall time, and then searches 25 s more for nothing).
# Single-period rounds polish to the end of their budget (cheap there, and they reach ~1e-7).
MONTH_POLISH_TARGET_GAP = 1e-5
BOUND_FLOAT_MARGIN = 1e-12      # relative, covers float rounding in f(lam)


# ---------------------------------------------------------------------------
# structure: exact rows, blocks and columns
# ---------------------------------------------------------------------------


class MonthRows:
    """The (n, L, D) exact row usage of a month round (GPU type x month rows, budget, negated
    quota rows) without storing it: A[items, options] -> (..., D), A[items, options, cols],
    A[items] -> (k, L, D). See allocation.model.problem.MonthlyWeight."""

    def __init__(self, problem: AllocationProblem):
        self.weight: MonthlyWeight = problem.weight
        self.cover = problem.cover
        self.L = problem.n_options
        self.shape = (problem.n_items, self.L, len(problem.capacity) + len(problem.cover_names))

    def _pairs(self, items, options) -> np.ndarray:
        ii, oo = np.broadcast_arrays(np.asarray(items, np.int64), np.asarray(options, np.int64))
        use = self.weight.usage(ii, oo)
        if len(self.cover):
            use = np.concatenate([use, -self.cover[:, ii.ravel(), oo.ravel()].T], axis=1)
        return use.reshape(*ii.shape, self.shape[2])

    def total(self, items: np.ndarray, options: np.ndarray) -> np.ndarray:
        """(D,) int64: the rows used by options[j] of items[j] together."""
        gpu = self.weight.total(items, options)
        if len(self.cover) == 0:
            return gpu
        return np.concatenate([gpu, -self.cover[:, items, options].sum(axis=1)])

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) == 3:
                return self._pairs(key[0], key[1])[..., key[2]]
            return self._pairs(key[0], key[1])
        items = np.asarray(key, np.int64)
        return self._pairs(items[..., None], np.arange(self.L))


class MonthPricing:
    """Reduced values of a month round computed from the factors of its rows: per item its hours
    per level and type, its duration; the GPU price of a start s is then, per type,
    floor(h/d) * (sum of the prices of months s..s+d-2) + the remainder * the price of month
    s+d-1, from small per-duration tables (no (n, L, D) array). Budget and quota rows do not
    depend on the start: priced per level."""

    def __init__(self, problem: AllocationProblem):
        w: MonthlyWeight = problem.weight
        self.M = M = w.months
        self.T = T = w.hours.shape[2]
        self.Lv = Lv = w.hours.shape[1]
        n = w.hours.shape[0]
        self.order = np.argsort(w.duration, kind="stable")
        dur = w.duration[self.order]
        d = dur[:, None, None]
        h = w.hours[self.order]
        base, last = month_shares(h, d)
        # items sorted by duration, rows (item, level), columns [floor share per type, remainder]
        self.F = np.ascontiguousarray(np.concatenate([base, last], axis=2)
                                      .astype(np.float64).reshape(n * Lv, 2 * T))
        self.FT = np.ascontiguousarray(self.F.T)                        # (2T, n*Lv)
        keys, starts = np.unique(dur, return_index=True)
        ends = np.append(starts[1:], n)
        self.groups = [(int(k), int(a) * Lv, int(b) * Lv) for k, a, b in zip(keys, starts, ends)]
        awarded = w.awarded.reshape(n, Lv, M)
        cover = problem.cover.reshape(len(problem.cover), n, Lv, M)
        if not ((awarded == awarded[:, :, :1]).all() and (cover == cover[..., :1]).all()):
            raise ValueError("month round: budget and quota rows must not depend on the start")
        # per level (original item order), for the top-up's filter: value and company weight of
        # the allowed starts of a level when they do not depend on the start (month rounds of
        # allocation.model.build), else None; the awarded money never does (checked above)
        allowed3 = problem.allowed.reshape(n, Lv, M)
        self.level_awarded = awarded[:, :, 0].astype(np.int64)
        self.level_value = self._per_level(problem.value.reshape(n, Lv, M), allowed3)
        self.level_cw = self._per_level(problem.company_weight.reshape(n, Lv, M), allowed3)
        # everything below in the duration order of the items (self.order)
        self.awarded = awarded[self.order, :, 0].astype(np.float64)     # (n, Lv)
        self.cover = cover[..., 0][:, self.order].astype(np.float64)    # (Q, n, Lv)
        self.dur = dur
        # cut groups (see minimise_dual): items of one duration whose largest request (top level)
        # is of one GPU type use the same rows, so their sum is modelled by a cut of its own
        top = w.hours[self.order][:, -1, :] if n else np.zeros((0, T), np.int64)
        key = top.argmax(axis=1) * (M + 1) + dur if n else np.zeros(0, np.int64)
        _, self.group = np.unique(key, return_inverse=True)
        self.group = self.group.astype(np.int64).reshape(-1)
        self.n_groups = int(self.group.max()) + 1 if n else 0
        # (s, d) -> the months a start s of duration d spreads its floor share / remainder over
        self.share_map = np.zeros((M * (M + 1), M))
        self.rest_map = np.zeros((M * (M + 1), M))
        for s in range(M):
            for d in range(1, M + 1 - s):
                self.share_map[s * (M + 1) + d, s:s + d - 1] = 1.0
                self.rest_map[s * (M + 1) + d, s + d - 1] = 1.0
        self.item_v_t = None    # (M, n*Lv) normalised values, as reduced_t (set by _month_structure)
        self.single = None      # (n,) bool in this order
        self.threads = 1        # chunks of best() evaluated side by side (the dual's workers)

    @staticmethod
    def _per_level(a: np.ndarray, allowed: np.ndarray) -> np.ndarray | None:
        """(n, Lv) the value of a (n, Lv, M) array at a level's allowed starts (0 where a level
        has none), or None when two allowed starts of a level differ."""
        low = np.iinfo(np.int64).min
        top = np.where(allowed, a, low).max(axis=2)
        if not (~allowed | (a == top[:, :, None])).all():
            return None
        return np.where(top == low, 0, top).astype(np.int64)

    def _tables(self, mu: np.ndarray) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """Per duration d an (M, 2T) table whose row s is the price of a start s per unit of
        [floor share per type, remainder per type]; and the (n*Lv,) price of the budget and
        quota rows per level (duration order)."""
        M, T = self.M, self.T
        gpu = mu[:T * M].reshape(T, M)
        cum = np.concatenate([np.zeros((T, 1)), np.cumsum(gpu, axis=1)], axis=1)   # (T, M+1)
        tables = {}
        for d, _, _ in self.groups:
            G = np.zeros((2 * T, M))
            for s in range(M):
                e = min(s + d - 1, M)
                G[:T, s] = cum[:, e] - cum[:, s]            # months s .. s+d-2
                if s + d - 1 < M:
                    G[T:, s] = gpu[:, s + d - 1]
            tables[d] = G.T.copy()                          # (M, 2T)
        level = self.awarded * mu[T * M]
        for q in range(len(self.cover)):
            level -= self.cover[q] * mu[T * M + 1 + q]
        return tables, level.reshape(-1)

    def _reduced_cols(self, tables, level: np.ndarray, c0: int, c1: int) -> np.ndarray:
        """(M, c1 - c0) reduced values of the columns c0..c1 of the start-major layout."""
        out = np.empty((self.M, c1 - c0))
        for d, a, b in self.groups:
            lo, hi = max(a, c0), min(b, c1)
            if lo < hi:
                np.matmul(tables[d], self.FT[:, lo:hi], out=out[:, lo - c0:hi - c0])
        out += level[c0:c1]
        np.subtract(self.item_v_t[:, c0:c1], out, out=out)
        return out

    def _chunks(self) -> list[tuple[int, int]]:
        cols = len(self.order) * self.Lv
        step = PRICING_CHUNK_ITEMS * self.Lv
        return [(c, min(c + step, cols)) for c in range(0, cols, step)]

    def reduced_t(self, mu: np.ndarray) -> np.ndarray:
        """(M, n*Lv) reduced values: start-major, items in the duration order (self.order),
        level-minor; value - (sum over rows of A * mu), mu = normalised prices / row scale."""
        tables, level = self._tables(mu)
        out = np.empty((self.M, len(self.order) * self.Lv))
        for c0, c1 in self._chunks():
            out[:, c0:c1] = self._reduced_cols(tables, level, c0, c1)
        return out

    def reduced(self, mu: np.ndarray) -> np.ndarray:
        """(n, O) reduced values in the duration order, option o = level * M + start."""
        M, Lv = self.M, self.Lv
        n = len(self.order)
        return self.reduced_t(mu).reshape(M, n, Lv).transpose(1, 2, 0).reshape(n, Lv * M)

    def best(self, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per item (duration order) its best reduced value and option (first of equals in
        option order, as a column list would give). Computed in cache-sized chunks of items,
        `threads` chunks at a time: the same numbers for any number of threads."""
        M, Lv = self.M, self.Lv
        n = len(self.order)
        tables, level = self._tables(mu)
        s_best = np.empty(n * Lv, np.int64)
        v_best = np.empty(n * Lv)

        def chunk(bounds: tuple[int, int]) -> None:
            c0, c1 = bounds
            red = self._reduced_cols(tables, level, c0, c1)
            v = red[0].copy()
            s = np.zeros(c1 - c0, np.int64)
            for k in range(1, M):                           # first start of equals (= argmax)
                better = red[k] > v
                s[better] = k
                np.maximum(v, red[k], out=v)
            s_best[c0:c1] = s
            v_best[c0:c1] = v

        chunks = self._chunks()
        if self.threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                list(pool.map(chunk, chunks))
        else:
            for c in chunks:
                chunk(c)
        v_best = v_best.reshape(n, Lv)
        l_best = v_best.argmax(axis=1)
        rows = np.arange(n)
        return v_best[rows, l_best], l_best * M + s_best.reshape(n, Lv)[rows, l_best]

    def usage_by_group(self, pos: np.ndarray, opts: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
        """(n_groups, T*M + 1 + Q) float rows used (quota rows negated) by options opts of the
        items at positions pos (duration order), summed per group[j]; exact while the sums stay
        below 2**53 (only the dual's subgradients use it)."""
        M, T, Lv = self.M, self.T, self.Lv
        Q = len(self.cover)
        out = np.zeros((n_groups, T * M + 1 + Q))
        if len(pos) == 0 or n_groups == 0:
            return out
        f = self.F[pos * Lv + opts // M]                     # (k, 2T)
        key = group * (M * (M + 1)) + (opts % M) * (M + 1) + self.dur[pos]
        size = n_groups * M * (M + 1)
        for t in range(T):
            share = np.bincount(key, weights=f[:, t], minlength=size).reshape(n_groups, -1)
            rest = np.bincount(key, weights=f[:, T + t], minlength=size).reshape(n_groups, -1)
            out[:, t * M:(t + 1) * M] = share @ self.share_map + rest @ self.rest_map
        lv = opts // M
        out[:, T * M] = np.bincount(group, weights=self.awarded[pos, lv], minlength=n_groups)
        for q in range(Q):
            out[:, T * M + 1 + q] = -np.bincount(group, weights=self.cover[q][pos, lv], minlength=n_groups)
        return out


@dataclass
class Structure:
    n: int
    L: int
    D: int
    A: np.ndarray            # (n, L, D) int64 exact row usage per option (quota rows negated)
    b: np.ndarray            # (D,) int64 right-hand sides
    row_labels: tuple[str, ...]
    vscale: float
    rscale: np.ndarray       # (D,) float
    col_block: np.ndarray    # (K,) int64, non-decreasing
    block_start: np.ndarray  # (B,) int64 first column of each block
    col_v: np.ndarray        # (K,) float, value / vscale
    col_A: np.ndarray        # (K, D) float, A / rscale
    mem_col: np.ndarray      # (M,) column of each (column, item, option) membership
    mem_item: np.ndarray
    mem_opt: np.ndarray
    item_v: np.ndarray       # (n, L) float normalised values (-inf where not allowed)
    item_A: np.ndarray       # (n, L, D) float normalised rows
    relaxed_companies: int   # companies whose cap is not in the bound (too many combinations)
    # forced items (refills and appeals: kept awards): their option is fixed, they are in no
    # block, and the dual function sees what they use as already spent (b_dual) and what they
    # are worth as a constant (v_forced, raw units)
    forced: np.ndarray = None       # (n,) int64: option an item is forced to, -1 = free
    b_dual: np.ndarray = None       # (D,) int64: b minus the forced items' usage
    v_forced: int = 0
    # GPU capacity by month: A is a MonthRows, item_A None, the single-item blocks are not
    # columns (col_* hold the company blocks only) but priced by `pricing` per item
    pricing: MonthPricing | None = None
    single: np.ndarray | None = None    # (n,) bool: the item is a block of its own (month rounds)

    @property
    def monthly(self) -> bool:
        return self.pricing is not None

    @property
    def is_forced(self) -> np.ndarray:
        return self.forced >= 0


def _rows(problem: AllocationProblem) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    n, L = problem.n_items, problem.n_options
    R, Q = len(problem.capacity), len(problem.cover_names)
    A = np.empty((n, L, R + Q), np.int64)
    for r in range(R):
        A[:, :, r] = problem.weight[r]
    for q in range(Q):
        np.negative(problem.cover[q], out=A[:, :, R + q])
    b = np.concatenate([problem.capacity.astype(np.int64), np.zeros(Q, np.int64)])
    labels = tuple(problem.row_names) + tuple(f"quota:{q}" for q in problem.cover_names)
    return A, b, labels


def forced_array(problem: AllocationProblem, fixed: dict[int, int] | np.ndarray | None) -> np.ndarray:
    """(n,) int64: the option each item is forced to, -1 = free (also for items fixed to none,
    which `AllocationProblem.restricted` leaves without any allowed option)."""
    forced = np.full(problem.n_items, -1, np.int64)
    if fixed is None:
        return forced
    if isinstance(fixed, np.ndarray):
        forced[:] = fixed
        return forced
    for i, o in fixed.items():
        forced[int(i)] = int(o)
    return forced


def company_residual_caps(problem: AllocationProblem, forced: np.ndarray) -> np.ndarray:
    """Per company: the cap minus what its forced items already use."""
    n_comp = int(problem.company.max(initial=-1)) + 1
    cap = np.full(n_comp, int(problem.company_cap), np.int64)
    f = np.flatnonzero(forced >= 0)
    if len(f):
        np.subtract.at(cap, problem.company[f], problem.company_weight[f, forced[f]])
    return cap


def _company_groups(problem: AllocationProblem, forced: np.ndarray | None = None) -> list[np.ndarray]:
    """Free items (sorted) of every company whose free items could exceed what the cap leaves
    them (the cap minus the company's forced items) together."""
    n = problem.n_items
    if n == 0:
        return []
    forced = np.full(n, -1, np.int64) if forced is None else forced
    free = forced < 0
    cw = np.where(problem.allowed & free[:, None], problem.company_weight, 0)
    hi = np.maximum(cw.max(axis=1), 0)
    n_comp = int(problem.company.max()) + 1
    comp_max = np.zeros(n_comp, np.int64)
    np.add.at(comp_max, problem.company, hi)
    binding = comp_max > company_residual_caps(problem, forced)
    member = binding[problem.company] & free
    items = np.flatnonzero(member)
    if len(items) == 0:
        return []
    comp = problem.company[items]
    order = np.argsort(comp, kind="stable")
    items, comp = items[order], comp[order]
    cuts = np.flatnonzero(np.diff(comp)) + 1
    return np.split(items, cuts)


def _exact_blocks(problem: AllocationProblem, forced: np.ndarray, L: int) -> tuple[list[np.ndarray], np.ndarray, int, np.ndarray]:
    """(company groups solved exactly as blocks, which items are in one, how many groups were too
    large and stay relaxed, each company's residual cap)."""
    comp_cap = company_residual_caps(problem, forced)
    in_block = np.zeros(problem.n_items, bool)
    blocks: list[np.ndarray] = []
    relaxed = 0
    for g in _company_groups(problem, forced):
        if (L + 1) ** len(g) <= MAX_BLOCK_COMBINATIONS:
            blocks.append(g)
            in_block[g] = True
        else:
            relaxed += 1
    return blocks, in_block, relaxed, comp_cap


def _append_columns(n_cols: int, k: int, itm: np.ndarray, cols_b: list, cols_v: list, cols_A: list,
                    cols_members: list, columns: tuple[list, list, list], members: tuple[list, list, list]) -> int:
    """One company size's block columns, numbered from n_cols in block order: (block, value,
    weights) appended to `columns`, (column, item, option) of every member to `members`.
    Returns the next free column number."""
    col_block, col_val_int, col_A_int = columns
    mem_col, mem_item, mem_opt = members
    blk = np.concatenate(cols_b)
    order = np.argsort(blk, kind="stable")
    col_ids = np.empty(len(blk), np.int64)
    col_ids[order] = n_cols + np.arange(len(blk))
    start = 0
    for sel, p in cols_members:
        ids = col_ids[start:start + len(sel)]
        start += len(sel)
        for j in range(k):
            if p[j] >= 0:
                mem_col.append(ids)
                mem_item.append(itm[sel, j])
                mem_opt.append(np.full(len(sel), p[j], np.int64))
    col_block.append(blk[order])
    col_val_int.append(np.concatenate(cols_v)[order])
    col_A_int.append(np.concatenate(cols_A)[order])
    return n_cols + len(blk)


def build_structure(problem: AllocationProblem, forced: np.ndarray | None = None) -> Structure:
    """forced: (n,) option each item is forced to (-1 = free); see forced_array."""
    if isinstance(problem.weight, MonthlyWeight):
        return _month_structure(problem, forced)
    n, L = problem.n_items, problem.n_options
    A, b, labels = _rows(problem)
    D = A.shape[2]
    forced = np.full(n, -1, np.int64) if forced is None else np.asarray(forced, np.int64)
    fi = np.flatnonzero(forced >= 0)
    if len(fi) and not problem.allowed[fi, forced[fi]].all():
        raise ValueError("a forced option is not allowed")
    b_dual = b - (A[fi, forced[fi]].sum(axis=0) if len(fi) else 0)
    v_forced = int(problem.value[fi, forced[fi]].sum()) if len(fi) else 0
    # the blocks see only the free items' options
    allowed = problem.allowed.astype(bool) & (forced < 0)[:, None]
    value = problem.value.astype(np.int64)
    vmax = float(np.abs(np.where(allowed, value, 0)).max(initial=0))
    vscale = vmax if vmax > 0 else 1.0
    amax = np.abs(np.where(allowed[:, :, None], A, 0)).max(axis=(0, 1), initial=0).astype(np.float64)
    rscale = np.where(amax > 0, amax, 1.0)

    blocks, in_block, relaxed, comp_cap = _exact_blocks(problem, forced, L)

    # single-item blocks: one column per allowed option
    single = ~in_block
    si, sl = np.nonzero(allowed & single[:, None])
    s_block_of_item = np.cumsum(single) - 1
    col_block = [s_block_of_item[si]]
    col_val_int = [value[si, sl]]
    col_A_int = [A[si, sl]]
    mem_col = [np.arange(len(si))]
    mem_item = [si]
    mem_opt = [sl]
    n_blocks = int(single.sum())
    n_cols = len(si)

    # company blocks: every cap-respecting combination, grouped by company size
    by_size: dict[int, list[np.ndarray]] = {}
    for g in blocks:
        by_size.setdefault(len(g), []).append(g)
    cw_all = problem.company_weight.astype(np.int64)
    for k in sorted(by_size):
        itm = np.stack(by_size[k])                           # (C, k)
        C = len(itm)
        block_ids = n_blocks + np.arange(C)
        n_blocks += C
        combos = np.array(list(itertools.product(range(-1, L), repeat=k)), np.int64)[1:]  # no all-none
        cols_b, cols_v, cols_A, cols_members = [], [], [], []
        for p in combos:
            ok = np.ones(C, bool)
            v = np.zeros(C, np.int64)
            a = np.zeros((C, D), np.int64)
            c = np.zeros(C, np.int64)
            for j in range(k):
                if p[j] < 0:
                    continue
                it = itm[:, j]
                ok &= allowed[it, p[j]]
                v += value[it, p[j]]
                a += A[it, p[j]]
                c += cw_all[it, p[j]]
            ok &= c <= comp_cap[problem.company[itm[:, 0]]]
            sel = np.flatnonzero(ok)
            if len(sel) == 0:
                continue
            cols_b.append(block_ids[sel])
            cols_v.append(v[sel])
            cols_A.append(a[sel])
            cols_members.append((sel, p))
        if not cols_b:
            continue
        n_cols = _append_columns(n_cols, k, itm, cols_b, cols_v, cols_A, cols_members,
                                 (col_block, col_val_int, col_A_int), (mem_col, mem_item, mem_opt))

    col_block_a = np.concatenate(col_block).astype(np.int64)
    present, block_start = np.unique(col_block_a, return_index=True)
    # renumber blocks 0..B-1 (blocks without any allowed column vanish)
    col_block_a = np.searchsorted(present, col_block_a)
    col_v = np.concatenate(col_val_int).astype(np.float64) / vscale
    col_A = np.concatenate(col_A_int).astype(np.float64) / rscale
    mc = np.concatenate(mem_col).astype(np.int64)
    mo = np.argsort(mc, kind="stable")
    item_v = np.where(allowed, value.astype(np.float64) / vscale, -np.inf)
    item_A = A.astype(np.float64) / rscale
    return Structure(
        n=n, L=L, D=D, A=A, b=b, row_labels=labels, vscale=vscale, rscale=rscale,
        col_block=col_block_a, block_start=block_start.astype(np.int64), col_v=col_v,
        col_A=np.ascontiguousarray(col_A), mem_col=mc[mo],
        mem_item=np.concatenate(mem_item).astype(np.int64)[mo],
        mem_opt=np.concatenate(mem_opt).astype(np.int64)[mo],
        item_v=item_v, item_A=item_A, relaxed_companies=relaxed,
        forced=forced, b_dual=b_dual, v_forced=v_forced)


def _month_structure(problem: AllocationProblem, forced: np.ndarray | None) -> Structure:
    """build_structure for a month round (problem.weight a MonthlyWeight): the same blocks and
    prices, but the single-item blocks are priced from the factors (MonthPricing) instead of
    one stored column per (item, option), and A is computed on demand (MonthRows)."""
    n, L = problem.n_items, problem.n_options
    A = MonthRows(problem)
    R, Q = len(problem.capacity), len(problem.cover_names)
    D = R + Q
    b = np.concatenate([problem.capacity.astype(np.int64), np.zeros(Q, np.int64)])
    labels = tuple(problem.row_names) + tuple(f"quota:{q}" for q in problem.cover_names)
    forced = np.full(n, -1, np.int64) if forced is None else np.asarray(forced, np.int64)
    fi = np.flatnonzero(forced >= 0)
    if len(fi) and not problem.allowed[fi, forced[fi]].all():
        raise ValueError("a forced option is not allowed")
    b_dual = b - (A[fi, forced[fi]].sum(axis=0) if len(fi) else 0)
    v_forced = int(problem.value[fi, forced[fi]].sum()) if len(fi) else 0
    # (no copies of the (n, L) arrays where they already have the dtype: 36M options at 1M x 12)
    allowed = np.asarray(problem.allowed, bool) & (forced < 0)[:, None]
    value = np.asarray(problem.value, np.int64)
    masked = np.where(allowed, value, 0)
    vmax = float(max(masked.max(initial=0), -masked.min(initial=0)))
    del masked
    vscale = vmax if vmax > 0 else 1.0
    # row scales as build_structure's: the largest |coefficient| of an allowed option per row
    w: MonthlyWeight = problem.weight
    M, T, Lv = w.months, w.hours.shape[2], w.hours.shape[1]
    amax = np.zeros(D)
    by_start = allowed.reshape(n, Lv, M)
    types = np.arange(T) * M
    # per duration d and start s: the largest floor share (months s..s+d-2) and remainder (month
    # s+d-1) of an allowed option, as hours_in_month spreads them; months past the last: none
    for d in np.unique(w.duration).tolist():
        g = np.flatnonzero(w.duration == d)
        share = hours_in_month(w.hours[g], d, 0)                 # (k, Lv, T)
        rest = hours_in_month(w.hours[g], d, d - 1)
        for start in range(M):
            on = by_start[g, :, start][:, :, None]
            if not on.any():
                continue
            top_share = np.where(on, share, 0).max(axis=(0, 1))
            top_rest = np.where(on, rest, 0).max(axis=(0, 1))
            for k in range(min(d, M - start)):
                top = top_rest if k == d - 1 else top_share
                amax[types + start + k] = np.maximum(amax[types + start + k], top)
    amax[R - 1] = float(np.where(allowed, w.awarded, 0).max(initial=0))
    for q in range(Q):
        amax[R + q] = float(np.abs(np.where(allowed, problem.cover[q], 0)).max(initial=0))
    rscale = np.where(amax > 0, amax, 1.0)

    blocks, in_block, relaxed, comp_cap = _exact_blocks(problem, forced, L)
    single = ~in_block & allowed.any(axis=1)
    col_block, col_val_int, col_A_int = [], [], []
    mem_col, mem_item, mem_opt = [], [], []
    n_blocks = n_cols = 0
    by_size: dict[int, list[np.ndarray]] = {}
    for g in blocks:
        by_size.setdefault(len(g), []).append(g)
    cw_all = problem.company_weight.astype(np.int64)
    for k in sorted(by_size):
        itm = np.stack(by_size[k])
        C = len(itm)
        block_ids = n_blocks + np.arange(C)
        n_blocks += C
        combos = np.array(list(itertools.product(range(-1, L), repeat=k)), np.int64)[1:]
        cols_b, cols_v, cols_A, cols_members = [], [], [], []
        for pc in combos:
            ok = np.ones(C, bool)
            v = np.zeros(C, np.int64)
            c = np.zeros(C, np.int64)
            for j in range(k):
                if pc[j] >= 0:
                    it = itm[:, j]
                    ok &= allowed[it, pc[j]]
                    v += value[it, pc[j]]
                    c += cw_all[it, pc[j]]
            ok &= c <= comp_cap[problem.company[itm[:, 0]]]
            sel = np.flatnonzero(ok)
            if len(sel) == 0:
                continue
            a = np.zeros((len(sel), D), np.int64)
            for j in range(k):
                if pc[j] >= 0:
                    a += A[itm[sel, j], np.full(len(sel), pc[j])]
            cols_b.append(block_ids[sel])
            cols_v.append(v[sel])
            cols_A.append(a)
            cols_members.append((sel, pc))
        if not cols_b:
            continue
        n_cols = _append_columns(n_cols, k, itm, cols_b, cols_v, cols_A, cols_members,
                                 (col_block, col_val_int, col_A_int), (mem_col, mem_item, mem_opt))
    cat = lambda parts, dt, shape: np.concatenate(parts).astype(dt) if parts else np.zeros(shape, dt)  # noqa: E731
    col_block_a = cat(col_block, np.int64, (0,))
    present, block_start = np.unique(col_block_a, return_index=True)
    col_block_a = np.searchsorted(present, col_block_a)
    mc = cat(mem_col, np.int64, (0,))
    mo = np.argsort(mc, kind="stable")
    pricing = MonthPricing(problem)
    v = np.where(allowed, value.astype(np.float64) / vscale, -np.inf)[pricing.order]
    pricing.item_v_t = np.ascontiguousarray(v.reshape(n, pricing.Lv, pricing.M).transpose(2, 0, 1)
                                            .reshape(pricing.M, -1))
    del v
    pricing.single = single[pricing.order]
    return Structure(
        n=n, L=L, D=D, A=A, b=b, row_labels=labels, vscale=vscale, rscale=rscale,
        col_block=col_block_a, block_start=block_start.astype(np.int64),
        col_v=cat(col_val_int, np.float64, (0,)) / vscale,
        col_A=np.ascontiguousarray(cat(col_A_int, np.float64, (0, D)) / rscale), mem_col=mc[mo],
        mem_item=cat(mem_item, np.int64, (0,))[mo], mem_opt=cat(mem_opt, np.int64, (0,))[mo],
        item_v=None, item_A=None,
        relaxed_companies=relaxed, forced=forced, b_dual=b_dual, v_forced=v_forced,
        pricing=pricing, single=single)


# ---------------------------------------------------------------------------
# the dual function and its minimisation
# ---------------------------------------------------------------------------


def evaluate(S: Structure, lam: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """f(lam) (normalised units, without the forced items' constant value), a subgradient, and
    the chosen column per positive block (month rounds: a MonthChoice)."""
    if S.monthly:
        return _evaluate_months(S, lam)
    b = S.b_dual / S.rscale
    if len(S.col_v) == 0:
        return float(lam @ b), b.copy(), np.zeros(0, np.int64)
    red = S.col_v - S.col_A @ lam
    bmax = np.maximum.reduceat(red, S.block_start)
    f = float(lam @ b) + float(np.maximum(bmax, 0.0).sum())
    at = bmax[S.col_block]
    idx = np.flatnonzero((red >= at) & (at > 0))
    first = np.ones(len(idx), bool)
    first[1:] = S.col_block[idx[1:]] != S.col_block[idx[:-1]]
    chosen = idx[first]
    g = b - S.col_A[chosen].sum(axis=0)
    return f, g, chosen


@dataclass
class MonthChoice:
    """The Lagrangian choice of a month round: company-block columns and single items' options."""
    cols: np.ndarray
    items: np.ndarray
    opts: np.ndarray

    def __len__(self) -> int:
        return len(self.cols) + len(self.items)


def _evaluate_months(S: Structure, lam: np.ndarray, cuts: bool = False):
    """evaluate() of a month round; cuts=True: also its parts per cut group (evaluate_cuts)."""
    P = S.pricing
    b = S.b_dual / S.rscale
    f = float(lam @ b)
    mu = lam / S.rscale
    bmax, best = P.best(mu)                               # duration order
    bmax = np.where(P.single, bmax, -np.inf)
    f += float(np.maximum(bmax, 0.0).sum())
    pos = np.flatnonzero(bmax > 0)
    opts = best[pos]
    G = P.n_groups
    # rows used per cut group of the single items, the company blocks' columns as one more group
    used = np.zeros((G + 1, S.D))
    used[:G] = P.usage_by_group(pos, opts, P.group[pos], G)
    cols = np.zeros(0, np.int64)
    f_cols = 0.0
    if len(S.col_v):
        redc = S.col_v - S.col_A @ lam
        cmax = np.maximum.reduceat(redc, S.block_start)
        f_cols = float(np.maximum(cmax, 0.0).sum())
        f += f_cols
        at = cmax[S.col_block]
        idx = np.flatnonzero((redc >= at) & (at > 0))
        first = np.ones(len(idx), bool)
        first[1:] = S.col_block[idx[1:]] != S.col_block[idx[:-1]]
        cols = idx[first]
    used[:G] /= S.rscale
    if len(cols):
        used[G] = S.col_A[cols].sum(axis=0)
    items = P.order[pos]
    o = np.argsort(items, kind="stable")
    g = b - used.sum(axis=0)
    chosen = MonthChoice(cols=cols, items=items[o], opts=opts[o])
    if not cuts:
        return f, g, chosen
    fg = np.zeros(G + 1)
    fg[:G] = np.bincount(P.group[pos], weights=bmax[pos], minlength=G)
    fg[G] = f_cols
    fg[0] += float(lam @ b)          # the linear part goes with the first group
    gg = -used
    gg[0] += b
    return f, g, chosen, fg, gg


def evaluate_cuts(S: Structure, lam: np.ndarray) -> tuple[float, np.ndarray, object, np.ndarray, np.ndarray]:
    """evaluate() and f split into parts whose sum is f: (f, g, chosen, fg (G,), gg (G, D)), each
    part convex with subgradient gg[k] (minimise_dual models each by cuts of its own). One part
    for a single-period round; a month round: one per cut group of its items (MonthPricing)
    and one for the company blocks."""
    if S.monthly:
        return _evaluate_months(S, lam, cuts=True)
    f, g, chosen = evaluate(S, lam)
    return f, g, chosen, np.array([f]), g[None, :].copy()


def _float_margin(S: Structure, lam: np.ndarray, f: float) -> float:
    """Upper bound on float rounding error in f(lam) (normalised units), generously."""
    vmax = float(np.abs(S.col_v).max(initial=0))
    blocks = len(S.block_start)
    if S.monthly:   # single items priced per item: their values and count too
        vmax = max(vmax, 1.0)           # item values are normalised to at most 1
        blocks += int(S.single.sum())
    scale = abs(f) + vmax * blocks \
        + float(lam @ (np.abs(S.b_dual) / S.rscale)) + abs(S.v_forced) / S.vscale
    if S.monthly:   # the factored prices: every row's coefficients up to their scale
        scale += float(np.abs(lam).sum()) * blocks * (S.pricing.M + 1)
    return BOUND_FLOAT_MARGIN * scale


@dataclass
class DualResult:
    lam: np.ndarray          # (D,) normalised prices at the best point
    bound: float             # raw units, valid upper bound (margin included)
    lower: float             # raw units: lower estimate of min f (model value), for the record
    chosen: np.ndarray       # chosen columns at lam
    iterations: int
    converged: bool


def _master(cuts, center: np.ndarray, f_center: float, delta: float):
    """min sum of t[k] over the cutting-plane model within the box |lam - center| <= delta,
    lam >= 0: a cut (fg, gg, lam_k) says part k of f is at least fg[k] + gg[k].(lam - lam_k).

    Built as an MPModelProto for GLOP (variables d[0..D-1] then t[0..G-1], one row per cut and
    part, in that order): the same model the MPSolver calls built before, without one Python
    call per coefficient (1M x 12 months: 1.1M calls in 44 iterations)."""
    D = len(center)
    G = len(cuts[0][0])
    scale = max(abs(f_center), 1e-300)
    proto = linear_solver_pb2.MPModelProto(maximize=False)
    for j in range(D):
        proto.variable.add(lower_bound=max(-float(center[j]), -delta), upper_bound=delta,
                           objective_coefficient=0.0, name=f"d{j}")
    for k in range(G):
        proto.variable.add(lower_bound=-math.inf, upper_bound=math.inf, objective_coefficient=1.0,
                           name="t" if k == 0 else f"t{k}")
    for fg, gg, lam_k in cuts:
        base = center - lam_k
        for k in range(G):
            # fg[k] + gg[k].(center + d - lam_k) [- f_center for the first part] <= t[k]
            # (relative to f_center, scaled)
            g_k = gg[k]
            const = (fg[k] - (f_center if k == 0 else 0.0) + float(g_k @ base)) / scale
            nz = np.flatnonzero(g_k != 0)
            ct = proto.constraint.add(lower_bound=const, upper_bound=math.inf)
            ct.var_index.append(D + k)
            ct.var_index.extend(nz.tolist())
            ct.coefficient.append(1.0)
            ct.coefficient.extend((-g_k[nz] / scale).tolist())
    request = linear_solver_pb2.MPModelRequest(
        model=proto, solver_type=linear_solver_pb2.MPModelRequest.GLOP_LINEAR_PROGRAMMING)
    response = linear_solver_pb2.MPSolutionResponse()
    pywraplp.Solver.SolveWithProto(request, response)
    if response.status not in (linear_solver_pb2.MPSOLVER_OPTIMAL, linear_solver_pb2.MPSOLVER_FEASIBLE):
        return None, None
    values = list(response.variable_value)
    step = np.array(values[:D])
    return np.maximum(center + step, 0.0), f_center + sum(values[D:]) * scale


def minimise_dual(S: Structure, lam0: np.ndarray, *, max_iterations: int = DUAL_MAX_ITERATIONS,
                  tolerance: float = DUAL_REL_TOLERANCE, known_min: float | None = None) -> DualResult:
    """Box-step stabilised cutting planes (Marsten's boxstep) over the D prices.

    f is modelled part by part (evaluate_cuts): a month round's parts are its cut groups (items
    of one duration and main GPU type, and the company blocks), each with cuts of its own: one
    evaluation adds a cut per part instead of one for the whole of f (100k x 6 months: 21
    iterations instead of 162, to the same bound within 3e-11). A single-period round has one
    part: plain cutting planes, as before.

    known_min: min f when known from elsewhere (normalised units; the LP optimum of the whole
    problem when there are no company blocks): reaching it within KNOWN_MIN_TOLERANCE ends the
    search at once.
    """
    center = np.maximum(np.asarray(lam0, np.float64), 0.0)
    f_c, _, chosen_c, fg, gg = evaluate_cuts(S, center)
    cuts = [(fg, gg, center.copy())]
    # also cut at zero prices: anchors the model far from the start
    f0, _, ch0, fg, gg = evaluate_cuts(S, np.zeros(S.D))
    cuts.append((fg, gg, np.zeros(S.D)))
    if f0 < f_c:
        center, f_c, chosen_c = np.zeros(S.D), f0, ch0
    delta = max(0.05 * float(np.abs(center).max(initial=0)), 1e-3)
    lower = -math.inf
    converged = False
    if known_min is not None and f_c - known_min <= KNOWN_MIN_TOLERANCE * max(abs(f_c), 1e-300):
        lower, converged, max_iterations = known_min, True, 0
    it = 0
    for it in range(1, max_iterations + 1):
        lam, model = _master(cuts, center, f_c, delta)
        if lam is None:
            break
        on_box = bool(np.any(np.abs(lam - center) >= delta * (1 - 1e-9)))
        predicted = f_c - model
        if not on_box:
            lower = max(lower, model)
        if predicted <= tolerance * max(abs(f_c), 1e-300):
            if not on_box:
                converged = True
                break
            delta *= 4.0
            continue
        f, _, chosen, fg, gg = evaluate_cuts(S, lam)
        cuts.append((fg, gg, lam.copy()))
        if f <= f_c - 0.1 * predicted:        # serious step
            center, f_c, chosen_c = lam, f, chosen
            if on_box:
                delta *= 2.0
        elif f > f_c - 0.0 * predicted and not on_box:
            delta = max(delta * 0.5, 1e-12)
        if len(cuts) > 120:                   # keep the master small: drop the oldest cuts
            cuts = cuts[:2] + cuts[-100:]
    f_c_margin = f_c + _float_margin(S, center, f_c)
    return DualResult(lam=center, bound=f_c_margin * S.vscale + S.v_forced,
                      lower=lower * S.vscale + S.v_forced if math.isfinite(lower) else -math.inf,
                      chosen=chosen_c, iterations=it, converged=converged)


def raw_prices(S: Structure, lam: np.ndarray) -> np.ndarray:
    """Normalised prices -> objective units per unit of each row."""
    return lam * S.vscale / S.rscale


def warm_start(problem: AllocationProblem, S: Structure) -> tuple[np.ndarray, float | None]:
    """Prices from the GLOP LP of an evenly spaced sample of companies (capacities scaled);
    a problem of at most SAMPLE_ITEMS items (fewer when they would have more than SAMPLE_COLUMNS
    options) is its own sample, and then the LP value (raw units) comes back too (else None)."""
    n = problem.n_items
    if n == 0:
        return np.zeros(S.D), None
    # every step-th company, whole companies (so company caps stay meaningful); all of a small problem
    sample = max(1, min(SAMPLE_ITEMS, SAMPLE_COLUMNS // max(1, problem.n_options)))
    step = max(1, int(math.ceil(n / sample)))
    comp = problem.company
    pick_comp = np.zeros(int(comp.max()) + 1, bool)
    pick_comp[::step] = True
    items = np.flatnonzero(pick_comp[comp])
    frac = len(items) / n
    sub = AllocationProblem(
        value=problem.value[items], allowed=problem.allowed[items], weight=problem.weight[:, items],
        capacity=np.floor(problem.capacity * frac).astype(np.int64), row_names=problem.row_names,
        company=np.unique(problem.company[items], return_inverse=True)[1].astype(np.int64),
        company_weight=problem.company_weight[items], company_cap=problem.company_cap,
        cover=problem.cover[:, items], cover_names=problem.cover_names)
    lp = solve_lp_glop(sub)
    if lp.status not in ("optimal", "feasible"):
        return np.zeros(S.D), None
    raw = np.concatenate([lp.row_duals, lp.cover_duals])
    exact = step == 1 and lp.status == "optimal" and math.isfinite(lp.bound)
    return raw * S.rscale / S.vscale, (float(lp.bound) if exact else None)


# ---------------------------------------------------------------------------
# primal: rounding, repair, top-up
# ---------------------------------------------------------------------------


def decode(S: Structure, chosen: np.ndarray) -> np.ndarray:
    """The choice vector of the chosen columns, forced items at their option."""
    choice = S.forced.copy()
    if isinstance(chosen, MonthChoice):
        choice[chosen.items] = chosen.opts
        chosen = chosen.cols
    if len(chosen):
        on = np.zeros(len(S.col_v), bool)
        on[chosen] = True
        m = on[S.mem_col]
        choice[S.mem_item[m]] = S.mem_opt[m]
    return choice


def item_reduced(S: Structure, lam: np.ndarray) -> np.ndarray:
    """(n, L) reduced value of every option at prices lam (normalised; -inf if not allowed)."""
    if S.n == 0:
        return np.zeros((0, S.L))
    if S.monthly:
        red = np.empty((S.n, S.L))
        red[S.pricing.order] = S.pricing.reduced(lam / S.rscale)
        return red
    red = S.item_v - (S.item_A.reshape(-1, S.D) @ lam).reshape(S.n, S.L)
    return red


class _State:
    """Exact residuals of a choice: global rows and per-company caps."""

    def __init__(self, problem: AllocationProblem, S: Structure, choice: np.ndarray):
        self.p, self.S = problem, S
        self.choice = choice.copy()
        funded = np.flatnonzero(choice >= 0)
        if S.monthly:
            self.used = S.A.total(funded, choice[funded])
        else:
            self.used = S.A[funded, choice[funded]].sum(axis=0) if len(funded) else np.zeros(S.D, np.int64)
        n_comp = int(problem.company.max(initial=-1)) + 1
        self.comp_used = np.zeros(n_comp, np.int64)
        if len(funded):
            np.add.at(self.comp_used, problem.company[funded], problem.company_weight[funded, choice[funded]])

    def resid(self) -> np.ndarray:
        return self.S.b - self.used

    def comp_resid(self) -> np.ndarray:
        return int(self.p.company_cap) - self.comp_used

    def set(self, items: np.ndarray, opts: np.ndarray) -> None:
        """Move items to options (-1 = none), updating the exact usage."""
        if len(items) == 0:
            return
        S, p = self.S, self.p
        old = self.choice[items]
        of, nf = old >= 0, opts >= 0
        rows_of = S.A.total if S.monthly else (lambda i, o: S.A[i, o].sum(axis=0))
        if of.any():
            self.used -= rows_of(items[of], old[of])
            np.subtract.at(self.comp_used, p.company[items[of]], p.company_weight[items[of], old[of]])
        if nf.any():
            self.used += rows_of(items[nf], opts[nf])
            np.add.at(self.comp_used, p.company[items[nf]], p.company_weight[items[nf], opts[nf]])
        self.choice[items] = opts


# normalised reduced values closer than this are a tie between starts. Starts of one level have
# the same value: only the month prices tell them apart, and at the dual's optimum those of the
# scarce months come out nearly equal (100k x 6 months: four H200 months within 1e-7 of each
# other), so which start is "cheapest" is noise of the dual's last digits; treated as ties, the
# items are spread over those months by how full they are. With 1e-9 (below that noise) the
# result hung on those digits: 100k, two dual methods whose prices differ by ~1e-6 relative gave
# 4.2e-6 and 4.3e-5 below the bound; with 1e-7 8.5e-6 and 8.9e-6 (1e-6 and 1e-5: the same)
TIE_TOLERANCE = 1e-7


def spread_ties(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray) -> np.ndarray:
    """GPU capacity by month: at the final prices most funded items tie between start months
    (options of the same value whose months all have price 0, up to float noise), and the
    Lagrangian choice takes the first of them for all, piling them into the same months. Place
    the tied items again one by one, highest reduced value first, each at the tied start whose
    fullest GPU row (after placing it) is the least full. (10k round, 6 months: 9.6e-4 below the
    bound after repair and top-up with the first start, 1.9e-4 with this.)"""
    funded = np.flatnonzero((choice >= 0) & ~S.is_forced)
    if len(funded) == 0:
        return choice
    cur = choice[funded]
    best = red[funded, cur]
    tied = (problem.allowed[funded] & (problem.value[funded] == problem.value[funded, cur][:, None])
            & (red[funded] >= best[:, None] - TIE_TOLERANCE))
    multi = tied.sum(axis=1) > 1
    items, tied, best = funded[multi], tied[multi], best[multi]
    if len(items) == 0:
        return choice
    out = choice.copy()
    out[items] = -1
    R = len(problem.capacity) - 1                       # the GPU rows (the budget does not differ)
    used = _State(problem, S, out).used[:R].astype(np.float64)
    cap = np.maximum(S.b[:R].astype(np.float64), 1.0)
    pi, po = np.nonzero(tied)
    use = S.A[items[pi], po][:, :R].astype(np.float64)
    starts = np.searchsorted(pi, np.arange(len(items)))
    ends = np.searchsorted(pi, np.arange(len(items)), side="right")
    for j in np.lexsort((items, -best)).tolist():
        u = use[starts[j]:ends[j]]
        fullest = np.where(u > 0, (used + u) / cap, 0.0).max(axis=1)
        k = int(np.argmin(fullest))
        out[items[j]] = po[starts[j] + k]
        used += u[k]
    return out


def move_before_drop(problem: AllocationProblem, S: Structure, choice: np.ndarray,
                     red: np.ndarray, rounds: int = 16) -> np.ndarray:
    """GPU capacity by month (problem.equal_value_moves): at the final prices many items tie
    between start months and the rounding piles them into the same months. Before the repair
    drops anyone, move items to an option of the same value (another start) that uses less of
    the over-full rows (no more of any) and fits every other limit, highest reduced value first."""
    st = _State(problem, S, choice)
    free = ~S.is_forced
    # nobody is dropped here: the funded items stay, their rows kept up to date as they move
    funded = np.flatnonzero((st.choice >= 0) & free)
    rows_now = S.A[funded, st.choice[funded]] if len(funded) else np.zeros((0, S.D), np.int64)
    for _ in range(rounds):
        over = st.resid() < 0
        if not over.any():
            break
        cur = st.choice[funded]
        on_over = (rows_now[:, over] > 0).any(axis=1)
        where = np.flatnonzero(on_over)
        items, cur = funded[on_over], cur[on_over]
        if len(items) == 0:
            break
        rows = np.arange(len(items))
        same = problem.allowed[items] & (problem.value[items] == problem.value[items, cur][:, None])
        same[rows, cur] = False
        # less on the full rows (no more of any): usage computed for the same-value options only
        pi, po = np.nonzero(same)
        alt, now = S.A[items[pi], po][:, over], rows_now[where][:, over][pi]
        same[pi, po] = (alt <= now).all(axis=1) & (alt < now).any(axis=1)
        score = np.where(same, red[items], -np.inf)
        best = score.argmax(axis=1)
        has = np.isfinite(score[rows, best])
        moved = 0
        with_move = np.flatnonzero(has)
        alt_use = S.A[items[with_move], best[with_move]] - rows_now[where[with_move]]
        for j in np.lexsort((items[has], -score[has, best[has]])).tolist():
            k = int(with_move[j])
            i, o = items[k], best[k]
            after = st.resid() - alt_use[j]
            if (after[~over] >= 0).all():
                # the same value: the same award, so the same company sum; only the rows move
                c = problem.company[i]
                st.comp_used[c] += problem.company_weight[i, o] - problem.company_weight[i, st.choice[i]]
                st.used += alt_use[j]
                st.choice[i] = o
                rows_now[where[k]] += alt_use[j]
                moved += 1
                over = st.resid() < 0
                if not over.any():
                    break
        if moved == 0:
            break
    return st.choice


def repair(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Drop funded items (lowest reduced value first) until every limit holds; forced items
    are never dropped."""
    st = _State(problem, S, choice)
    free = ~S.is_forced
    for _ in range(10_000):
        comp_over = np.flatnonzero(st.comp_resid() < 0)
        if len(comp_over):
            # per over-cap company drop its lowest-reduced-value funded item
            funded = np.flatnonzero((st.choice >= 0) & free & np.isin(problem.company, comp_over))
            if len(funded) == 0:
                break
            r = red[funded, st.choice[funded]]
            order = np.lexsort((funded, r))
            f_sorted = funded[order]
            comp = problem.company[f_sorted]
            _, first = np.unique(comp, return_index=True)
            drop = f_sorted[first]
            st.set(drop, np.full(len(drop), -1, np.int64))
            continue
        over = st.resid() < 0
        if not over.any():
            break
        funded = np.flatnonzero((st.choice >= 0) & free)
        use = S.A[funded, st.choice[funded]]                    # (m, D)
        helps = (use[:, over] > 0).any(axis=1)
        cand = funded[helps]
        if len(cand) == 0:
            break  # cannot be repaired by dropping (e.g. capacity negative): give up below
        use = use[helps]
        r = red[cand, st.choice[cand]]
        order = np.lexsort((cand, r))
        cand, use = cand[order], use[order]
        need = -st.resid()                                      # > 0 on over rows
        freed = np.cumsum(use, axis=0)                          # dropping a prefix frees this much
        ok = (freed[:, over] >= need[over]).all(axis=1)
        k = int(np.argmax(ok)) + 1 if ok.any() else len(cand)
        st.set(cand[:k], np.full(k, -1, np.int64))
    if problem.violations(st.choice):
        return S.forced.copy() if not problem.violations(S.forced) else st.choice
    return st.choice


def top_up(problem: AllocationProblem, S: Structure, choice: np.ndarray, priority: np.ndarray,
           *, min_prefix: int = 256, sequential_chunk: int = 4096,
           head_size: int = 4096) -> np.ndarray:
    """Offer every (item, better option) in priority order; accept when every limit holds.

    priority: (n, L) float, higher first (ties: item, then option index descending).
    Exact int64 arithmetic. Vectorised passes accept the longest prefix of fitting candidates
    (one per item and company); once few candidates fit, they are offered one by one, and the
    vectorised filter runs again until a round accepts nothing.
    """
    st = _State(problem, S, choice)
    allowed = problem.allowed.astype(bool)
    value = problem.value
    n_rows = len(problem.capacity)
    items = np.arange(problem.n_items)
    in_play = np.ones(problem.n_items, bool)

    def prefilter() -> tuple[np.ndarray, np.ndarray]:
        """Whole-array filter: better than the current option and fits the capacity, budget
        and company limits on its own (those residuals only shrink from here on)."""
        if S.monthly:
            # residuals only shrink and values only rise: an item without a candidate now has
            # none later, so the filter runs on the items still in play
            ci, co = _month_prefilter(problem, S, st, priority, np.flatnonzero(in_play))
            in_play[:] = False
            in_play[ci] = True
            return ci, co
        cur = st.choice
        curc = np.maximum(cur, 0)
        funded = cur >= 0
        cur_val = np.where(funded, value[items, curc], 0)
        cur_cw = np.where(funded, problem.company_weight[items, curc], 0)
        cand = allowed & np.isfinite(priority) & (value > cur_val[:, None])
        cur_use = np.where(funded[:, None], S.A[items, curc, :n_rows], 0)           # (n, R)
        cand &= ((S.A[:, :, :n_rows] - cur_use[:, None, :]) <= st.resid()[:n_rows]).all(axis=2)
        cand &= (problem.company_weight - cur_cw[:, None]) <= st.comp_resid()[problem.company][:, None]
        return np.nonzero(cand)

    def ordered(ci: np.ndarray, co: np.ndarray) -> np.ndarray:
        return np.lexsort((-co, ci, -priority[ci, co]))

    ci, co = prefilter()
    # Tight limits (the LP-guided case): offer the best few thousand one by one first; when
    # they exhaust a limit the next whole-array filter leaves few candidates.
    for _ in range(64):
        if len(ci) <= 8 * head_size:
            break
        pr = priority[ci, co]
        top = np.argpartition(-pr, head_size)[:head_size]
        top = top[np.lexsort((-co[top], ci[top], -pr[top]))]
        taken = _sequential_top_up(problem, S, st, ci[top], co[top])
        if taken == 0 or taken > head_size // 2:
            break   # plenty of room (vectorised passes are faster) or quota-blocked: the list loop
        ci, co = prefilter()
    else:
        ci, co = prefilter()
    order = ordered(ci, co)
    ci, co = ci[order].astype(np.int64), co[order].astype(np.int64)
    company = problem.company
    cw = problem.company_weight
    base = S.A[ci, co]                      # (m, D) usage of the offered option
    base_cw = cw[ci, co]
    base_v = value[ci, co]
    while len(ci):
        cur = st.choice[ci]
        funded = np.flatnonzero(cur >= 0)
        delta = base.copy()
        dcomp = base_cw.copy()
        better = np.ones(len(ci), bool)
        if len(funded):
            fi, fo = ci[funded], cur[funded]
            delta[funded] -= S.A[fi, fo]
            dcomp[funded] -= cw[fi, fo]
            better[funded] = base_v[funded] > value[fi, fo]
        resid = st.resid()
        comp_resid = st.comp_resid()
        # capacity/budget/company residuals only shrink: a candidate failing one never fits
        # later; one failing only a quota row may fit once more group members are funded
        keep = better & (delta[:, :n_rows] <= resid[:n_rows]).all(axis=1) \
            & (dcomp <= comp_resid[company[ci]])
        fits = keep & (delta[:, n_rows:] <= resid[n_rows:]).all(axis=1)
        if not keep.all():
            ci, co, base, base_cw, base_v = ci[keep], co[keep], base[keep], base_cw[keep], base_v[keep]
            delta, fits = delta[keep], fits[keep]
        f_idx = np.flatnonzero(fits)
        if len(f_idx) == 0:
            break
        # one candidate per item and per company in a pass (first in priority order)
        _, first_item = np.unique(ci[f_idx], return_index=True)
        sel = f_idx[np.sort(first_item)]
        _, first_comp = np.unique(company[ci[sel]], return_index=True)
        sel = sel[np.sort(first_comp)]
        cums = np.cumsum(delta[sel], axis=0)
        ok = (cums <= resid).all(axis=1)
        k = int(np.argmin(ok)) if not ok.all() else len(sel)
        alive = np.ones(len(ci), bool)
        if k >= min_prefix or k == len(sel):
            acc = sel[:k]
            st.set(ci[acc], co[acc])
            alive[acc] = False
        else:
            # short prefix: offer the next fitting candidates one by one instead
            head = f_idx[:sequential_chunk]
            taken = _sequential_top_up(problem, S, st, ci[head], co[head])
            alive[head] = False
            if taken == 0 and len(head) == len(f_idx):
                # nothing fitted; quota-blocked ones may still fit later only if something
                # else is accepted, and nothing else fits: done
                break
        ci, co, base, base_cw, base_v = ci[alive], co[alive], base[alive], base_cw[alive], base_v[alive]
    return st.choice


SWAP_CANDIDATES = 4000      # options swap_top_up offers, highest value per KRW first
SWAP_PASSES = 3
SWAP_BY_DENSITY = True      # (10k x 6 months: 1.33e-4 -> 7.7e-5 below the bound; by reduced value 8.5e-5)


def swap_top_up(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray,
                *, candidates: int = SWAP_CANDIDATES) -> np.ndarray:
    """GPU capacity by month, after top_up: the budget is full, yet GPU months are left over
    that the low-value fillers of the top-up cannot use. Offer the unfunded options that fit
    every limit but the budget, and the funded items' better options, highest value per KRW
    first; each takes the budget of the funded items of the lowest value per KRW (lowest first,
    as many as needed) when that raises the objective and every limit holds (exact int64)."""
    st = _State(problem, S, choice)
    R = len(problem.capacity)
    B = R - 1
    free = ~S.is_forced
    resid = st.resid()
    w: MonthlyWeight = problem.weight
    value, aw = problem.value, w.awarded
    n = problem.n_items
    cur0 = st.choice.copy()
    funded = cur0 >= 0
    curc = np.maximum(cur0, 0)
    cur_val = np.where(funded, value[np.arange(n), curc], 0)
    cur_aw = np.where(funded, aw[np.arange(n), curc], 0)
    cur_cw = np.where(funded, problem.company_weight[np.arange(n), curc], 0)
    cand = problem.allowed & free[:, None] & np.isfinite(red) & (value > cur_val[:, None])
    cand &= (problem.company_weight - cur_cw[:, None]) <= st.comp_resid()[problem.company][:, None]
    cand &= (aw - cur_aw[:, None]) > resid[B]          # the budget is what is short
    new = cand & ~funded[:, None]
    rows = np.flatnonzero(new.any(axis=1))
    new[rows] &= w.fits(resid[:B], rows)                # new items: their months must be free
    cand = new | (cand & funded[:, None])               # upgrades: checked one by one below
    ci, co = np.nonzero(cand)
    if len(ci) == 0:
        return st.choice
    pr = value[ci, co] / np.maximum(aw[ci, co], 1) if SWAP_BY_DENSITY else red[ci, co]
    candidates = max(candidates, n // 25)
    if len(ci) > candidates:
        top = np.argpartition(-pr, candidates)[:candidates]
        ci, co, pr = ci[top], co[top], pr[top]
    order = np.lexsort((-co, ci, -pr))
    ci, co = ci[order], co[order]
    delta = S.A[ci, co]
    up = cur0[ci] >= 0
    if up.any():
        delta[up] -= S.A[ci[up], cur0[ci[up]]]

    # the funded items by value per KRW, lowest first: what a swap drops is a prefix of what is
    # left of this list; an item changed here is neither dropped nor changed again
    pf = np.flatnonzero(funded & free)
    po = cur0[pf]
    k_order = np.lexsort((pf, value[pf, po] / np.maximum(aw[pf, po], 1)))
    pf, po = pf[k_order], po[k_order]
    cum_aw = np.concatenate([[0], np.cumsum(aw[pf, po])])
    cum_v = np.concatenate([[0], np.cumsum(value[pf, po])])
    head = 0                                    # pf[:head] are dropped
    touched = np.zeros(n, bool)
    for j, (i, o) in enumerate(zip(ci.tolist(), co.tolist())):
        if touched[i] or st.choice[i] != cur0[i]:
            continue
        resid = st.resid()
        d = delta[j]
        if (d[:B] > resid[:B]).any():
            continue
        need = int(d[B]) - int(resid[B])
        k = 0
        if need > 0:   # the shortest prefix of the rest freeing `need`
            k = int(np.searchsorted(cum_aw, cum_aw[head] + need, side="left")) - head
            if head + k > len(pf) or k > 8:
                continue
        gain = int(value[i, o]) - int(cur_val[i])
        if gain <= int(cum_v[head + k] - cum_v[head]):
            continue
        drop = pf[head:head + k]
        if touched[drop].any() or (drop == i).any():
            continue
        st.set(np.concatenate([drop, [i]]), np.concatenate([np.full(k, -1, np.int64), [o]]))
        if (st.resid() < 0).any() or (st.comp_resid() < 0).any():
            st.set(np.concatenate([drop, [i]]), np.concatenate([po[head:head + k], [cur0[i]]]))
            continue
        touched[i] = True
        head += k
    return st.choice


def fill_months(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray) -> np.ndarray:
    """GPU capacity by month, after the top-up: the budget is full but GPU months are left.
    Swaps (swap_top_up) trade low-value fillers for projects in the free months (100k x 6
    months: 2.8e-5 -> 1.1e-5 -> 8.3e-6 below the bound in passes); then starts are moved out
    of full months (shift_to_slack) and the top-up and swaps run again (10k: 7.7e-5 -> 6.8e-5;
    1M: 5.5e-5 -> 4.9e-5 -> 4.7e-5 -> 4.6e-5 in three passes)."""
    def swaps(choice: np.ndarray) -> np.ndarray:
        for _ in range(SWAP_PASSES):
            before = problem.objective(choice)
            choice = top_up(problem, S, swap_top_up(problem, S, choice, red), red)
            if problem.objective(choice) == before:
                break
        return choice

    choice = swaps(choice)
    for _ in range(SHIFT_PASSES):
        shifted = swaps(top_up(problem, S, shift_to_slack(problem, S, choice, red), red))
        if problem.objective(shifted) <= problem.objective(choice):
            break       # keep the allocation before a pass that gains nothing
        choice = shifted
    return choice


SHIFT_PASSES = 3


def shift_to_slack(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray,
                   *, tight: float = 1e-3) -> np.ndarray:
    """GPU capacity by month: the first and last months are hard to fill (only projects that
    start or end there reach them), so they keep hours while the months between are full. Move
    funded items to another start of the same value (the same award) whose extra months all
    have room and which frees hours in a full month (left less than `tight` of its capacity), so
    that the top-up and swaps after it can fill the freed months."""
    st = _State(problem, S, choice)
    G = len(problem.capacity) - 1
    resid = st.resid()[:G]
    cap = np.maximum(S.b[:G], 1)
    full = resid < tight * cap
    if not full.any() or full.all():
        return st.choice
    free = ~S.is_forced
    funded = np.flatnonzero((st.choice >= 0) & free)
    cur = st.choice[funded]
    same = problem.allowed[funded] & (problem.value[funded] == problem.value[funded, cur][:, None])
    same[np.arange(len(funded)), cur] = False
    pi, po = np.nonzero(same)
    if len(pi) == 0:
        return st.choice
    now = S.A[funded, cur][:, :G][pi]          # each funded item's rows once, not once per alternative
    delta = S.A[funded[pi], po][:, :G] - now
    useful = (delta[:, full] < 0).any(axis=1) & ~(delta[:, full] > 0).any(axis=1) \
        & (delta <= resid).all(axis=1)
    pi, po, delta = pi[useful], po[useful], delta[useful]
    freed = -np.where(delta < 0, delta, 0)[:, full].sum(axis=1)
    order = np.lexsort((funded[pi], -freed))
    resid = resid.copy()
    moved = np.zeros(problem.n_items, bool)
    for j in order.tolist():
        i = int(funded[pi[j]])
        if moved[i] or (delta[j] > resid).any():
            continue
        st.choice[i] = int(po[j])
        st.used[:G] += delta[j]
        resid -= delta[j]
        moved[i] = True
    return st.choice


# pairwise exchange: a month round's local search beside the CP-SAT polish
EXCHANGE_PASSES = 8         # best-improvement passes at most (10k x 6 months: 1-6 improve)
EXCHANGE_PER_DROP = 16      # the best few gainers kept per freer (a pass applies disjoint moves)
EXCHANGE_CHUNK = 256        # freers compared with the gainers at once
EXCHANGE_ITEMS = 12_000     # items searched at most: those whose reduced value is nearest zero
EXCHANGE_GAINERS = 48_000   # and at most this many gainers and freers, the least loss first
EXCHANGE_FREERS = 20_000    # (10k x 6 months, first call: 39,773 and 16,021)


def _fewest_losses(pairs: tuple[np.ndarray, np.ndarray], loss: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k (item, option) pairs of least loss (ties: item, option), in item order."""
    ii, oo = pairs
    if len(ii) <= k:
        return ii, oo
    keep = np.sort(np.lexsort((oo, ii, loss[ii, oo]))[:k])
    return ii[keep], oo[keep]


def exchange(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray,
             bound: float, *, passes: int = EXCHANGE_PASSES) -> tuple[np.ndarray, dict]:
    """Pairwise exchange for a month round: a gainer (an option of higher value than the item's
    current one: a new project or a raised level, any start) taken alone when it fits, or
    together with a freer (a funded item dropped or lowered to an option of less value, any
    start) that leaves it room, when the pair gains value; every limit checked in exact int64
    (GPU type x month rows, budget, quotas, company caps). Best-improvement passes: every move
    is scanned, the best applied, then the next best that still fit, each item touched once per
    pass, until a pass finds none (or `passes`). Deterministic.

    Why: a single-worker CP-SAT solve searches a tree from its LP and does not try the
    neighbours of its hint, and the month rows leave many one-for-one trades that it misses (10k
    x 6 months: after the polish and start moves at 1.64e-5 below the bound, one drop-and-add of
    two items inside the polish core gained 5.1e-6; this search alone took that allocation to
    6.8e-6). Searched: the EXCHANGE_ITEMS items whose reduced value is nearest zero (all of
    them at 10k), and of their moves at most EXCHANGE_GAINERS gainers and EXCHANGE_FREERS
    freers, those of least loss, so that a call costs about the same at any size.

    Candidates are cut by reduced cost, without losing an improving move: with G = bound -
    objective (prices lam), any better allocation has sum of its items' losses (best reduced
    value minus that of their option) plus priced slack below G, so an option whose loss
    exceeds G, or a drop of an item whose best exceeds G, is in none (items of company blocks
    are priced alone here: a heuristic cut for them, never a feasibility one)."""
    info: dict = {"passes": 0, "moves": 0, "improved_by": 0}
    value, allowed = problem.value, problem.allowed
    cw = problem.company_weight
    start_objective = objective = problem.objective(choice)
    st = _State(problem, S, choice)
    free = ~S.is_forced
    n = problem.n_items
    best = np.maximum(np.where(allowed, red, -np.inf).max(axis=1, initial=-np.inf), 0.0)
    loss = np.where(allowed, best[:, None] - red, np.inf)
    if n > EXCHANGE_ITEMS:
        near = np.zeros(n, bool)
        near[_polish_order(problem, choice, red, S.forced)[:EXCHANGE_ITEMS]] = True
        free &= near
    for _ in range(max(0, int(passes))):
        G = (float(bound) - float(objective)) / S.vscale
        if not G > 0:
            break
        G *= 1.0 + 1e-9
        cur = st.choice
        funded = cur >= 0
        curc = np.maximum(cur, 0)
        cur_val = np.where(funded, value[np.arange(n), curc], 0)
        # gainers: options of higher value than the item's current one, loss within G
        gain_ok = allowed & free[:, None] & (loss <= G) & (value > cur_val[:, None])
        gi, go = _fewest_losses(np.nonzero(gain_ok), loss, EXCHANGE_GAINERS)
        # freers: a funded free item dropped (when its best reduced value is within G) or moved
        # to an option of lower value (loss within G)
        lower = allowed & free[:, None] & funded[:, None] & (loss <= G) & (value < cur_val[:, None])
        dropped = np.flatnonzero(funded & free & (best <= G))
        li, lo = _fewest_losses(np.nonzero(lower), loss, max(0, EXCHANGE_FREERS - len(dropped)))
        if len(dropped) > EXCHANGE_FREERS:
            dropped = dropped[np.lexsort((dropped, best[dropped]))[:EXCHANGE_FREERS]]
            dropped.sort()
        drops = np.concatenate([dropped, li])
        drop_to = np.concatenate([np.full(len(dropped), -1, np.int64), lo])
        if len(gi) == 0:
            break
        resid = st.resid()
        comp_resid = st.comp_resid()
        gu = S.A[gi, go]
        gv = value[gi, go] - cur_val[gi]
        gc = cw[gi, go].astype(np.int64)
        up = funded[gi]
        if up.any():
            gu[up] -= S.A[gi[up], cur[gi[up]]]
            gc[up] -= cw[gi[up], cur[gi[up]]]
        # moves: gain, freer (index into drops, -1: the gainer alone), gainer (index into gi)
        mv_gain, mv_f, mv_a = [], [], []
        alone = (gu <= resid).all(axis=1) & (gc <= comp_resid[problem.company[gi]])
        ka = np.flatnonzero(alone)
        mv_gain.append(gv[ka])
        mv_f.append(np.full(len(ka), -1, np.int64))
        mv_a.append(ka)
        du_rows = np.zeros((1, S.D), np.int64)
        if len(drops):
            du = S.A[drops, cur[drops]]
            dv = value[drops, cur[drops]]
            dc = cw[drops, cur[drops]].astype(np.int64)
            down = drop_to >= 0
            if down.any():
                du[down] -= S.A[drops[down], drop_to[down]]
                dv[down] -= value[drops[down], drop_to[down]]
                dc[down] -= cw[drops[down], drop_to[down]]
            du_rows = du.copy()
            # a gainer pairs with a drop when gain usage - room <= the drop's usage on every
            # row (quota rows are negated: a drop can also take room away)
            excess = gu - resid
            reach = (excess <= du.max(axis=0)).all(axis=1) & ~alone
            o = np.flatnonzero(reach)
            o = o[np.lexsort((go[o], gi[o], -gv[o]))]         # highest gain first
            # only rows where some gainer needs more than the least any freer frees can fail;
            # the row that the fewest (freer, gainer) pairs pass first (counted exactly by
            # sorting): each row narrows the survivors of the last
            ex_o = excess[o]
            rows = np.flatnonzero((ex_o > du.min(axis=0)).any(axis=0))
            passing = np.array([np.searchsorted(np.sort(ex_o[:, r]), du[:, r], side="right").sum()
                                for r in rows.tolist()], np.int64)
            rows = rows[np.argsort(passing, kind="stable")]
            du = np.ascontiguousarray(du[:, rows])
            exT = np.ascontiguousarray(ex_o[:, rows].T)
            g_v, g_i = gv[o], gi[o]
            g_c = gc[o]
            g_room = comp_resid[problem.company[g_i]]
            comp_i = problem.company[g_i]
            # gainers of more value than each freer gives up: a prefix (gain order). Freers in
            # chunks of similar room on the most selective row; a chunk keeps the gainers that
            # fit its largest room on the two most selective rows, compares those with each of
            # its freers as one 2-D block, the survivors on the other rows
            prefix = np.searchsorted(-g_v, -dv, side="left")
            lead = min(2, len(rows))
            by_room = (np.lexsort((np.arange(len(drops)), -du[:, 0])) if lead
                       else np.arange(len(drops)))
            for c0 in range(0, len(drops), EXCHANGE_CHUNK):
                fs = by_room[c0:c0 + EXCHANGE_CHUNK]
                cand = np.arange(int(prefix[fs].max(initial=0)))
                for r in range(lead):
                    cand = cand[exT[r, cand] <= du[fs, r].max()]
                if len(cand) == 0:
                    continue
                ok = cand[None, :] < prefix[fs, None]
                for r in range(lead):
                    ok &= exT[r, cand][None, :] <= du[fs, r, None]
                rj, kc = np.nonzero(ok)            # by freer, then gain order
                fj, ka = fs[rj], cand[kc]
                for r in range(2, len(rows)):
                    keep = exT[r, ka] <= du[fj, r]
                    fj, ka = fj[keep], ka[keep]
                keep = g_i[ka] != drops[fj]
                fj, ka = fj[keep], ka[keep]
                same = comp_i[ka] == problem.company[drops[fj]]
                keep = g_c[ka] <= g_room[ka] + np.where(same, dc[fj], 0)
                fj, ka = fj[keep], ka[keep]
                if len(fj) == 0:
                    continue
                # the best EXCHANGE_PER_DROP gainers of each freer (each freer's run is contiguous)
                first = np.r_[0, np.flatnonzero(np.diff(fj)) + 1]
                rank = np.arange(len(fj)) - np.repeat(first, np.diff(np.r_[first, len(fj)]))
                keep = rank < EXCHANGE_PER_DROP
                fj, ka = fj[keep], ka[keep]
                mv_gain.append(g_v[ka] - dv[fj])
                mv_f.append(fj)
                mv_a.append(o[ka])
        M_gain, M_f, M_a = (np.concatenate(x).astype(np.int64) for x in (mv_gain, mv_f, mv_a))
        if len(M_gain) == 0:
            break
        M_i, M_o = gi[M_a], go[M_a]
        paired = M_f >= 0
        M_j = np.where(paired, drops[np.maximum(M_f, 0)] if len(drops) else -1, -1)
        M_oj = np.where(paired, drop_to[np.maximum(M_f, 0)] if len(drops) else -1, -1)
        order = np.lexsort((M_o, M_i, M_oj, M_j, -M_gain))   # best gain first (ties: items)
        touched = np.zeros(n, bool)
        applied = 0
        room = resid.copy()
        for b0 in range(0, len(order), 4096):
            blk = order[b0:b0 + 4096]
            live = ~touched[M_i[blk]] & ((M_j[blk] < 0) | ~touched[np.maximum(M_j[blk], 0)])
            blk = blk[live]
            if len(blk) == 0:
                continue
            ff = M_f[blk]
            delta = gu[M_a[blk]] - np.where((ff >= 0)[:, None], du_rows[np.maximum(ff, 0)], 0)
            fits = (delta <= room).all(axis=1)       # room left by the moves applied so far
            for k, d in zip(blk[fits].tolist(), delta[fits]):
                i, j = int(M_i[k]), int(M_j[k])
                if touched[i] or (j >= 0 and touched[j]) or (d > room).any():
                    continue
                items = np.array([i] if j < 0 else [j, i], np.int64)
                new = np.array([M_o[k]] if j < 0 else [M_oj[k], M_o[k]], np.int64)
                old = st.choice[items].copy()
                st.set(items, new)
                if (st.resid() < 0).any() or (st.comp_resid() < 0).any():
                    st.set(items, old)
                    continue
                room = st.resid()
                touched[items] = True
                applied += 1
                objective += int(M_gain[k])
        info["passes"] += 1
        info["moves"] += applied
        if applied == 0:
            break
    info["improved_by"] = int(objective - start_objective)
    return st.choice, info


def _month_prefilter(problem: AllocationProblem, S: Structure, st: _State, priority: np.ndarray,
                     rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """top_up's whole-array filter for a month round, on the items `rows`, without an (n, L, D)
    array: unfunded items' options against the GPU residuals per month from the factors
    (MonthlyWeight.fits), funded items' upgrades by their exact change of usage."""
    w: MonthlyWeight = problem.weight
    R = len(problem.capacity)
    resid = st.resid()
    cur = st.choice[rows]
    funded = cur >= 0
    comp_resid = st.comp_resid()[problem.company[rows]][:, None]
    P = S.pricing
    if P is not None and P.level_value is not None and P.level_cw is not None:
        # value, company weight and budget depend on the level only: tested on (k, levels), the
        # start-dependent tests then only on the items with a level left (after the first passes
        # the budget is nearly full: few are)
        M = w.months
        lv = np.maximum(cur, 0) // M
        k = np.arange(len(rows))
        lval, lcw, law = P.level_value[rows], P.level_cw[rows], P.level_awarded[rows]
        zero = np.zeros(len(rows), np.int64)
        ok = lval > np.where(funded, lval[k, lv], zero)[:, None]
        ok &= (lcw - np.where(funded, lcw[k, lv], zero)[:, None]) <= comp_resid
        ok &= (law - np.where(funded, law[k, lv], zero)[:, None]) <= resid[R - 1]
        keep = ok.any(axis=1)
        rows, funded = rows[keep], funded[keep]
        cand = problem.allowed[rows] & np.isfinite(priority[rows]) & np.repeat(ok[keep], M, axis=1)
    else:
        curc = np.maximum(cur, 0)
        at = np.arange(len(rows))
        value = problem.value[rows]
        cand = problem.allowed[rows] & np.isfinite(priority[rows]) \
            & (value > np.where(funded, value[at, curc], 0)[:, None])
        del value
        cw = problem.company_weight[rows]
        cand &= (cw - np.where(funded, cw[at, curc], 0)[:, None]) <= comp_resid
        del cw
        aw = w.awarded[rows]
        cand &= (aw - np.where(funded, aw[at, curc], 0)[:, None]) <= resid[R - 1]
        del aw
    new = cand & ~funded[:, None]
    left = np.flatnonzero(new.any(axis=1))          # the GPU test only where something is left
    new[left] &= w.fits(resid[:R - 1], rows[left])
    fi, fo = np.nonzero(cand & funded[:, None])
    if len(fi):
        gi = rows[fi]
        delta = S.A[gi, fo, slice(0, R)] - S.A[gi, st.choice[gi], slice(0, R)]
        ok = (delta <= resid[:R]).all(axis=1)
        new[fi[ok], fo[ok]] = True
    ni, no = np.nonzero(new)
    return rows[ni], no


def _sequential_top_up(problem, S, st: _State, ci: np.ndarray, co: np.ndarray) -> int:
    """Offer the candidates one by one in order (exact Python ints); returns how many were taken."""
    resid = [int(x) for x in st.resid()]
    comp_resid_arr = st.comp_resid()
    comp_resid: dict[int, int] = {}
    D = S.D
    choice = st.choice
    company = problem.company
    value = problem.value
    cw = problem.company_weight
    if S.monthly:   # the offered options' rows, and each item's current one (kept up to date)
        offered = S.A[ci, co].tolist()
        now = {}
        funded = np.unique(ci[choice[ci] >= 0])
        if len(funded):
            now = dict(zip(funded.tolist(), S.A[funded, choice[funded]].tolist()))
    else:
        rows = S.A[ci].tolist()             # (m, L, D) usage of every option of each candidate's item
    taken = 0
    for k, (i, o) in enumerate(zip(ci.tolist(), co.tolist())):
        cur = int(choice[i])
        if cur >= 0 and value[i, o] <= value[i, cur]:
            continue
        if S.monthly:
            new = offered[k]
            old = now[i] if cur >= 0 else [0] * D
        else:
            new = rows[k][o]
            old = rows[k][cur] if cur >= 0 else [0] * D
        c = int(company[i])
        cr = comp_resid.get(c)
        if cr is None:
            cr = int(comp_resid_arr[c])
        dc = int(cw[i, o]) - (int(cw[i, cur]) if cur >= 0 else 0)
        if dc > cr:
            continue
        if any(new[d] - old[d] > resid[d] for d in range(D)):
            continue
        for d in range(D):
            resid[d] -= new[d] - old[d]
        comp_resid[c] = cr - dc
        choice[i] = o
        if S.monthly:
            now[i] = new
        taken += 1
    if taken:
        fresh = _State(problem, S, choice)
        st.used, st.comp_used, st.choice = fresh.used, fresh.comp_used, fresh.choice
    return taken


# ---------------------------------------------------------------------------
# polish: CP-SAT on the undecided core
# ---------------------------------------------------------------------------


def _polish_order(problem: AllocationProblem, choice: np.ndarray, red: np.ndarray,
                  forced: np.ndarray | None = None) -> np.ndarray:
    """Selectable free items, the one whose reduced value is nearest zero first (ties by index)."""
    n = problem.n_items
    best = np.where(problem.allowed, red, -np.inf).max(axis=1)
    # an unselected item has no current option (inf), not a zero one
    cur = np.where(choice >= 0, red[np.arange(n), np.maximum(choice, 0)], np.inf)
    closeness = np.minimum(np.abs(best), np.abs(cur))
    closeness = np.where(np.isfinite(closeness), closeness, np.inf)
    selectable = problem.allowed.any(axis=1)
    if forced is not None:
        selectable &= forced < 0
    candidates = np.flatnonzero(selectable)
    return candidates[np.lexsort((candidates, closeness[candidates]))]


def polish_rounds(n_candidates: int, core_items: int, lanes: int) -> list[list[int]]:
    """Core sizes of the LNS polish, round by round (the solves of one round run side by side).

    A large round gets one core of core_items. A small one (an OR-Library instance, a round of
    a few hundred applications) gets growing cores: one lane: 20%, 35%, 50%, then all of its
    items; two or more lanes: in each round one lane re-solves all items while another solves a
    35% (then 50%) core. Every step is hinted with the best allocation so far, and a step over
    all items can prove optimality. (On OR-Library 30.100, 30 instances at 4.5 deterministic
    seconds: growing cores alone 0.108% below best-known, with the whole-problem lane 0.073%.)
    """
    if n_candidates <= 0 or core_items <= 0:
        return []
    cap = min(core_items, n_candidates)

    def size(f: float) -> int:
        return min(cap, max(1, math.ceil(f * n_candidates)))

    if lanes <= 1:
        return [[k] for k in sorted({size(f) for f in POLISH_CORE_FRACTIONS})]
    rounds = [sorted({size(f), cap}) for f in POLISH_PARALLEL_FRACTIONS]
    return [[cap]] if all(r == [cap] for r in rounds) else rounds


def _solve_core(problem: AllocationProblem, choice: np.ndarray, core: np.ndarray, *,
                dtime: float, seed: int, parameters: dict[str, object] | None = None,
                forced: np.ndarray | None = None, target: int | None = None,
                must_fund: np.ndarray | None = None):
    """Single-worker CP-SAT on the items in `core` (rest fixed at `choice`, hinted with it;
    forced items of the core kept at their option): (new choice, Solution). target: stop at
    the first allocation (core and rest together) whose objective is at least this.
    must_fund: items of the core that must keep some option (see solve_cpsat)."""
    L = problem.n_options
    rest = np.ones(problem.n_items, bool)
    rest[core] = False
    fr = np.flatnonzero(rest & (choice >= 0))
    fixed_w = problem.weight[:, fr, choice[fr]].sum(axis=1) if len(fr) else np.zeros(len(problem.capacity), np.int64)
    fixed_c = problem.cover[:, fr, choice[fr]].sum(axis=1) if len(fr) else np.zeros(len(problem.cover_names), np.int64)
    m = len(core)
    # the fixed items enter as one pseudo-item forced to option 0 (their summed usage)
    pseudo_w = np.zeros((len(problem.capacity), 1, L), np.int64)
    pseudo_w[:, 0, 0] = fixed_w
    pseudo_c = np.zeros((len(problem.cover_names), 1, L), np.int64)
    pseudo_c[:, 0, 0] = fixed_c
    pseudo_allowed = np.zeros((1, L), bool)
    pseudo_allowed[0, 0] = True
    comp_core = np.unique(problem.company[core], return_inverse=True)[1].astype(np.int64)
    sub = AllocationProblem(
        value=np.concatenate([problem.value[core], np.zeros((1, L), np.int64)]),
        allowed=np.concatenate([problem.allowed[core], pseudo_allowed]),
        weight=np.concatenate([problem.weight[:, core], pseudo_w], axis=1),
        capacity=problem.capacity,
        row_names=problem.row_names,
        company=np.concatenate([comp_core, [comp_core.max(initial=-1) + 1]]),
        company_weight=np.concatenate([problem.company_weight[core], np.zeros((1, L), np.int64)]),
        company_cap=problem.company_cap,
        cover=np.concatenate([problem.cover[:, core], pseudo_c], axis=1),
        cover_names=problem.cover_names)
    hint = np.concatenate([choice[core], [0]])
    fixed = {m: 0}
    if forced is not None:
        local = np.flatnonzero(forced[core] >= 0)
        fixed.update(zip(local.tolist(), forced[core[local]].tolist()))
    stop_at = None
    if target is not None:    # the core's share of the target: the rest's value is fixed
        stop_at = int(target) - (int(problem.value[fr, choice[fr]].sum()) if len(fr) else 0)
    must = None
    if must_fund is not None:
        must = np.searchsorted(core, must_fund)
        if not np.array_equal(core[np.minimum(must, len(core) - 1)], must_fund):
            raise ValueError("must_fund items must be in the core (sorted)")
    sol = solve_cpsat(sub, time_limit_s=dtime, workers=1, seed=seed, hint=hint, fixed=fixed,
                      parameters=parameters, stop_at=stop_at, must_fund=must)
    new = choice.copy()
    if sol.status in ("optimal", "feasible"):
        new[core] = sol.choice[:m]
    return new, sol


def _core_items(problem: AllocationProblem, order: np.ndarray, size: int) -> np.ndarray:
    """The polish core: the companies of the first `size` items of `order`, all their
    selectable items (sorted)."""
    core_comp = np.zeros(int(problem.company.max()) + 1, bool)
    core_comp[problem.company[order[:size]]] = True
    return np.flatnonzero(core_comp[problem.company] & problem.allowed.any(axis=1))


def polish(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray, *,
           core_items: int, dtime: float, workers: int, seed: int,
           large_core_parameters: dict[str, object] = LARGE_CORE_PARAMETERS,
           target_objective: int | None = None, improve=None) -> tuple[np.ndarray, dict]:
    """LNS over growing cores of the items whose reduced value is nearest zero (whole
    companies), everything else fixed. Each CP-SAT step is hinted with the best allocation so
    far and gets the deterministic time the earlier steps left unused. With workers >= 2 the
    solves of a round (see polish_rounds) run side by side as single-worker CP-SAT solves in
    threads, each from the same incumbent; the best result wins (ties: the smaller core), so
    the outcome does not depend on thread timing.

    target_objective (large month rounds, see MONTH_POLISH_TARGET_GAP): no polish when the
    allocation already reaches it; else each core's search ends at its first allocation that
    reaches it (each lane by itself, so the outcome still does not depend on thread timing),
    and no further round runs once one has. Ignored for small rounds, whose growing cores aim
    at a proof of optimality.

    improve: applied to each solve's allocation before the best of a round is taken (a month
    round: the exchange search; a lane slightly behind can come out ahead after it)."""
    n = problem.n_items
    info: dict = {"core_items": 0, "improved_by": 0, "cpsat_status": None, "steps": []}
    if n == 0 or core_items <= 0:
        return choice, info
    order = _polish_order(problem, choice, red, S.forced)
    rounds = polish_rounds(len(order), core_items, max(1, int(workers)))
    if not rounds:
        return choice, info
    # a large round: one core, a strict part of the round
    large = rounds == [[core_items]] and core_items < len(order)
    if large and S.monthly:
        # by month the rounding leaves more behind (GPU months the budget cannot reach): a
        # second, twice larger core beside the first (two workers) or after it (one worker;
        # the caller then gives the polish twice the deterministic time)
        sizes = [core_items, min(2 * core_items, len(order))]
        rounds = [sizes] if workers >= 2 else [[k] for k in sizes]
    lanes = max(len(r) for r in rounds)
    target = target_objective if large and S.monthly else None
    parameters = large_core_parameters if large and not S.monthly else None
    info["core_parameters"] = parameters or {}

    def core_of(size: int) -> np.ndarray:
        return _core_items(problem, order, size)

    start_objective = best_objective = problem.objective(choice)
    if target is not None:
        info["target_objective"] = int(target)
        if start_objective >= target:
            info["stopped_at_target"] = True
            info["polish_deterministic_time"] = 0.0
            return choice, info
    remaining = float(dtime)
    used_total = 0.0
    pool = ThreadPoolExecutor(max_workers=lanes) if lanes > 1 else None
    try:
        for k, group in enumerate(rounds):
            budget = remaining / (len(rounds) - k)
            cores = [core_of(size) for size in group]
            incumbent = choice

            def run(core: np.ndarray):
                return _solve_core(problem, incumbent, core, dtime=budget, seed=seed,
                                   parameters=parameters, forced=S.forced, target=target)

            try:
                results = list(pool.map(run, cores)) if pool else [run(c) for c in cores]
            except ValueError as exc:  # int64 overflow: keep the current solution
                info["cpsat_status"] = f"skipped: {exc}"
                break
            remaining = max(0.0, remaining - max(min(float(sol.deterministic_time), budget)
                                                 for _, sol in results))
            proved = False
            for size, core, (new, sol) in zip(group, cores, results):
                used_total += float(sol.deterministic_time)
                if improve is not None and not problem.violations(new):
                    new = improve(new)
                info["core_items"] = len(core)
                info["cpsat_status"] = sol.details.get("cpsat_status")
                info["steps"].append({"round": k, "core_items": len(core), "status": sol.status,
                                      "deterministic_time": round(float(sol.deterministic_time), 3)})
                objective = problem.objective(new)
                if objective > best_objective and not problem.violations(new):
                    choice, best_objective = new, objective
                # the core is the whole problem and CP-SAT proved optimality: the answer is optimal
                proved |= size == len(order) and sol.status == "optimal"
            if proved:
                info["proved_whole_problem"] = True
                break
            if target is not None and best_objective >= target:
                info["stopped_at_target"] = True
                break
    finally:
        if pool:
            pool.shutdown()
    info["polish_deterministic_time"] = used_total
    info["improved_by"] = int(best_objective - start_objective)
    return choice, info


def month_target_objective(bound: float, gap: float | None = None) -> int | None:
    """The least integer objective z with (bound - z) / bound <= gap (MONTH_POLISH_TARGET_GAP
    by default), as Solution.gap computes it (None for a bound that is not a positive finite
    number: nothing to aim at)."""
    if not (math.isfinite(bound) and bound > 1.0):
        return None
    gap = MONTH_POLISH_TARGET_GAP if gap is None else float(gap)
    z = math.ceil(bound - gap * bound)
    while (bound - z) / bound > gap:
        z += 1
    while (bound - (z - 1)) / bound <= gap:
        z -= 1
    return int(z)


# move_starts, a month round's polish: rounds of side-by-side single-worker solves, one seed each
MONTH_MOVE_ROUNDS = 3
MONTH_MOVE_LANES = 2
# A type's GPU months bind when some month's price x capacity exceeds this share of the bound
# (the 10k x 6 month round: H200 ~4e6 per hour in every month, H100 one month at 9e-7)
BINDING_TYPE_SHARE = 1e-7


def move_starts(problem: AllocationProblem, S: Structure, choice: np.ndarray, red: np.ndarray,
                lam: np.ndarray, bound: float, *, core_items: int, dtime: float, seeds: list[int],
                target_objective: int, rounds: int = 1, improve=None) -> tuple[np.ndarray, dict]:
    """A large month round's polish: the core (as in polish) beside every funded project
    outside it whose GPU type binds (some month of it has a price), each free to move its start
    month at the same value (level) but not to leave the allocation (CP-SAT must_fund). With
    the rest fixed, the core could only use the GPU months the rest leaves, scattered over the
    months; a better allocation often needs a few of those projects to start earlier or later.

    `rounds` rounds, each from the best allocation so far (its core and movers recomputed);
    in a round one single-worker CP-SAT solve per seed in `seeds`, side by side in threads,
    the best result wins (ties: the earlier seed), so the outcome does not depend on thread
    timing. The search reached different allocations with different seeds (10k x 6 months,
    from 2.28e-5 below the bound: seeds 0, 1, 2 gave 1.49e-5, 1.87e-5, 1.83e-5; see
    bench/results/months.md). Stops once the target is reached (each solve at its first
    allocation that reaches it, as in polish). improve: as in polish."""
    info: dict = {"core_items": 0, "movers": 0, "deterministic_time": 0.0, "improved_by": 0,
                  "steps": []}
    w = problem.weight
    if not isinstance(w, MonthlyWeight) or core_items <= 0 or not seeds:
        return choice, info
    M, T = w.months, w.hours.shape[2]
    prices = raw_prices(S, lam)[:T * M].reshape(T, M)
    worth = prices * problem.capacity[:T * M].reshape(T, M)
    binding = worth.max(axis=1) > BINDING_TYPE_SHARE * max(float(bound), 1.0)
    info["binding_types"] = int(binding.sum())
    uses_binding = (w.hours[:, :, binding] > 0).any(axis=(1, 2))
    start_objective = best_objective = problem.objective(choice)
    pool = ThreadPoolExecutor(max_workers=len(seeds)) if len(seeds) > 1 else None
    try:
        for k in range(max(0, int(rounds))):
            if best_objective >= target_objective:
                break
            order = _polish_order(problem, choice, red, S.forced)
            if core_items >= len(order):
                break
            core = _core_items(problem, order, core_items)
            in_core = np.zeros(problem.n_items, bool)
            in_core[core] = True
            movers = np.flatnonzero((choice >= 0) & ~in_core & (S.forced < 0) & uses_binding)
            info.update(core_items=len(core), movers=len(movers))
            if len(movers) == 0:
                break
            # a mover keeps its value: only the options (start months) of its current value
            allowed = np.array(problem.allowed, bool)
            allowed[movers] &= problem.value[movers] == problem.value[movers, choice[movers]][:, None]
            moving = replace(problem, allowed=allowed)
            items = np.sort(np.concatenate([core, movers]))
            incumbent = choice

            def run(seed: int):
                return _solve_core(moving, incumbent, items, dtime=dtime, seed=seed, forced=S.forced,
                                   target=target_objective, must_fund=movers)

            results = list(pool.map(run, seeds)) if pool else [run(sd) for sd in seeds]
            for sd, (new, sol) in zip(seeds, results):
                info["deterministic_time"] += float(sol.deterministic_time)
                if improve is not None and not problem.violations(new):
                    new = improve(new)
                objective = problem.objective(new)
                info["steps"].append({"round": k, "seed": int(sd), "status": sol.status,
                                      "deterministic_time": round(float(sol.deterministic_time), 3),
                                      "objective": int(objective)})
                if objective > best_objective and not problem.violations(new):
                    choice, best_objective = new, objective
            seeds = [sd + len(seeds) for sd in seeds]
    finally:
        if pool:
            pool.shutdown()
    info["deterministic_time"] = round(info["deterministic_time"], 3)
    info["improved_by"] = int(best_objective - start_objective)
    info["stopped_at_target"] = best_objective >= target_objective
    return choice, info


# ---------------------------------------------------------------------------
# the strategies
# ---------------------------------------------------------------------------

@dataclass
class DualOutcome:
    structure: Structure
    dual: DualResult
    row_duals: np.ndarray     # (R,) raw prices >= 0
    cover_duals: np.ndarray   # (Q,) raw prices >= 0
    seconds: float


def dual_prices(problem: AllocationProblem, lam0: np.ndarray | None = None,
                forced: np.ndarray | None = None, workers: int = 1) -> DualOutcome:
    """Minimise the Lagrangian dual: the proven bound and the clearing prices of the round.

    forced (refills and appeals): (n,) option each item is forced to, -1 = free (forced_array);
    the bound is then the bound of the restricted problem (forced items at their option).
    workers: threads for the dual function of a month round (the same prices and bound for any
    number).

    The caller keeps the result and hands it on (``solve_lp_guided(dual=...)``, the LP
    relaxation and the quota costs in ``allocation.solve.dispatch``): it is computed once.
    """
    start = time.perf_counter()
    S = build_structure(problem, forced)
    if S.monthly:
        S.pricing.threads = max(1, int(workers))
    known_min = None
    if lam0 is None:
        lam0, lp_value = warm_start(problem, S)
        if lp_value is not None and not S.is_forced.any() and not _company_groups(problem):
            # the warm start was the LP of the whole problem, and without company blocks the
            # Lagrangian dual equals that LP: min f = the LP value
            known_min = lp_value / S.vscale
    dual = minimise_dual(S, lam0, known_min=known_min)
    raw = raw_prices(S, dual.lam)
    R = len(problem.capacity)
    return DualOutcome(structure=S, dual=dual, row_duals=raw[:R], cover_duals=raw[R:],
                       seconds=time.perf_counter() - start)


def solve_lp_guided(problem: AllocationProblem, *, time_limit_s: float = 60.0, workers: int = 1,
                    seed: int = 0, polish_core: int = POLISH_CORE_ITEMS,
                    lam0: np.ndarray | None = None, dual: DualOutcome | None = None,
                    large_core_parameters: dict[str, object] = LARGE_CORE_PARAMETERS,
                    forced: np.ndarray | None = None, incumbent: np.ndarray | None = None) -> Solution:
    """Dual prices -> rounding -> repair -> top-up -> CP-SAT polish on the core (see module doc).

    dual: the prices of this very problem when the caller already has them (else computed here,
    from lam0 when given). forced (refills and appeals, see forced_array): items kept at their
    option; pass the problem restricted by the fixed awards (AllocationProblem.restricted), so
    that items fixed to none have no option. The dual's structure carries the forcing.
    incumbent: a feasible choice vector (e.g. an earlier solver's) the polish starts from when it
    is better than the rounded one."""
    start = time.perf_counter()
    n = problem.n_items
    timings: dict[str, float] = {}
    t = time.perf_counter()
    d = dual if dual is not None else dual_prices(problem, lam0, forced, workers=workers)
    S, dual = d.structure, d.dual
    if forced is not None and not np.array_equal(S.forced, forced):
        raise ValueError("the dual prices were computed with other forced items")
    timings["dual"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    red = item_reduced(S, dual.lam)
    choice = decode(S, dual.chosen)
    if problem.equal_value_moves:   # by month: spread tied starts, move before dropping any
        choice = spread_ties(problem, S, choice, red)
        choice = move_before_drop(problem, S, choice, red)
    choice = repair(problem, S, choice, red)
    timings["round_repair"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    choice = top_up(problem, S, choice, red)
    if S.monthly:
        choice = fill_months(problem, S, choice, red)
    timings["top_up"] = round(time.perf_counter() - t, 3)
    if incumbent is not None:
        incumbent = np.asarray(incumbent, np.int64)
        keeps = np.array_equal(incumbent[S.is_forced], S.forced[S.is_forced])
        if keeps and not problem.violations(incumbent) and problem.objective(incumbent) > problem.objective(choice):
            choice = incumbent.copy()
    before_polish = problem.objective(choice)
    t = time.perf_counter()
    # a month round with one worker polishes its two cores one after the other (see polish)
    dtime = min(float(time_limit_s), POLISH_DTIME * (2 if S.monthly and workers < 2 else 1))
    if S.monthly:
        polish_core = min(polish_core, max(1, MONTH_CORE_OPTIONS // max(1, problem.n_options)))
    target = month_target_objective(dual.bound) if S.monthly else None
    exchanges: list[dict] = []

    def short(choice: np.ndarray) -> bool:
        return target is not None and problem.objective(choice) < target

    traded: dict[bytes, np.ndarray] = {}

    def trade(choice: np.ndarray) -> np.ndarray:
        """A month round short of its target: the exchange local search (see exchange; it is
        deterministic, so an allocation it has seen is not searched again)."""
        if not short(choice):
            return choice
        key = choice.tobytes()
        if key not in traded:
            traded[key], xinfo = exchange(problem, S, choice, red, dual.bound)
            exchanges.append(xinfo)
        return traded[key].copy()

    # by month, the rounding and every CP-SAT solve's allocation (each lane's, before the
    # best is taken) get an exchange search: the two find what the other misses
    improve = trade if S.monthly else None
    choice = trade(choice)
    # by month: rounds of start moves (each solve's allocation traded), and the polish only
    # when they solved nothing (a round no larger than its core, or no project whose GPU type
    # binds): on the 10k x 6 months round the polish's two cores found nothing the moves did not
    # (bench/results/months.md)
    minfo: dict | None = None
    if short(choice):
        # each solve gets the deterministic time of one polish core (time_limit_s caps it as well)
        lanes = max(1, min(int(workers), MONTH_MOVE_LANES))
        choice, minfo = move_starts(problem, S, choice, red, dual.lam, dual.bound, core_items=polish_core,
                                    dtime=min(float(time_limit_s), POLISH_DTIME),
                                    seeds=[seed + j for j in range(lanes)], rounds=MONTH_MOVE_ROUNDS,
                                    target_objective=target, improve=improve)
    if minfo is None or (short(choice) and not minfo["steps"]):
        choice, pinfo = polish(problem, S, choice, red, core_items=polish_core, dtime=dtime,
                               workers=workers, seed=seed, large_core_parameters=large_core_parameters,
                               target_objective=target, improve=improve)
    else:
        pinfo = {"core_items": 0, "improved_by": 0, "cpsat_status": None, "steps": [],
                 "polish_deterministic_time": 0.0}
    if minfo is not None:
        pinfo["start_moves"] = minfo
        pinfo["polish_deterministic_time"] = (pinfo.get("polish_deterministic_time", 0.0)
                                              + minfo["deterministic_time"])
    if target is not None and problem.objective(choice) >= target:
        pinfo["stopped_at_target"] = True
    if exchanges:
        pinfo["exchange"] = {"calls": len(exchanges), "moves": sum(x["moves"] for x in exchanges),
                             "improved_by": sum(x["improved_by"] for x in exchanges)}
    timings["polish"] = round(time.perf_counter() - t, 3)
    bad = problem.violations(choice)
    kept = S.is_forced
    if kept.any() and not np.array_equal(choice[kept], S.forced[kept]):
        bad.append("a forced item left its option")
    if bad and kept.any() and np.array_equal(choice[kept], S.forced[kept]):
        # the forced items break a quota and no allocation of the free ones was found to mend
        # it: no solution (the caller says so; a refill then stops with a message)
        return Solution(choice=S.forced.copy(), status="no_solution", objective=0, bound=dual.bound,
                        solver=SOLVER_NAME, wall_seconds=time.perf_counter() - start,
                        details={"workers": int(workers), "seed": int(seed), "strategy": "lp_guided",
                                 "violations": bad, "stopped_by": "deterministic_limit"})
    if bad:  # never expected: the steps above keep every limit and every forced item
        raise RuntimeError(f"lp-guided solver produced an infeasible allocation: {bad}")
    objective = problem.objective(choice)
    bound = max(dual.bound, float(objective))
    if pinfo.get("proved_whole_problem"):
        bound = min(bound, float_at_least(objective))
    status = "optimal" if bound - objective < 1.0 else "feasible"
    return Solution(
        choice=choice, status=status, objective=int(objective), bound=bound, solver=SOLVER_NAME,
        deterministic_time=float(pinfo.get("polish_deterministic_time", 0.0)),
        wall_seconds=time.perf_counter() - start,
        details={
            "workers": int(workers), "seed": int(seed), "strategy": "lp_guided",
            "dual_iterations": dual.iterations, "dual_converged": dual.converged,
            "dual_bound": dual.bound, "dual_lower_estimate": dual.lower,
            "objective_before_polish": int(before_polish), "polish": pinfo,
            "relaxed_company_blocks": S.relaxed_companies,
            "forced_items": int(kept.sum()),
            "row_prices": dict(zip(S.row_labels, [float(x) for x in raw_prices(S, dual.lam)])),
            "stage_seconds": timings,
            "stopped_by": ("proof" if status == "optimal" else "gap_target" if pinfo.get("stopped_at_target")
                           else "deterministic_limit"),
            "num_booleans": 0, "num_conflicts": 0,
        })
