"""Errors an officer can read: what is wrong, where, and what to do."""

from __future__ import annotations


class RoundError(Exception):
    """The round cannot run at all (missing file or column, bad TOML, empty capacity...).

    The message is complete and meant for people; callers print it, never a traceback.
    """
