"""Fuzz every operation of /openapi.json with schemathesis (4.x): no input may cause a server error.

Cases are generated from the schema and sent to the app in process (ASGI) with an admin API key,
on a seeded SQLite workspace made when the module is collected (schemathesis parametrizes at
import time; its ``from_fixture`` does not work with this pytest). 25 examples per operation."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import TEST_NOW
from tests.web.api_fixtures import seed
from winback.web.app import create_app
from winback.workspace import init_workspace

_ROOT = Path(tempfile.mkdtemp(prefix="winback_fuzz_"))
atexit.register(shutil.rmtree, _ROOT, True)
_SEEDED = seed(init_workspace(_ROOT / "ws", now=TEST_NOW))
HEADERS = {"Authorization": f"Bearer {_SEEDED.keys['admin']}"}
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SEEDED.settings))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case):
    response = case.call(headers=HEADERS)
    assert response.status_code < 500, (f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                        f"{response.text[:500]}\n{case.as_curl_command()}")
