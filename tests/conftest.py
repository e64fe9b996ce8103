"""Suite-wide plugins: pytester (tests of pytest behaviour) and tests.ci_skips (a skip fails under CI)."""

pytest_plugins = ["pytester", "tests.ci_skips"]
