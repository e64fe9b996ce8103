"""Receipt codes: one normalisation, a strength grade, and the per-round lookup master keys.

Receipt codes leave intake only as *masters*: ``PBKDF2-HMAC-SHA256(code, round_salt ‖ round_id ‖
0x00 ‖ application_id, iterations of the code's strength class)``, 32 bytes per application, kept
in the officers' run folder (``intake/applications.parquet``, 0600) instead of the codes. Every
published version derives its file names and keys from the masters with HKDF and a fresh
per-version salt (``allocation.publish.lookup``), so a republish runs no PBKDF2 at all.

**The floor.** Guessing one applicant's code must cost at least ``FLOOR_GPU_YEARS`` (100)
GPU-years. The guessing rate is hashcat's PBKDF2-HMAC-SHA256 benchmark (mode 10900) on an
NVIDIA RTX 5090: 11,157.2 kH/s at 999 iterations (hashcat v6.2.6-851, Chick3nman's public RTX
5090 benchmark). PBKDF2's cost is linear in its iterations, so a GPU does ``GPU_ITERATIONS_PER_S``
= 11,157,200 × 999 ≈ 1.11e10 iterations per second, i.e. 1.11e10 / c guesses per second at c
iterations. A code with b bits is found after 2^(b-1) guesses on average, so c must be at least
``GPU_ITERATIONS_PER_S × FLOOR_GPU_YEARS × 365.25 × 86,400 / 2^(b-1)``.

**Strength.** b = length × log2(alphabet), on the normalised code (NFKC, spaces and hyphens
removed, upper-cased), the alphabet being the smallest of: digits (10), letters (26), Crockford
base32 (32: digits and letters without I, L, O, U), digits and letters (36), printable ASCII
(67 after upper-casing, without space and hyphen); a code with any other character is graded as
printable ASCII (an underestimate for Hangul, never an overestimate). Bits are counted in whole
millibits (floored ``log2`` per character) so that Python and the results page (JavaScript)
compute exactly the same integer.

**Classes.** Class k (k = ``MIN_CLASS_BITS`` … ``TOP_CLASS_BITS``) holds codes of at least k bits
(class 60 also everything above) and uses ``class_iterations(k)`` = the floor's c at b = k,
rounded up to a multiple of 100 and at least ``MIN_ITERATIONS`` (100). The weakest class is the one
whose c stays within ``MAX_ITERATIONS`` (2,000,000: ~0.3 s per code on one CPU core, done once per
round): codes below ``MIN_CLASS_BITS`` (45) bits are *weak* — intake reports them
(``weak_receipt_code``, and ``intake/weak_receipt_codes.csv`` for the officer) and they never get
a public file. The results page recomputes the class from what the applicant types and reads
the iterations from ``lookup.json``.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import polars as pl

# --- The floor and the rate it is measured against ----------------------------------
FLOOR_GPU_YEARS = 100
RATE_SOURCE = ("hashcat v6.2.6-851 benchmark, NVIDIA RTX 5090 FE (Chick3nman), hash mode 10900 "
               "PBKDF2-HMAC-SHA256: 11,157.2 kH/s at 999 iterations; scaled linearly in the "
               "iteration count")
GPU_GUESSES_PER_S_AT_999 = 11_157_200
GPU_ITERATIONS_PER_S = GPU_GUESSES_PER_S_AT_999 * 999
SECONDS_PER_YEAR = 365.25 * 86_400
MAX_ITERATIONS = 2_000_000
MIN_ITERATIONS = 100
TOP_CLASS_BITS = 60

# --- Normalisation (the same in allocation/templates/lookup.js) -----------------------
STRIP = " \t\r\n"
CODE_DROP = " \t\r\n-"
DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ALNUM = DIGITS + LETTERS
ASCII = "".join(chr(c) for c in range(0x21, 0x7F) if not ("a" <= chr(c) <= "z") and chr(c) != "-")
# (alphabet, millibits per character = floor(1000 × log2(size))), smallest first
ALPHABETS: tuple[tuple[str, str, int], ...] = tuple(
    (name, chars, math.floor(1000 * math.log2(len(chars))))
    for name, chars in (("digits", DIGITS), ("letters", LETTERS), ("base32", CROCKFORD),
                        ("alphanumeric", ALNUM), ("ascii", ASCII)))
SALT_BYTES = 16
MASTER_BYTES = 32


def normalise_id(value: str) -> str:
    """NFKC, trimmed, upper-cased: application ids match whatever case the applicant types."""
    return unicodedata.normalize("NFKC", value).strip(STRIP).upper()


def normalise_code(value: str) -> str:
    """NFKC, upper-cased, spaces and hyphens removed (codes are printed in groups)."""
    text = unicodedata.normalize("NFKC", value).upper()
    return "".join(ch for ch in text if ch not in CODE_DROP)


def alphabet_of(code: str) -> tuple[str, int, int]:
    """(alphabet name, size, millibits per character) of a normalised code."""
    chars = set(code)
    for name, alphabet, milli in ALPHABETS:
        if chars <= set(alphabet):
            return name, len(alphabet), milli
    name, alphabet, milli = ALPHABETS[-1]
    return "other", len(alphabet), milli


def millibits(code: str) -> int:
    """Strength of a (raw) code in whole millibits: len × floor(1000 × log2(alphabet))."""
    norm = normalise_code(code)
    return len(norm) * alphabet_of(norm)[2] if norm else 0


def required_iterations(bits: float) -> int:
    """PBKDF2 iterations so that guessing a code of `bits` bits costs FLOOR_GPU_YEARS on the GPU."""
    work = GPU_ITERATIONS_PER_S * FLOOR_GPU_YEARS * SECONDS_PER_YEAR     # iterations the attacker has
    return math.ceil(work / 2 ** (bits - 1))


def class_iterations(bits: int) -> int:
    return max(MIN_ITERATIONS, -(-required_iterations(bits) // 100) * 100)


def _min_class_bits() -> int:
    bits = 1
    while class_iterations(bits) > MAX_ITERATIONS:
        bits += 1
    return bits


MIN_CLASS_BITS = _min_class_bits()
CLASSES: tuple[tuple[int, int], ...] = tuple(
    (bits, class_iterations(bits)) for bits in range(MIN_CLASS_BITS, TOP_CLASS_BITS + 1))


def strength_class(milli: int) -> int | None:
    """The class (bits) of a code of `milli` millibits; None: weak, no public file."""
    bits = min(milli // 1000, TOP_CLASS_BITS)
    return bits if bits >= MIN_CLASS_BITS else None


def iterations_for(code: str) -> int | None:
    """PBKDF2 iterations of a code's class (None: too weak for the floor)."""
    cls = strength_class(millibits(code))
    return None if cls is None else dict(CLASSES)[cls]


def guess_cost_gpu_years(milli: int, iterations: int) -> float:
    """Expected GPU-years to find a code of `milli` millibits at `iterations` (half the space)."""
    return 2 ** (milli / 1000 - 1) * iterations / GPU_ITERATIONS_PER_S / SECONDS_PER_YEAR


def floor_json() -> dict:
    """What lookup.json and the manifest say about the floor and how it is computed."""
    return {
        "gpu_years_per_code": FLOOR_GPU_YEARS,
        "rate": {"source": RATE_SOURCE, "guesses_per_s_at_999_iterations": GPU_GUESSES_PER_S_AT_999,
                 "iterations_per_s": GPU_ITERATIONS_PER_S},
        "rule": "iterations(class b) = max(100, ceil100(iterations_per_s × years × 31,557,600 "
                "/ 2^(b-1))); a code of b bits is in class min(b, 60); below the weakest class: no file",
        "strength": "len(code) × floor(1000 × log2(alphabet)) millibits on the normalised code; "
                    "alphabet = smallest of digits 10, letters 26, Crockford base32 32, "
                    "alphanumeric 36, printable ASCII 67 (anything else graded as 67)",
        "max_iterations": MAX_ITERATIONS,
        "alphabets": [{"name": n, "chars": c, "millibits_per_char": m} for n, c, m in ALPHABETS],
        "classes": [{"min_millibits": bits * 1000, "iterations": it} for bits, it in CLASSES],
    }


# --- Issuing strong codes (voucher codes) ----------------------------------------------
CODE_GROUPS, CODE_GROUP_LEN = 4, 4     # 16 Crockford base32 characters = 80 bits


def new_code() -> str:
    """One receipt code for a submission system: 80 random bits as ``XXXX-XXXX-XXXX-XXXX`` in
    Crockford base32 (no I, L, O, U: nothing to confuse when read aloud or retyped)."""
    chars = "".join(secrets.choice(CROCKFORD) for _ in range(CODE_GROUPS * CODE_GROUP_LEN))
    return "-".join(chars[i:i + CODE_GROUP_LEN] for i in range(0, len(chars), CODE_GROUP_LEN))


def new_codes(n: int) -> list[str]:
    """n distinct codes (a repeat among 2^80 is only theoretically possible: drawn again)."""
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(new_code(), None)
    return list(seen)


# --- Masters ---------------------------------------------------------------------------

def round_salt(round_id: str, applications_sha256: str) -> bytes:
    """The round's PBKDF2 salt: fixed for one applications file, so every run and refill of the
    round reaches the same masters, yet unknown before the round's files are published (it hashes
    the applications file)."""
    return hashlib.sha256(b"voucher-lookup/2 round salt\x00" + round_id.encode() + b"\x00"
                          + applications_sha256.encode()).digest()[:SALT_BYTES]


def master(salt: bytes, round_id: str, application_id: str, code: str, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", normalise_code(code).encode("utf-8"),
                               salt + round_id.encode() + b"\x00"
                               + normalise_id(application_id).encode("utf-8"),
                               iterations, MASTER_BYTES)


def derive_masters(ids: list[str | None], codes: list[str | None], salt: bytes, round_id: str,
                   workers: int | None = None) -> tuple[list[bytes | None], list[int | None], list[int | None]]:
    """(master, millibits, iterations) per row; None where there is no id, no code or a weak code.
    hashlib's PBKDF2 releases the GIL: threads use every core."""
    milli = [None if c is None else millibits(c) for c in codes]
    iters = [None if m is None else (None if strength_class(m) is None else dict(CLASSES)[strength_class(m)])
             for m in milli]
    todo = [i for i, (a, it) in enumerate(zip(ids, iters))
            if it is not None and a is not None and normalise_id(a)]
    out: list[bytes | None] = [None] * len(ids)
    workers = workers or min(8, os.cpu_count() or 1)

    def one(i: int) -> tuple[int, bytes]:
        return i, master(salt, round_id, ids[i], codes[i], iters[i])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, value in pool.map(one, todo, chunksize=256):
            out[i] = value
    return out, milli, iters


MASTER_COLUMN = "lookup_master"
MILLIBITS_COLUMN = "code_millibits"
ITERATIONS_COLUMN = "code_iterations"


def seal_codes(apps: pl.DataFrame, round_id: str, salt: bytes) -> pl.DataFrame:
    """The applications table with receipt_code replaced by the master key (binary), the code's
    millibits and its class iterations."""
    masters, milli, iters = derive_masters(apps["application_id"].to_list(),
                                           apps["receipt_code"].to_list(), salt, round_id)
    return apps.drop("receipt_code").with_columns(
        pl.Series(MASTER_COLUMN, masters, dtype=pl.Binary),
        pl.Series(MILLIBITS_COLUMN, milli, dtype=pl.Int64),
        pl.Series(ITERATIONS_COLUMN, iters, dtype=pl.Int64))


def weak_rows(apps: pl.DataFrame) -> pl.DataFrame:
    """Rows with a code that passed intake but is below the floor (sealed applications table)."""
    return apps.filter(pl.col(MILLIBITS_COLUMN).is_not_null() & pl.col(ITERATIONS_COLUMN).is_null())
