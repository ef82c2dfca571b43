"""The OpenAPI schema generates without errors or warnings, and is served."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings.test"}
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    schema = out.read_text()
    for path in [
        "/api/v1/prompts/",
        "/api/v1/prompts/{name}/",
        "/api/v1/prompts/{name}/versions/",
        "/api/v1/prompts/{name}/labels/{label}/",
        "/api/v1/prompts/{name}/render",
        "/api/v1/prompts/{name}/resolve",
        "/api/v1/prompt-versions/{version_id}/",
        "/api/v1/prompt-versions/{version_id}/submit/",
        "/api/v1/approvals/",
        "/api/v1/approvals/{request_id}/",
        "/api/v1/approvals/{request_id}/decisions/",
        "/api/v1/approvals/{request_id}/withdraw/",
        "/api/v1/audit/",
        "/api/v1/audit/verify",
        "/api/v1/tokens/",
        "/api/v1/tokens/{token_id}/",
        "/api/v1/feedback/",
        "/api/v1/feedback/queues/{queue_id}/next",
        "/api/v1/feedback/slots/{slot_id}/submit",
        "/api/v1/datasets/{dataset_id}/",
        "/v1/traces",
    ]:
        assert f"  {path}:" in schema, path
    assert "bearerAuth" in schema


@pytest.mark.django_db
def test_schema_is_served(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/prompts/" in response.content
