"""tests/ci_skips.py: under CI=true every skip fails with its reason; locally skips stay skips."""

from __future__ import annotations

import pytest

from tests import ci_skips

# The skip patterns the suite uses: a skipif mark (tests/deploy), pytest.skip() in a module-scoped
# fixture and pytest.importorskip() in a fixture (tests/browser), plus a module-level importorskip.
INNER = '''
import pytest

@pytest.mark.skipif(True, reason="PostgreSQL at 127.0.0.1:5432 unreachable")
def test_marked():
    pass

@pytest.fixture(scope="module")
def browser():
    pytest.skip("Chromium at /nonexistent/chromium missing")

def test_fixture_a(browser):
    pass

def test_fixture_b(browser):
    pass

def test_importorskip():
    pytest.importorskip("no_such_module_xyz", reason="the playwright package is missing")

def test_runs():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False
'''


def _run(pytester):
    pytester.makepyfile(test_inner=INNER)
    return pytester.runpytest("-ra", "-p", "no:cacheprovider", plugins=[ci_skips])


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_under_ci_every_skip_fails_with_its_reason(pytester, monkeypatch, value):
    monkeypatch.setenv("CI", value)
    result = _run(pytester)
    # skipif and fixture skips happen at setup (errors); importorskip in the body is a failure
    result.assert_outcomes(passed=1, failed=1, errors=3, xfailed=1)
    assert result.ret != 0
    out = result.stdout.str()
    for reason in ("PostgreSQL at 127.0.0.1:5432 unreachable", "Chromium at /nonexistent/chromium missing",
                   "the playwright package is missing"):
        assert reason in out
    assert f"skipped under CI={value}, which counts as a failure" in out
    assert "skipped" not in result.parseoutcomes()


def test_under_ci_a_module_level_skip_fails_the_run(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_mod='import pytest\n'
                                 'pytest.importorskip("no_such_module_xyz", reason="Redis client missing")\n'
                                 'def test_x():\n    pass\n')
    result = pytester.runpytest("-ra", "-p", "no:cacheprovider", plugins=[ci_skips])
    assert result.ret != 0
    assert "Redis client missing" in result.stdout.str()
    assert "skipped" not in result.parseoutcomes()


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_outside_ci_skips_stay_skips_with_their_message(pytester, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    result = _run(pytester)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == 0
    out = result.stdout.str()
    assert "PostgreSQL at 127.0.0.1:5432 unreachable" in out
    assert "Chromium at /nonexistent/chromium missing" in out
    assert "counts as a failure" not in out


def test_the_suite_registers_the_plugin(request):
    assert request.config.pluginmanager.get_plugin("tests.ci_skips") is ci_skips
