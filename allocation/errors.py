"""Errors an officer can read: what is wrong, where, and what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class RoundError(Exception):
    """The round cannot run at all (missing file or column, bad TOML, empty capacity...).

    The message is complete and meant for people; callers print it, never a traceback.
    """


@dataclass(frozen=True, order=True)
class Issue:
    """One problem found in one cell or row of an input file."""

    file: str            # file name inside the round folder, e.g. "reviews.csv"
    row: int | None      # row as shown in the file (header = 1) or None for file-level
    column: str | None
    code: str            # machine code, e.g. "bad_checksum", "unknown_gpu_type"
    message: str         # human sentence including the offending value
    application_id: str | None = None   # the application the row belongs to, if any

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f" [{self.column}]"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict:
        return asdict(self)
