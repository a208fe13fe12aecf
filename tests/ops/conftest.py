"""Registers the ``services`` marker used by the tests that start real PostgreSQL, Redis, Celery
workers or a browser on loopback."""


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "services: starts real services (PostgreSQL, Redis, Celery, Chromium) "
                                       "on loopback; skipped when their binaries are missing")
