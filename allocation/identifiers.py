"""Korean business registration numbers (사업자등록번호): format and NTS checksum.

Ten digits ``XXX-XX-XXXXX``. With weights 1,3,7,1,3,7,1,3,5 on the first nine digits:
    s = sum(d[i] * w[i]) + (d[8] * 5) // 10
    check digit d[9] = (10 - s % 10) % 10
"""

from __future__ import annotations

import polars as pl

WEIGHTS: tuple[int, ...] = (1, 3, 7, 1, 3, 7, 1, 3, 5)


def normalize_business_no(value: str) -> str:
    """Digits only: '124-81-00998' -> '1248100998'."""
    return value.replace("-", "").strip()


def check_digit(first_nine: str) -> int:
    digits = [int(c) for c in first_nine]
    total = sum(d * w for d, w in zip(digits, WEIGHTS)) + (digits[8] * 5) // 10
    return (10 - total % 10) % 10


def is_valid_business_no(value: str) -> bool:
    digits = normalize_business_no(value)
    return len(digits) == 10 and digits.isascii() and digits.isdigit() \
        and check_digit(digits[:9]) == int(digits[9])


def format_business_no(digits: str) -> str:
    """'1248100998' -> '124-81-00998'."""
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def complete_business_no(first_nine: str) -> str:
    """Append the check digit and format: used by the generator and tests."""
    return format_business_no(first_nine + str(check_digit(first_nine)))


def business_no_is_valid_expr(column: str) -> pl.Expr:
    """Vectorised checksum test over a string column (null for null input)."""
    digits = pl.col(column).str.replace_all("-", "").str.strip_chars()
    well_formed = digits.str.contains(r"^[0-9]{10}$")
    d = [digits.str.slice(i, 1).cast(pl.Int64, strict=False) for i in range(10)]
    total = sum(d[i] * WEIGHTS[i] for i in range(9)) + (d[8] * 5) // 10
    check = (10 - total % 10) % 10
    return pl.when(well_formed).then(check == d[9]).otherwise(False)


def mask_business_no(value: str) -> str:
    """Public form: '124-81-*****'."""
    digits = normalize_business_no(value)
    return f"{digits[:3]}-{digits[3:5]}-*****"
