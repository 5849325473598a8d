"""Schema fuzzing with schemathesis against a live loopback API: no 5xx, no undocumented status or
content type, and every body matches its declared schema.

The default run is bounded (a few examples per operation); the long run is marked `slow`.
POST /api/servers is left out: a valid request starts a real server process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance

from nocodetune.api.app import create_app
from nocodetune.jobs.service import JobService
from nocodetune.workspace import Workspace
from tests.jobs.conftest import fake_command
from tests.live_server import serve_in_thread

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TIMEOUT_S = 30  # schemathesis' 10 s default was too short once on a slow 2-core machine (no answer is not what is tested)


@pytest.fixture
def live_api(api_ws: Workspace) -> Iterator[str]:
    service = JobService(api_ws, command=fake_command("--steps", "2", "--sleep", "0.01"), poll_s=0.05, cancel_grace_s=5)
    with serve_in_thread(create_app(api_ws, job_service=service)) as url:
        yield url


# The document only: the app is built but not started (the tests call a live one).
schema = schemathesis.openapi.from_dict(create_app(Workspace("/nonexistent-workspace")).openapi()).exclude(method="POST", path="/api/servers")


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_api: str) -> None:
    case.call_and_validate(base_url=live_api, checks=CHECKS, timeout=TIMEOUT_S)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema_long(case: schemathesis.Case, live_api: str) -> None:
    case.call_and_validate(base_url=live_api, checks=CHECKS, timeout=TIMEOUT_S)
