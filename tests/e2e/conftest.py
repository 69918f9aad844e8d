"""The e2e marker and the phase-timing summary of tests/e2e (printed at the end of every run that has one)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import results


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs a real NVFlare federation from rendered manifests and bundles (root, network namespaces)")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if results.RUNS:
        terminalreporter.write_sep("-", "end-to-end federation: phase timings")
        terminalreporter.write_line(results.table(results.RUNS))
        terminalreporter.write_line(f"(also in {results.RESULTS.relative_to(results.REPO_ROOT)})")


@pytest.fixture(scope="session")
def e2e_sealing(sealing_keypair: tuple[Any, Any]) -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM) of the test's Sealed Secrets controller, made at test time."""
    key, cert = sealing_keypair
    return key.read_bytes(), cert.read_bytes()
