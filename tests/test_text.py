"""What is forbidden in a cell, and the escaper per output format (allocation.text)."""

import pytest

from allocation import text


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\n", "\r", "\x7f", "\x85", "\u200b", "\u200d",
                                  "\u202e", "\u2066", "\u061c", "\ufeff", "\u2028", "\u2029", "\u00ad"])
def test_controls_and_invisible_formatting_are_forbidden(char):
    assert text.is_forbidden(char)
    assert text.first_forbidden(f"ab{char}c")[0] == 3


@pytest.mark.parametrize("value", ["(주)한국AI", "Café Ltd.", "A&B Co.", "東京", "x = y + 1", "🚀 rocket"])
def test_ordinary_text_passes(value):
    assert text.first_forbidden(value) is None
    assert text.terminal(value) == value


def test_terminal_shows_escapes_and_keeps_lines():
    assert text.terminal("a\x1b[2Jb\u202ec\nd\te") == "a\\u{001b}[2Jb\\u{202e}c\nd\te"


def test_markdown_cell_cannot_add_rows_columns_links_or_code():
    cell = text.markdown_cell("a | b\n| c | [x](http://e) `y` *z* <i>")
    assert "\n" not in cell
    assert cell == "a \\| b \\| c \\| \\[x\\](http://e) \\`y\\` \\*z\\* \\<i\\>"
