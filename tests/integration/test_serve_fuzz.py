"""Property-based fuzzing of a live server from its own OpenAPI document (schemathesis).

Every operation gets examples generated from the schema, valid and invalid: no answer may be a
5xx, and every answer must conform to what the schema declares (status code, content type,
body). The run is bounded in time (``FUZZ_SECONDS``, default 45 s) so that it fits in
``make test``; a failure prints schemathesis' report with a curl command that reproduces it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serve_harness import Server, build_project

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "45"))
MAX_BATCH = 20
# 413 is how the service refuses too many records (maxItems in the schema); /admin/reload
# answers 403 here (no admin key is configured) to anything, valid or not. A columnar batch
# can satisfy the schema and still be refused: JSON Schema cannot tie each value's type to the
# column it sits under, so "valid data accepted" is not checked for /predict/batch.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "413", "415", "422"]

[[operations]]
include-path = "/predict/batch"
checks.positive_data_acceptance.enabled = false
"""


def test_fuzzing_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    project = build_project(tmp_path / "project")
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'predictions.db'}",
        "MLREPO_MAX_BATCH_ROWS": str(MAX_BATCH),
    }
    server = Server(project.root, env, "--model", "workspace")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    st = Path(sys.executable).with_name("st")
    argv = [
        str(st), "--config-file", str(config), "--no-color", "run", f"{server.url}/openapi.json",
        "--max-time", str(FUZZ_SECONDS), "--seed", "20261203",
        "--workers", "1", "--request-timeout", "20", "--max-failures", "10",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120, check=False
        )
        ready = server.ready()
    finally:
        server.stop()
    report = done.stdout[-20_000:] + done.stderr[-5_000:]
    assert done.returncode == 0, report
    assert "Tested: 6" in done.stdout or "Tested:" in done.stdout, report
    assert 'status="5' not in server.output
    assert ready["database"]["dropped_rows"] == 0
    if "ERROR" in server.output:
        pytest.fail(f"the server logged an error:\n{server.output[-5000:]}")
