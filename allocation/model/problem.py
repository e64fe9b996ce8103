"""The allocation model as plain integer arrays: what every solver takes.

Items are the selectable applications; options are the non-zero award levels.
Choose for each item at most one option (none = level 0) to

    maximise   sum value[i, l] * x[i, l]
    subject to sum_{i,l} weight[r, i, l] * x[i, l] <= capacity[r]      for every knapsack row r
               sum_{i in company c, l} company_weight[i, l] * x[i, l] <= company_cap   for every c
               sum_{i,l} cover[q, i, l] * x[i, l] >= 0                  for every quota row q
               x[i, l] = 0 where not allowed[i, l]

All coefficients are int64 (CP-SAT takes integers only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from allocation.model.money import hours_by_month, hours_in_month, month_shares


class MonthlyWeight:
    """The knapsack rows of a month round without storing them: shape (T*M + 1, n, L*M).

    Row t*M + m is GPU type t in month m, the last row the budget; option o = level * M + start.
    weight[t*M + m, i, l*M + s] = hours_in_month(hours[i, l, t], duration[i], m - s), and the
    budget row is awarded[i, o]. The dense array would be (T*M + 1) x n x L*M int64 (330 MiB at
    100k applications x 6 months, 14 GiB at 1M x 12); this holds hours (n, L, T), duration (n,)
    and awarded (n, L*M) and computes what an index asks for. Indexing as numpy does for the
    forms the solvers use: w[rows, items, options] (rows an int, slice, array or ...; items and
    options ints or arrays that broadcast), w[rows, items] (every option), w[r] (one row);
    anything else goes through the dense array (np.asarray(w): small problems only).
    """

    ndim = 3
    dtype = np.dtype(np.int64)

    def __init__(self, hours: np.ndarray, duration: np.ndarray, months: int, awarded: np.ndarray):
        self.hours = np.asarray(hours, np.int64)          # (n, L, T) hours per level and type
        self.duration = np.asarray(duration, np.int64)    # (n,)
        self.months = int(months)
        self.awarded = np.asarray(awarded, np.int64)      # (n, L*M)
        n, L, T = self.hours.shape
        self.shape = (T * self.months + 1, n, L * self.months)

    @property
    def nbytes(self) -> int:
        return self.hours.nbytes + self.duration.nbytes + self.awarded.nbytes

    def usage(self, items: np.ndarray, options: np.ndarray) -> np.ndarray:
        """(k, T*M + 1) int64: every row's usage of option options[j] of item items[j]."""
        items = np.asarray(items, np.int64).ravel()
        options = np.asarray(options, np.int64).ravel()
        M = self.months
        T = self.hours.shape[2]
        h = self.hours[items, options // M]                 # (k, T)
        gpu = hours_by_month(h, self.duration[items], options % M, M)     # (k, T, M)
        out = np.empty((len(items), T * M + 1), np.int64)
        out[:, :-1] = gpu.reshape(len(items), T * M)
        out[:, -1] = self.awarded[items, options]
        return out

    def gpu_usage_by_start(self, items: np.ndarray, level: np.ndarray) -> np.ndarray:
        """(k, T, M, M) int64: hours of type t in month m for every start s, [j, t, m, s]."""
        M = self.months
        h = self.hours[items, level]                        # (k, T)
        d = self.duration[items][:, None, None, None]
        k = np.arange(M)[None, None, :, None] - np.arange(M)[None, None, None, :]
        return hours_in_month(h[:, :, None, None], d, k).astype(np.int64)

    def total(self, items: np.ndarray, options: np.ndarray) -> np.ndarray:
        """(T*M + 1,) int64: the rows used by options[j] of items[j] together (= usage().sum(0)),
        summed per (start, duration) instead of per item."""
        items = np.asarray(items, np.int64).ravel()
        options = np.asarray(options, np.int64).ravel()
        n, L, T = self.hours.shape
        M = self.months
        out = np.zeros(T * M + 1, np.int64)
        if len(items) == 0:
            return out
        out[-1] = int(self.awarded[items, options].sum())
        d = self.duration[items]
        h = self.hours[items, options // M]                     # (k, T)
        base, last = month_shares(h, d[:, None])
        key = (options % M) * (M + 1) + d
        order = np.argsort(key, kind="stable")
        keys, first = np.unique(key[order], return_index=True)
        sums_b = np.add.reduceat(base[order], first, axis=0)    # (K, T) exact int64
        sums_l = np.add.reduceat(last[order], first, axis=0)
        use = out[:-1].reshape(T, M)
        for kk, sb, sl in zip(keys.tolist(), sums_b, sums_l):
            s, dd = divmod(kk, M + 1)
            for m in range(s, min(s + dd - 1, M)):
                use[:, m] += sb
            if s + dd - 1 < M:
                use[:, s + dd - 1] += sl
        return out

    def fits(self, resid: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """(n, L*M) bool (or (len(items), L*M) for the given items): the option's hours fit a
        residual of the GPU rows (T*M,) on their own."""
        n_all, L, T = self.hours.shape
        M = self.months
        items = np.arange(n_all) if items is None else np.asarray(items, np.int64)
        n = len(items)
        res = np.asarray(resid, np.int64).reshape(T, M)
        if (res < 0).any() or n == 0:   # usage is >= 0: nothing fits a row that is already over
            return np.zeros((n, L * M), bool)
        # per duration d and start s: the smallest residual over months s..s+d-2 (the floor
        # share) and the residual of month s+d-1 (the remainder); months past the last one do
        # not exist, so a start that runs over uses none of them
        big = np.iinfo(np.int64).max
        d_all = self.duration[items]
        out = np.zeros((n, L, M), bool)
        for d in np.unique(d_all).tolist():
            sel = np.flatnonzero(d_all == d)
            low = np.full((T, M), big, np.int64)
            end = np.full((T, M), big, np.int64)
            for s in range(M):
                if s + d - 1 < M:
                    end[:, s] = res[:, s + d - 1]
                if d > 1:
                    low[:, s] = res[:, s:min(s + d - 1, M)].min(axis=1)
            h = self.hours[items[sel]]                            # (k, L, T)
            base, last = month_shares(h, d)
            out[sel] = ((base[:, :, :, None] <= low) & (last[:, :, :, None] <= end)).all(axis=2)
        return out.reshape(n, L * M)

    def __array__(self, dtype=None, copy=None):
        n, O = self.shape[1], self.shape[2]
        ii = np.repeat(np.arange(n), O)
        oo = np.tile(np.arange(O), n)
        dense = self.usage(ii, oo).T.reshape(self.shape) if n and O else np.zeros(self.shape, np.int64)
        return dense if dtype is None else dense.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) == 1:
            key = key + (slice(None), slice(None))
        elif len(key) == 2:
            key = key + (slice(None),)
        rows, items, options = key
        if rows is Ellipsis:
            rows = slice(None)
        n, O = self.shape[1], self.shape[2]
        if isinstance(items, slice):
            items = np.arange(n)[items]
        if isinstance(options, slice):
            # every option of each item: (R, k, O) (or (R, n, O) for the whole array)
            opts = np.arange(O)[options]
            it = np.asarray(items, np.int64)
            ii, oo = np.broadcast_arrays(it[..., None], opts)
        else:
            ii, oo = np.broadcast_arrays(np.asarray(items, np.int64), np.asarray(options, np.int64))
        shape = ii.shape
        use = self.usage(ii, oo)                                 # (k, R)
        full = np.moveaxis(use.reshape(*shape, self.shape[0]), -1, 0)   # (R, *shape)
        if isinstance(rows, (slice, int, np.integer)):
            return full[rows]
        rows = np.asarray(rows, np.int64)
        rr, jj = np.broadcast_arrays(rows, np.arange(int(np.prod(shape))).reshape(shape))
        return full.reshape(self.shape[0], -1)[rr, jj]


@dataclass(frozen=True)
class AllocationProblem:
    value: np.ndarray            # (n, L) int64, objective coefficient of option l of item i
    allowed: np.ndarray          # (n, L) bool
    weight: np.ndarray           # (R, n, L) int64, usage of knapsack row r (month rounds: MonthlyWeight)
    capacity: np.ndarray         # (R,) int64
    row_names: tuple[str, ...]   # (R,) e.g. "gpu:H100", "budget"
    company: np.ndarray          # (n,) int64 company index per item, 0..C-1
    company_weight: np.ndarray   # (n, L) int64 (awarded KRW)
    company_cap: int
    cover: np.ndarray            # (Q, n, L) int64, quota rows: sum >= 0
    cover_names: tuple[str, ...] # (Q,)
    # GPU capacity by month: an item's options of equal value differ only in the GPU rows they
    # use (start months); the large-round repair may move an item between them
    equal_value_moves: bool = False

    @property
    def n_items(self) -> int:
        return int(self.value.shape[0])

    @property
    def n_options(self) -> int:
        return int(self.value.shape[1])

    def objective(self, choice: np.ndarray) -> int:
        """Objective of a choice vector (-1 = not funded, else option index)."""
        picked = choice >= 0
        idx = np.nonzero(picked)[0]
        return int(self.value[idx, choice[idx]].sum())

    def usage(self, choice: np.ndarray) -> dict[str, np.ndarray]:
        """Row activities of a choice vector: knapsack rows, company sums, cover rows."""
        idx = np.nonzero(choice >= 0)[0]
        opt = choice[idx]
        knapsack = self.weight[:, idx, opt].sum(axis=1) if len(idx) else np.zeros(len(self.capacity), np.int64)
        companies = np.zeros(int(self.company.max(initial=-1)) + 1, np.int64)
        if len(idx):
            np.add.at(companies, self.company[idx], self.company_weight[idx, opt])
        cover = self.cover[:, idx, opt].sum(axis=1) if len(idx) else np.zeros(len(self.cover_names), np.int64)
        return {"knapsack": knapsack, "company": companies, "cover": cover}

    def violations(self, choice: np.ndarray) -> list[str]:
        """Human-readable list of broken constraints (empty = feasible)."""
        out: list[str] = []
        idx = np.nonzero(choice >= 0)[0]
        if len(idx) and not self.allowed[idx, choice[idx]].all():
            out.append("an option that is not allowed is chosen")
        if (choice >= self.n_options).any() or (choice < -1).any():
            out.append("choice index out of range")
            return out
        use = self.usage(choice)
        for name, used, cap in zip(self.row_names, use["knapsack"], self.capacity):
            if used > cap:
                out.append(f"{name}: {used} > {cap}")
        over = np.nonzero(use["company"] > self.company_cap)[0]
        if len(over):
            out.append(f"company cap exceeded for company index {over.tolist()}")
        for name, act in zip(self.cover_names, use["cover"]):
            if act < 0:
                out.append(f"quota {name}: activity {act} < 0")
        return out

    def without_quota(self, q: int) -> AllocationProblem:
        """The same problem without quota row q (what the quota costs)."""
        keep = [k for k in range(len(self.cover_names)) if k != q]
        return replace(self, cover=self.cover[keep], cover_names=tuple(self.cover_names[k] for k in keep))

    def restricted(self, fixed: dict[int, int] | None) -> AllocationProblem:
        """The problem with each fixed item limited to its option (-1: to none)."""
        if not fixed:
            return self
        allowed = self.allowed.copy()
        for i, o in fixed.items():
            allowed[i, :] = False
            if o >= 0:
                allowed[i, o] = True
        return replace(self, allowed=allowed, value=np.where(allowed, self.value, 0))


@dataclass
class Solution:
    choice: np.ndarray           # (n,) int64, -1 = not funded, else option index
    status: str                  # "optimal" | "feasible" | "no_solution"
    objective: int
    bound: float                 # proven upper bound on the objective (>= objective)
    solver: str                  # e.g. "cp-sat 9.15"
    deterministic_time: float = 0.0
    wall_seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative gap (bound - objective) / max(|bound|, 1)."""
        return float(max(self.bound - self.objective, 0.0) / max(abs(self.bound), 1.0))
