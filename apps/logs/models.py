"""Inference logs. An accepted event is first *staged*: its text (input, output, error, metadata, end
user) encrypted, nothing readable. A worker scans it for PII and stores it *redacted*, deleting the
staged text; if the scanner fails the event is *quarantined* and retried, never dropped and never
stored raw. Only stored events are shown, searched or exported."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.cloud.pii import RedactionMode


class EventState(models.TextChoices):
    STAGED = "staged", _("Waiting for the scan")
    QUARANTINED = "quarantined", _("Quarantined")
    STORED = "stored", _("Stored redacted")


class LogEvent(models.Model):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="log_events")
    request_id = models.CharField(max_length=128)
    state = models.CharField(max_length=12, choices=EventState.choices, default=EventState.STAGED)

    # Identifiers and figures: not free text, kept as sent.
    app = models.CharField(max_length=100, blank=True)
    prompt = models.CharField(max_length=100, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, default="ok")
    cost = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)  # null: unpriced
    latency_bucket = models.PositiveSmallIntegerField(null=True, blank=True)  # apps.costs.latency

    # Staged: the raw text, encrypted (apps.logs.crypto); deleted once the event is stored.
    staged_payload = models.BinaryField(null=True, editable=False)

    # Stored: the redacted text.
    input = models.JSONField(null=True, blank=True)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    end_user = models.CharField(max_length=300, blank=True)
    search_text = models.TextField(blank=True, editable=False)  # lowercased redacted text, for search
    has_pii = models.BooleanField(default=False)
    pii_types = models.JSONField(default=list, blank=True)
    redaction_mode = models.CharField(max_length=10, blank=True)
    scanner = models.CharField(max_length=20, blank=True)

    received_at = models.DateTimeField(default=timezone.now)
    stored_at = models.DateTimeField(null=True, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)

    # The scan's retries (no raw text in last_error: only the scanner's own message).
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # Request id first: ingestion looks a batch up by its request ids (`request_id IN (…)`), and
            # SQLite, without statistics, would otherwise walk the team's whole log on a team index.
            models.UniqueConstraint(fields=["request_id", "team"], name="log_event_unique_request")
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["team", "started_at"]),
            models.Index(fields=["team", "model", "started_at"]),
            models.Index(fields=["state", "exported_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.request_id}"


class LogFinding(models.Model):
    """What the scanner found in one event: an infoType, how many times, at what likelihood."""

    event = models.ForeignKey(LogEvent, on_delete=models.CASCADE, related_name="findings")
    info_type = models.CharField(max_length=60, db_index=True)
    count = models.PositiveIntegerField()
    likelihood = models.CharField(max_length=20)

    class Meta:
        ordering = ["info_type"]
        constraints = [models.UniqueConstraint(fields=["event", "info_type"], name="finding_unique_type")]

    def __str__(self) -> str:
        return f"{self.info_type}×{self.count}"


class TeamLogPolicy(models.Model):
    """How a team's logs are redacted and how long they are kept."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="log_policy")
    redaction_mode = models.CharField(
        max_length=10, choices=[(m.value, m.value) for m in RedactionMode], default=RedactionMode.REPLACE
    )
    retention_days = models.PositiveIntegerField(default=90)

    def __str__(self) -> str:
        return f"{self.team_id}: {self.redaction_mode}, {self.retention_days} days"


class ExportState(models.Model):
    """The export's watermark and last outcome (one row per warehouse)."""

    warehouse = models.CharField(max_length=20, primary_key=True)
    last_exported_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    exported_total = models.PositiveBigIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="Held by the export running now.")

    def __str__(self) -> str:
        return f"{self.warehouse}: {self.exported_total}"
