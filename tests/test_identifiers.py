"""National Tax Service checksum of business registration numbers."""

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.identifiers import (business_no_is_valid_expr, check_digit, complete_business_no,
                                    is_valid_business_no, mask_business_no)


@pytest.mark.parametrize("number", ["124-81-00998", "1248100998", "220-81-62517", " 124-81-00998 "])
def test_known_valid_numbers(number):
    assert is_valid_business_no(number)


@pytest.mark.parametrize("number", ["124-81-00997", "124-81-0099", "12481009981", "abc-de-fghij",
                                    "", "１２４-81-00998"])
def test_invalid_numbers(number):
    assert not is_valid_business_no(number)


def test_check_digit_worked_example():
    # 1*1+2*3+4*7+8*1+1*3+0*7+0*1+9*3+9*5 = 118; + (9*5)//10 = 4 -> 122; (10 - 2) % 10 = 8
    assert check_digit("124810099") == 8


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.integers(0, 9))
def test_exactly_one_check_digit_is_valid(first_nine, last):
    candidate = f"{first_nine}{last}"
    assert is_valid_business_no(candidate) == (last == check_digit(first_nine))
    assert is_valid_business_no(complete_business_no(first_nine))


@given(st.lists(st.text(alphabet="0123456789-", max_size=13), max_size=30))
def test_vectorised_check_agrees_with_scalar(values):
    frame = pl.DataFrame({"b": values}, schema={"b": pl.String})
    vectorised = frame.select(ok=business_no_is_valid_expr("b"))["ok"].to_list()
    assert vectorised == [is_valid_business_no(v) for v in values]


def test_mask():
    assert mask_business_no("124-81-00998") == "124-81-*****"
