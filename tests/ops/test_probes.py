"""Kubernetes probes and Prometheus reach a pod by its IP address, which is the Host header they send and
is not in ALLOWED_HOSTS: /healthz, /readyz and /metrics answer them anyway, while every other path still
refuses a Host that is not allowed."""

import pytest
from prometheus_client import REGISTRY

POD = "10.1.2.3:8000"  # what the kubelet and an in-cluster scraper send as Host
PRODUCTION_LIKE = {
    "ALLOWED_HOSTS": ["atalaya.example.com"],
    "SECURE_SSL_REDIRECT": True,
    "SECURE_REDIRECT_EXEMPT": [],  # probes are answered before the redirect, whatever this says
}


@pytest.fixture
def production_hosts(settings):
    for name, value in PRODUCTION_LIKE.items():
        setattr(settings, name, value)


def test_healthz_answers_a_probe_on_the_pod_ip(client, production_hosts):
    labels = {"route": "healthz", "method": "GET", "status": "2xx"}
    before = REGISTRY.get_sample_value("atalaya_http_request_duration_seconds_count", labels) or 0
    response = client.get("/healthz", HTTP_HOST=POD)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Content-Type-Options"] == "nosniff"
    # still timed under its route name
    assert REGISTRY.get_sample_value("atalaya_http_request_duration_seconds_count", labels) == before + 1


@pytest.mark.django_db
def test_readyz_answers_a_probe_on_the_pod_ip(client, production_hosts, filesystem_broker):
    response = client.get("/readyz", HTTP_HOST=POD)
    assert response.status_code == 200, response.content
    assert response.json() == {"database": "ok", "broker": "ok", "cache": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_metrics_answers_an_in_cluster_scrape_and_keeps_its_own_access_check(
    client, production_hosts, settings
):
    settings.METRICS_TOKEN = "scrape-secret"
    scrape = client.get("/metrics", HTTP_HOST=POD, REMOTE_ADDR="10.1.0.7")
    assert scrape.status_code == 200
    assert b"atalaya_http_request_duration_seconds" in scrape.content
    outsider = client.get("/metrics", HTTP_HOST=POD, REMOTE_ADDR="93.184.216.34")
    assert outsider.status_code == 403
    with_token = client.get(
        "/metrics", HTTP_HOST=POD, REMOTE_ADDR="93.184.216.34", HTTP_AUTHORIZATION="Bearer scrape-secret"
    )
    assert with_token.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/prompts/"),
        ("get", "/prompts/"),
        ("get", "/accounts/login/"),
        ("get", "/healthz/"),  # only the exact probe paths
        ("get", "/healthzz"),
        ("post", "/healthz"),  # only GET and HEAD
    ],
)
def test_every_other_request_with_a_host_that_is_not_allowed_gets_400(client, production_hosts, method, path):
    response = getattr(client, method)(path, HTTP_HOST=POD)
    assert response.status_code == 400


@pytest.mark.django_db
def test_an_allowed_host_is_served_as_before(client, production_hosts):
    assert client.get("/healthz", HTTP_HOST="atalaya.example.com").status_code == 200
    # the rest of the site still redirects plain HTTP to HTTPS
    page = client.get("/accounts/login/", HTTP_HOST="atalaya.example.com")
    assert page.status_code == 301
    assert page["Location"] == "https://atalaya.example.com/accounts/login/"
