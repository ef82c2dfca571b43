import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import override_settings

from apps.common.logformat import JsonFormatter, RequestIdFilter
from apps.common.middleware import RequestContext, reset_request_context, set_request_context


@pytest.fixture
def json_lines():
    """Records of the `apps` loggers, formatted as LOG_FORMAT=json formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("apps")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


def test_a_json_line_carries_the_request_id_and_extra_fields(json_lines):
    token = set_request_context(RequestContext(request_id="req-42"))
    try:
        logging.getLogger("apps.test").warning("budget %s crossed", "b1", extra={"team": "support"})
    finally:
        reset_request_context(token)
    logging.getLogger("apps.test").info("outside any request")
    inside, outside = json_lines()
    assert inside["message"] == "budget b1 crossed"
    assert inside["level"] == "WARNING" and inside["logger"] == "apps.test"
    assert inside["request_id"] == "req-42" and inside["team"] == "support"
    assert inside["time"].endswith("+00:00")
    assert outside["request_id"] is None


def test_an_exception_is_one_line(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("apps.test").exception("failed")
    (line,) = json_lines()
    assert "ValueError: boom" in line["exception"]


@pytest.mark.django_db
def test_a_request_logs_with_its_request_id(client, json_lines, closed_port):
    with override_settings(
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed_port}//",
        CELERY_BROKER_TRANSPORT_OPTIONS={},
        READYZ_TIMEOUT_SECONDS=1,
    ):
        response = client.get("/readyz", HTTP_X_REQUEST_ID="incoming-7")
    assert response["X-Request-Id"] == "incoming-7"
    lines = [line for line in json_lines() if line["logger"] == "apps.common.health"]
    assert lines and lines[0]["request_id"] == "incoming-7" and lines[0]["check"] == "broker"


def test_log_format_json_configures_json_lines():
    """LOG_FORMAT=json: the settings' handler writes JSON (the default stays plain)."""
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "plain"
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('apps.probe').warning('hello', extra={'n': 1})"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "console.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello" and line["n"] == 1 and line["logger"] == "apps.probe"
