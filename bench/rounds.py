"""Synthetic benchmark rounds: generated once, validated and scored once, cached on disk.

Data lives outside the repository (default $VOUCHER_BENCH_DATA or /tmp/voucher-bench):
  round_<n>_c80/    raw round folder (CSV, as officers send them), bench.synthetic seed 0 with
                    80-bit receipt codes (bench.synthetic.with_strong_codes: intake's PBKDF2 at
                    100 iterations, not hours at 1M); round_<n>_gpu_<factors>_c80/ etc. for rounds
                    with other GPU capacity factors
  prepared_<n>/     intake/ + scores.parquet (allocation.rounds.allocate.validate + score)
  problem_<n>.npz   the AllocationProblem arrays (what every solver method loads)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

SEED = 0


def data_dir() -> Path:
    path = Path(os.environ.get("VOUCHER_BENCH_DATA", "/tmp/voucher-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _name(kind: str, n: int, capacity_factors: tuple[float, ...] | None) -> str:
    tag = "" if capacity_factors is None else "_gpu_" + "_".join(f"{f:g}" for f in capacity_factors)
    return f"{kind}_{n}{tag}_c80"


def round_dir(n: int, capacity_factors: tuple[float, ...] | None = None) -> Path:
    path = data_dir() / _name("round", n, capacity_factors)
    if not (path / "round.toml").exists():
        from bench.synthetic import build_round, with_strong_codes, write_round
        write_round(with_strong_codes(build_round(n, seed=SEED, capacity_factors=capacity_factors)), path)
    return path


def prepared_dir(n: int, capacity_factors: tuple[float, ...] | None = None) -> Path:
    from allocation import files
    from allocation.rounds import allocate
    path = data_dir() / _name("prepared", n, capacity_factors)
    if not (path / files.SCORES).exists():
        allocate.validate(round_dir(n, capacity_factors), path)
        allocate.score(path)
    return path


def model_data(n: int, capacity_factors: tuple[float, ...] | None = None):
    """ModelData of the round with n applications (validate + score cached)."""
    import polars as pl
    from allocation import files, intake
    from allocation.model.build import build_model
    prepared = prepared_dir(n, capacity_factors)
    v = intake.load_validated(prepared / files.INTAKE)
    scores = pl.read_parquet(prepared / files.SCORES)
    return build_model(v.applications, v.requests, v.capacity, scores, v.config)


_FIELDS = ("value", "allowed", "weight", "capacity", "company", "company_weight", "cover")


def problem_path(n: int) -> Path:
    path = data_dir() / f"problem_{n}.npz"
    if not path.exists():
        p = model_data(n).problem
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f: getattr(p, f) for f in _FIELDS},
                 company_cap=np.int64(p.company_cap),
                 row_names=np.array(p.row_names), cover_names=np.array(p.cover_names))
        os.replace(tmp, path)
    return path


def load_problem(n: int):
    from allocation.model.problem import AllocationProblem
    with np.load(problem_path(n)) as z:
        return AllocationProblem(
            **{f: z[f] for f in _FIELDS}, company_cap=int(z["company_cap"]),
            row_names=tuple(str(s) for s in z["row_names"]),
            cover_names=tuple(str(s) for s in z["cover_names"]))


if __name__ == "__main__":
    import sys
    for n in [int(a) for a in sys.argv[1:]]:
        t = time.perf_counter()
        problem_path(n)
        print(n, "ready in", round(time.perf_counter() - t, 1), "s", flush=True)
