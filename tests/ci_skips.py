"""Under CI a skipped test is a failure (pytest plugin, registered by tests/conftest.py).

When the environment variable CI is "true" or "1" (any case), every skip -- a skipif mark, a
pytest.skip() in a test or fixture, pytest.importorskip(), a module-level skip -- is reported as
a failure (a setup skip as an error) whose message is the skip reason, e.g. which service or
browser was missing, and the session exits non-zero. Locally (CI unset) skips stay skips.
Expected failures (xfail) are not skips and are left alone.
"""

from __future__ import annotations

import os

import pytest

ENV = "CI"


def enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("true", "1")


def _fail(report) -> None:
    reason = report.longrepr
    if isinstance(reason, tuple) and len(reason) == 3:   # (path, lineno, "Skipped: …")
        path, lineno, message = reason
        where = f" ({path}:{lineno})" if lineno is not None else f" ({path})"
        reason = f"{message.removeprefix('Skipped: ')}{where}"
    report.outcome = "failed"
    report.longrepr = (f"skipped under {ENV}={os.environ.get(ENV)}, which counts as a failure: "
                       f"{reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if enabled() and report.skipped and not hasattr(report, "wasxfail"):
        _fail(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if enabled() and report.skipped:
        _fail(report)
    return report
