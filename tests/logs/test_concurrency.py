import json
import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.logs.models import LogEvent
from tests.factories import make_token, make_world
from tests.logs.conftest import event


@pytest.mark.django_db(transaction=True)
def test_two_identical_batches_at_once_store_one_row_per_request_id():
    world = make_world()
    token = make_token(world.eng, world.support, "logs:write")
    body = json.dumps({"events": [event(f"r{i}") for i in range(200)]})
    barrier = threading.Barrier(2)
    answers = []

    def send():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            barrier.wait(timeout=10)
            answers.append(
                client.post("/api/v1/logs/batch", data=body, content_type="application/json").json()
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 2
    assert sorted((a["accepted"], a["duplicate"]) for a in answers) == [(0, 200), (200, 0)]
    assert LogEvent.objects.count() == 200
