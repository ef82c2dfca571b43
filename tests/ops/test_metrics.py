import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from apps.costs.models import Budget, BudgetState
from apps.logs.models import EventState, LogEvent
from tests.factories import make_token
from tests.logs.conftest import event


def scrape(client, **extra) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_a_request_shows_in_the_latency_histogram(client, db):
    labels = {"route": "healthz", "method": "GET", "status": "2xx"}
    before = REGISTRY.get_sample_value("atalaya_http_request_duration_seconds_count", labels) or 0
    client.get("/healthz")
    client.get("/healthz")
    samples = scrape(client)
    key = ("atalaya_http_request_duration_seconds_count", tuple(sorted(labels.items())))
    assert samples[key] == before + 2
    # routes are URL names, never paths: an unknown path is one series whatever the path
    client.get("/no/such/page/12345")
    unmatched = {"route": "unmatched", "method": "GET", "status": "4xx"}
    assert REGISTRY.get_sample_value("atalaya_http_request_duration_seconds_count", unmatched) >= 1
    assert not any("12345" in str(k) for k in scrape(client))


@pytest.mark.django_db
def test_gauges_reflect_quarantined_events_and_budgets(client, world, fresh_gauges, filesystem_broker):
    now = timezone.now()
    for i, state in enumerate([EventState.QUARANTINED, EventState.QUARANTINED, EventState.STAGED]):
        LogEvent.objects.create(
            team=world.support, request_id=f"q{i}", model="m", started_at=now, state=state
        )
    budget = Budget.objects.create(team=world.support, name="b", amount=100, created_by=world.gov)
    BudgetState.objects.create(
        budget=budget,
        period_start=now - timedelta(days=1),
        period_end=now + timedelta(days=1),
        spend=Decimal("85"),
        limit=Decimal("100"),
    )
    (filesystem_broker["queue"] / "1_abc.celery.msg").write_bytes(b"{}")
    (filesystem_broker["queue"] / "2_def.other.msg").write_bytes(b"{}")

    samples = scrape(client)
    assert samples[("atalaya_log_events", (("state", "quarantined"),))] == 2
    assert samples[("atalaya_log_events", (("state", "staged"),))] == 1
    assert samples[("atalaya_log_events", (("state", "stored"),))] == 0
    assert samples[("atalaya_budgets_current", ())] == 1
    assert samples[("atalaya_budgets_exhausted", ())] == 0
    assert samples[("atalaya_budgets_over_threshold", (("threshold", "50"),))] == 1
    assert samples[("atalaya_budgets_over_threshold", (("threshold", "80"),))] == 1
    assert samples[("atalaya_budgets_over_threshold", (("threshold", "100"),))] == 0
    assert samples[("atalaya_celery_queue_depth", (("queue", "celery"),))] == 1
    assert samples[("atalaya_metrics_source_up", (("source", "database"),))] == 1
    assert samples[("atalaya_metrics_source_up", (("source", "broker"),))] == 1

    LogEvent.objects.filter(request_id="q0").update(state=EventState.STORED)
    BudgetState.objects.update(exhausted=True, spend=Decimal("120"))
    samples = scrape(client)
    assert samples[("atalaya_log_events", (("state", "quarantined"),))] == 1
    assert samples[("atalaya_budgets_exhausted", ())] == 1
    assert samples[("atalaya_budgets_over_threshold", (("threshold", "100"),))] == 1


@pytest.mark.django_db
def test_a_broker_that_cannot_be_read_is_reported_not_raised(client, fresh_gauges, filesystem_broker):
    filesystem_broker["queue"].rmdir()
    samples = scrape(client)
    assert samples[("atalaya_metrics_source_up", (("source", "broker"),))] == 0
    assert ("atalaya_log_events", (("state", "stored"),)) in samples


@pytest.mark.django_db
def test_ingestion_is_counted_by_outcome(client, world, api_as):
    writer = api_as(token=make_token(world.eng, world.support, "logs:write"))

    def counted(outcome):
        return REGISTRY.get_sample_value("atalaya_log_events_received_total", {"outcome": outcome}) or 0

    before = {o: counted(o) for o in ("accepted", "duplicate", "rejected")}
    batch = [event("a"), event("b"), event("a"), event("bad", status="weird")]
    response = writer.post(
        "/api/v1/logs/batch", data=json.dumps({"events": batch}), content_type="application/json"
    )
    assert response.status_code == 202
    assert counted("accepted") - before["accepted"] == 2
    assert counted("duplicate") - before["duplicate"] == 1
    assert counted("rejected") - before["rejected"] == 1
    route = {"route": "api-logs-batch", "method": "POST", "status": "2xx"}
    assert REGISTRY.get_sample_value("atalaya_http_request_duration_seconds_count", route) >= 1


@pytest.mark.django_db
def test_metrics_are_refused_from_outside_without_the_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="8.8.8.8").status_code == 403
    # through a proxy REMOTE_ADDR is the proxy's private address: the network is not enough
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="8.8.8.8").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.mark.django_db
def test_metrics_with_the_bearer_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-scraper-token"
    outside = {"REMOTE_ADDR": "8.8.8.8"}
    refused = client.get("/metrics", **outside)
    assert refused.status_code == 403
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token", **outside).status_code == 200
    )
    settings.METRICS_ALLOW_PRIVATE_NETWORKS = False
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token").status_code == 200


@pytest.mark.django_db
def test_tuning_jobs_are_counted_by_state_and_backend(client, world, fresh_gauges, filesystem_broker):
    from apps.registry.services import adapter_create, base_model_register
    from apps.tuning.models import TuningRequest, TuningStatus

    model = base_model_register(
        actor=world.eng, team=world.support, provider="hugging_face", model_id="tiny", context_window=512
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="a")
    common = {"team": world.support, "adapter": adapter, "train_dataset_uri": "gs://x", "estimated_hours": 1}
    TuningRequest.objects.create(**common, requested_by=world.eng, status=TuningStatus.DRAFT)
    for status in (TuningStatus.RUNNING, TuningStatus.RUNNING, TuningStatus.QUEUED):
        TuningRequest.objects.create(**common, requested_by=world.eng, status=status, job_backend="vertex")

    samples = scrape(client)
    assert samples[("atalaya_tuning_requests", (("backend", "vertex"), ("status", "running")))] == 2
    assert samples[("atalaya_tuning_requests", (("backend", "vertex"), ("status", "queued")))] == 1
    assert samples[("atalaya_tuning_requests", (("backend", ""), ("status", "draft")))] == 1
    assert samples[("atalaya_tuning_requests", (("backend", ""), ("status", "succeeded")))] == 0
