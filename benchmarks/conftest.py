"""The benchmarks borrow the test suite's fixtures (MariaDB scratch databases on the real DDL)."""

pytest_plugins = ["tests.conftest"]
