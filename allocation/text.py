"""Applicant text made safe for every place it reaches: one definition of what is forbidden in a
cell, and one escaper per output format.

Intake refuses cells that hold control or invisible formatting characters (C0/C1 controls,
DEL, bidi overrides and isolates, zero-width characters, a BOM inside a value, line and
paragraph separators): each becomes a per-row issue, so such text never reaches an output.
The escapers below are the second line of defence, for text from any source:

* ``terminal``  — what is printed to a terminal or a log: control characters shown as \\u{…}
* ``markdown_cell`` — one Markdown table cell: pipes, brackets, backticks, emphasis and HTML
  characters escaped, line breaks flattened
* HTML goes through Jinja2 autoescaping (allocation.publish.report); CSV/XLSX through
  ``allocation.publish.award_list.neutralise`` and XLSX without URL/formula conversion.
"""

from __future__ import annotations

import re
import unicodedata

# Cc: C0/C1 controls and DEL; Cf: format characters (bidi controls U+202A-E, U+2066-9, U+200E/F,
# U+061C, zero-width U+200B-D, U+2060, BOM U+FEFF, soft hyphen...); Zl/Zp: U+2028/U+2029.
FORBIDDEN_PATTERN = r"[\p{Cc}\p{Cf}\x{2028}\x{2029}]"          # polars / Rust regex syntax
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # Cc, Zl, Zp; Cf checked by category


def is_forbidden(char: str) -> bool:
    return bool(_FORBIDDEN.match(char)) or unicodedata.category(char) == "Cf"


def first_forbidden(value: str) -> tuple[int, str] | None:
    """(1-based position, 'U+XXXX NAME') of the first forbidden character, or None."""
    for i, char in enumerate(value, 1):
        if is_forbidden(char):
            return i, describe(char)
    return None


def describe(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}"


_KEPT = frozenset("\n\t")   # line breaks and tabs of multi-line text are harmless


def terminal(value: object) -> str:
    """Text safe to print to a terminal or a log: every forbidden character (escape sequences
    included) shown as a visible \\u{…} escape, except line breaks and tabs; nothing else changes."""
    text = str(value)
    if not any(is_forbidden(c) and c not in _KEPT for c in text):
        return text
    return "".join(f"\\u{{{ord(c):04x}}}" if is_forbidden(c) and c not in _KEPT else c for c in text)


_MARKDOWN_SPECIAL = re.compile(r"([\\|`*_\[\]<>#~!])")


def markdown_cell(value: object) -> str:
    """One Markdown table cell: no new rows, columns, links, code or HTML from the data."""
    text = terminal(" ".join(str(value).split()))     # line breaks and runs of spaces -> one space
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
