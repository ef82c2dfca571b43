"""Nothing lost: a real worker killed in the middle of scanning, then restarted, leaves every accepted
event stored redacted exactly once."""

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.logs.models import EventState, LogEvent, LogFinding
from apps.logs.services import log_events_dispatch_pending
from tests.factories import make_token, make_world
from tests.integration.conftest import wait_for
from tests.logs.conftest import event

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SLOW = "tests.logs.scanners.SlowScanner"
EVENTS = 600


@override_settings(LOG_SCAN_CHUNK=40)
def test_a_worker_killed_mid_scan_loses_nothing_and_stores_nothing_twice(start_worker):
    world = make_world()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(world.eng, world.support, 'logs:write')}")
    for start in range(0, EVENTS, 200):
        batch = [event(f"req-{i}") for i in range(start, start + 200)]
        response = client.post(
            "/api/v1/logs/batch", data=json.dumps({"events": batch}), content_type="application/json"
        )
        assert response.json()["accepted"] == 200  # each batch enqueues 5 scan tasks on commit

    def stored() -> int:
        return LogEvent.objects.filter(state=EventState.STORED).count()

    first = start_worker(pool="prefork", concurrency=2, PII_SCANNER=SLOW)
    wait_for(lambda: stored() >= 40, first, what="some events stored")
    first.kill()  # in the middle: tasks were running, others were still queued
    partial = stored()
    assert 0 < partial < EVENTS

    second = start_worker(pool="prefork", concurrency=2, PII_SCANNER=SLOW)
    # What beat does every 30 s: staged events whose task was lost are dispatched again.
    log_events_dispatch_pending(now=timezone.now() + timedelta(minutes=5))
    wait_for(lambda: stored() == EVENTS, second, timeout=90, what="every event stored")

    assert LogEvent.objects.count() == EVENTS
    assert not LogEvent.objects.exclude(state=EventState.STORED).exists()
    assert not LogEvent.objects.filter(staged_payload__isnull=False).exists()
    assert LogFinding.objects.count() == EVENTS  # one EMAIL_ADDRESS finding row per event, none twice
    sample = LogEvent.objects.get(request_id="req-7")
    assert sample.output == "Sorry Ana, we will write to [EMAIL_ADDRESS] today."
    assert "ana.garcia" not in json.dumps([sample.input, sample.metadata])
