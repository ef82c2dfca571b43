"""Prometheus metrics at `/metrics`.

Two kinds of metric:

- counted in the web process as things happen: request latency (RequestMetricsMiddleware), the log
  events received by the batch API (accepted, duplicate, rejected: `rate()` of it is the ingestion rate)
  and the spans received by the OpenTelemetry endpoint (the same, and ignored: spans that are no model call);
- read at scrape time from the database and the broker by StateCollector: log events by state (staged,
  quarantined, stored), the Celery queue depth, budgets exhausted or over a threshold, tuning requests
  by status and job backend (queued and running: the GPU jobs in flight). Whatever process
  answers the scrape reads the same rows, so these are right with any number of web processes.

Several gunicorn workers: with PROMETHEUS_MULTIPROC_DIR set (an empty folder, emptied at each start),
prometheus_client's multiprocess mode aggregates the counters and histograms of every worker; without
it each process reports its own and a scrape sees the one that answered. See README.md, "Operations".

Access: from loopback or a private network when the request came through no proxy, or with
`Authorization: Bearer <METRICS_TOKEN>`.
"""

import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

REQUEST_LATENCY = Histogram(
    "atalaya_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (the resolved URL name), method and status class.",
    ["route", "method", "status"],
)
LOG_EVENTS_RECEIVED = Counter(
    "atalaya_log_events_received",
    "Log events received by the batch API, by outcome (accepted, duplicate, rejected).",
    ["outcome"],
)
for _outcome in ("accepted", "duplicate", "rejected"):
    LOG_EVENTS_RECEIVED.labels(_outcome)
OTLP_SPANS_RECEIVED = Counter(
    "atalaya_otlp_spans_received",
    "Spans received by the OpenTelemetry endpoint (/v1/traces), by outcome: accepted and duplicate (model"
    " calls stored as log events, or already stored), rejected (model calls with invalid values) and"
    " ignored (spans that name no model).",
    ["outcome"],
)
for _outcome in ("accepted", "duplicate", "rejected", "ignored"):
    OTLP_SPANS_RECEIVED.labels(_outcome)

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
BUDGET_THRESHOLDS = (50, 80, 100)


def route_of(request: HttpRequest) -> str:
    """The URL's name (with its namespace), never the path: one series per route, not per id."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or "unnamed"


class RequestMetricsMiddleware:
    """Times every request; first in MIDDLEWARE so the time includes every other middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        status = f"{response.status_code // 100}xx"
        REQUEST_LATENCY.labels(route_of(request), method, status).observe(time.perf_counter() - started)
        return response


def log_events_received(*, accepted: int, duplicate: int, rejected: int) -> None:
    if accepted:
        LOG_EVENTS_RECEIVED.labels("accepted").inc(accepted)
    if duplicate:
        LOG_EVENTS_RECEIVED.labels("duplicate").inc(duplicate)
    if rejected:
        LOG_EVENTS_RECEIVED.labels("rejected").inc(rejected)


def otlp_spans_received(*, accepted: int, duplicate: int, rejected: int, ignored: int) -> None:
    for outcome, count in (
        ("accepted", accepted),
        ("duplicate", duplicate),
        ("rejected", rejected),
        ("ignored", ignored),
    ):
        if count:
            OTLP_SPANS_RECEIVED.labels(outcome).inc(count)


# Read at scrape time


def _log_event_states() -> dict[str, int]:
    from django.db.models import Count

    from apps.logs.models import EventState, LogEvent

    counts = dict.fromkeys(EventState.values, 0)
    for row in LogEvent.objects.order_by().values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    return counts


def _job_states() -> dict[tuple[str, str], int]:
    """Tuning requests by (status, job backend), every status present (zero when none)."""
    from django.db.models import Count

    from apps.tuning.models import TuningRequest, TuningStatus

    rows = TuningRequest.objects.order_by().values("status", "job_backend").annotate(n=Count("id"))
    counts = {(row["status"], row["job_backend"]): row["n"] for row in rows}
    present = {status for status, _ in counts}
    counts.update({(status, ""): 0 for status in TuningStatus.values if status not in present})
    return counts


def _budget_states() -> dict[str, int]:
    from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, Value
    from django.utils import timezone

    from apps.costs.models import BudgetState

    now = timezone.now()
    current = BudgetState.objects.filter(budget__active=True, period_start__lte=now, period_end__gt=now)
    aggregates = {"current": Count("id"), "exhausted": Count("id", filter=Q(exhausted=True))}
    for threshold in BUDGET_THRESHOLDS:
        bound = ExpressionWrapper(
            F("limit") * Value(Decimal(threshold) / 100),
            output_field=DecimalField(max_digits=20, decimal_places=8),
        )
        aggregates[f"over_{threshold}"] = Count("id", filter=Q(spend__gte=bound))
    return current.aggregate(**aggregates)


def _queues() -> list[str]:
    return [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]


def _queue_depths() -> dict[str, int]:
    url = settings.CELERY_BROKER_URL
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS or {})
    if url.startswith("filesystem"):
        # One file per message, named <time>_<uuid>.<queue>.msg, in the folder the worker reads.
        folder = Path(options.get("data_folder_in", ""))
        depths = dict.fromkeys(_queues(), 0)
        with os.scandir(folder) as entries:
            for entry in entries:
                queue = entry.name.partition(".")[2].removesuffix(".msg")
                if queue in depths:
                    depths[queue] += 1
        return depths
    from kombu import Connection

    timeout = float(getattr(settings, "READYZ_TIMEOUT_SECONDS", 2.0))
    depths = {}
    with Connection(url, connect_timeout=timeout, transport_options=options) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        channel = connection.default_channel
        for queue in _queues():
            if hasattr(channel, "_size"):
                # Kombu's virtual transports; Redis: LLEN of the queue's lists (one per priority).
                depths[queue] = int(channel._size(queue))
            else:
                depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
    return depths


class StateCollector:
    """Gauges read from the database and the broker when Prometheus scrapes, cached a few seconds per
    process (METRICS_STATE_CACHE_SECONDS) so that several scrapers cost one read. Never raises: a source
    that cannot be read is reported by atalaya_metrics_source_up{source=...} = 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        ttl = float(getattr(settings, "METRICS_STATE_CACHE_SECONDS", 10))
        with self._lock:
            now = time.monotonic()
            if self._cached is None or ttl <= 0 or now - self._cached[0] >= ttl:
                self._cached = (now, self._read())
            return list(self._cached[1])

    def _read(self) -> list[Metric]:
        metrics: list[Metric] = []
        up = GaugeMetricFamily(
            "atalaya_metrics_source_up", "1 when the source of these gauges could be read.", labels=["source"]
        )
        database_ok = True
        try:
            states = _log_event_states()
        except Exception:
            logger.warning("metrics: could not count log events", exc_info=True)
            database_ok = False
        else:
            family = GaugeMetricFamily(
                "atalaya_log_events", "Log events by state (staged, quarantined, stored).", labels=["state"]
            )
            for state, count in states.items():
                family.add_metric([state], count)
            metrics.append(family)
        try:
            budgets = _budget_states()
        except Exception:
            logger.warning("metrics: could not read budget states", exc_info=True)
            database_ok = False
        else:
            metrics.append(
                GaugeMetricFamily(
                    "atalaya_budgets_current",
                    "Active budgets with a state in their current period.",
                    value=budgets["current"] or 0,
                )
            )
            metrics.append(
                GaugeMetricFamily(
                    "atalaya_budgets_exhausted",
                    "Active budgets exhausted in their current period.",
                    value=budgets["exhausted"] or 0,
                )
            )
            over = GaugeMetricFamily(
                "atalaya_budgets_over_threshold",
                "Active budgets whose spend this period is at least the threshold (percent of the limit).",
                labels=["threshold"],
            )
            for threshold in BUDGET_THRESHOLDS:
                over.add_metric([str(threshold)], budgets[f"over_{threshold}"] or 0)
            metrics.append(over)
        try:
            jobs = _job_states()
        except Exception:
            logger.warning("metrics: could not read the tuning jobs", exc_info=True)
            database_ok = False
        else:
            family = GaugeMetricFamily(
                "atalaya_tuning_requests",
                "Tuning requests by status (queued and running are jobs in flight) and job backend.",
                labels=["status", "backend"],
            )
            for (status, backend), count in sorted(jobs.items()):
                family.add_metric([status, backend], count)
            metrics.append(family)
        up.add_metric(["database"], 1 if database_ok else 0)
        try:
            depths = _queue_depths()
        except Exception:
            logger.warning("metrics: could not read the queue depth", exc_info=True)
            up.add_metric(["broker"], 0)
        else:
            up.add_metric(["broker"], 1)
            family = GaugeMetricFamily(
                "atalaya_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"]
            )
            for queue, depth in depths.items():
                family.add_metric([queue], depth)
            metrics.append(family)
        metrics.append(up)
        return metrics


STATE_REGISTRY = CollectorRegistry(auto_describe=False)
STATE_COLLECTOR = StateCollector()
STATE_REGISTRY.register(STATE_COLLECTOR)  # type: ignore[arg-type]


def exposition() -> bytes:
    """The text exposition: this process's (or, in multiprocess mode, every worker's) counters and
    histograms, then the gauges read at scrape time."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    return counted + generate_latest(STATE_REGISTRY)


def _from_private_network(request: HttpRequest) -> bool:
    # Behind a proxy or a load balancer REMOTE_ADDR is the proxy's (private) address: a request that came
    # through one (it adds X-Forwarded-For or Forwarded) must carry the token.
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def metrics_allowed(request: HttpRequest) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())
    return bool(getattr(settings, "METRICS_ALLOW_PRIVATE_NETWORKS", True)) and _from_private_network(request)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        response = HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
        if getattr(settings, "METRICS_TOKEN", ""):
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
