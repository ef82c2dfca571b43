"""Golden sets, evaluation runs and their per-case results, and the recorded responses the replay provider
answers from.

A golden set is versioned copy-on-write: every edit (a case added, changed or removed, an import) makes a new
`GoldenSetVersion` holding the whole list of cases, so a run always names exactly the cases it was scored on.
A run evaluates one subject (a prompt version's content, optionally answered by an adapter version) on one
golden-set version; `subject_hash` is what the gate matches: the prompt version's content hash, or for an
adapter run a hash of the adapter version's identity and artifact.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.catalog.models import Prompt, PromptVersion, name_validator
from apps.common.models import BaseModel
from apps.registry.models import AdapterVersion


class GoldenSet(BaseModel):
    """Cases that a prompt (or, shared in a team, any of its prompts and adapters) must pass."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="golden_sets")
    name = models.CharField(max_length=100, validators=[name_validator])
    description = models.TextField(blank=True, max_length=2000)
    # Null: shared in the team. Set: the golden set of that prompt.
    prompt = models.ForeignKey(
        Prompt, on_delete=models.PROTECT, null=True, blank=True, related_name="golden_sets"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="golden_set_unique_name_per_team")
        ]

    def __str__(self) -> str:
        return self.name


class GoldenSetVersion(BaseModel):
    golden_set = models.ForeignKey(GoldenSet, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    message = models.CharField(max_length=500, blank=True)
    # sha256 of the cases' canonical JSON: two versions with the same cases have the same hash.
    content_hash = models.CharField(max_length=64)
    case_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["golden_set", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["golden_set", "number"], name="golden_set_version_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.golden_set.name} v{self.number}"


class CaseSource(models.TextChoices):
    MANUAL = "manual", _("Written by hand")
    IMPORT = "import", _("Imported")
    LOG = "log", _("From a logged event")
    ANNOTATION = "annotation", _("From a corrected answer")


class GoldenCase(models.Model):
    """One case: the variables to render the prompt with, and what the answer must satisfy."""

    version = models.ForeignKey(GoldenSetVersion, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    reference = models.TextField(blank=True, max_length=20_000)
    exact = models.BooleanField(default=False)  # the answer must equal the reference
    must_contain = models.JSONField(default=list, blank=True)
    must_not_contain = models.JSONField(default=list, blank=True)
    regex = models.CharField(max_length=1000, blank=True)
    expect_json = models.BooleanField(default=False)
    json_schema = models.JSONField(null=True, blank=True)
    max_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    rubric = models.TextField(blank=True, max_length=5000)
    case_sensitive = models.BooleanField(default=False)
    source = models.CharField(max_length=20, choices=CaseSource.choices, default=CaseSource.MANUAL)
    source_ref = models.CharField(max_length=200, blank=True)  # a log event's request id, a slot id

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="golden_case_unique_position")
        ]

    def __str__(self) -> str:
        return self.name or f"case {self.position}"


class EvaluationProvider(models.TextChoices):
    VERTEX = "vertex", _("Vertex AI Gemini")
    OPENAI = "openai", _("OpenAI-compatible endpoint")
    REPLAY = "replay", _("Replay of recorded responses")


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")  # every case has a result (some may be errors)
    FAILED = "failed", _("Failed")  # the run could not be carried out at all
    CANCELLED = "cancelled", _("Cancelled")


class EvaluationRun(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="evaluation_runs")
    golden_set_version = models.ForeignKey(GoldenSetVersion, on_delete=models.PROTECT, related_name="runs")
    # What renders each case; for a prompt run, also the subject.
    prompt_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, related_name="evaluation_runs"
    )
    # Set for an adapter run: the adapter version answers instead of the prompt version's model.
    adapter_version = models.ForeignKey(
        AdapterVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="evaluation_runs"
    )
    subject_hash = models.CharField(max_length=64, db_index=True)
    provider = models.CharField(max_length=20, choices=EvaluationProvider.choices)
    model = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    # The catalog prompt version that judged the answers against each case's rubric (if any case has one).
    judge_prompt_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The production version's run on the same golden-set version, for the regression rule and view.
    baseline_run = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    summary = models.JSONField(default=dict, blank=True)  # aggregates with confidence intervals
    # The gate outcome under the thresholds that applied when the run finished (recomputed at decision time).
    passed = models.BooleanField(null=True, blank=True)
    gate = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cases_total = models.PositiveIntegerField(default=0)
    cases_done = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Until when the worker carrying the run out holds it (renewed as it works): no other worker starts.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["subject_hash", "status"]),
            models.Index(fields=["team", "status"]),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk}"

    @property
    def is_replay(self) -> bool:
        return self.provider == EvaluationProvider.REPLAY

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)

    @property
    def overrides_version(self) -> bool:
        """A prompt run sent with another model or other parameters than its version's."""
        version = self.prompt_version
        return self.adapter_version_id is None and (
            self.model != version.model or self.parameters != version.parameters
        )

    @property
    def counts_for_gate(self) -> bool:
        """Whether the run can decide the gate for what it evaluated: a prompt run only on exactly its version's
        current content (no model or parameters of its own); an adapter run always."""
        return self.adapter_version_id is not None or self.subject_hash == self.prompt_version.content_hash


class CaseResult(models.Model):
    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(GoldenCase, on_delete=models.PROTECT, related_name="results")
    request_key = models.CharField(max_length=64)  # the replay key of the rendered request
    rendered = models.JSONField(default=list, blank=True)  # the messages sent
    output = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    failures = models.JSONField(default=list, blank=True)  # why the case failed, one line per check
    passed = models.BooleanField(default=False)
    error = models.TextField(blank=True)  # the provider or judge error: the case has no score
    attempts = models.PositiveSmallIntegerField(default=0)
    judge_score = models.FloatField(null=True, blank=True)
    judge_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "case__position"]
        constraints = [models.UniqueConstraint(fields=["run", "case"], name="case_result_unique_per_run")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.case_id}"


class RecordedResponse(BaseModel):
    """A model's answer to one rendered request, which the replay provider gives back for the same request.
    Recorded from live runs and imported (the demo, CI regression checks); per team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="recorded_responses")
    key = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    request = models.JSONField(default=dict)
    text = models.TextField()
    tokens_in = models.PositiveIntegerField(null=True, blank=True)
    tokens_out = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=200, blank=True)

    class Meta:
        # Key first: a replay run looks its requests up by key (`key IN (…)`), which a team-first index
        # would answer, on SQLite without statistics, by reading all the team's recordings.
        constraints = [models.UniqueConstraint(fields=["key", "team"], name="recorded_response_unique_key")]

    def __str__(self) -> str:
        return self.key
