"""Tuning requests and the jobs they dispatch; deployment requests on endpoints (DESIGN.md, lifecycles).

Tuning request: draft → pending_approval → approved → queued → running → succeeded | failed | cancelled,
or rejected (changes requested sends it back to draft). Deployment request: draft → pending_approval →
approved → deploying → live (n % of the traffic) → promoted | rolled_back | failed, or rejected; a
promoted deployment is replaced by the next one promoted on its endpoint (and promoted again if that
one is rolled back).
The legal moves are the TRANSITIONS tables below; services refuse anything else with a 409.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.common.models import BaseModel
from apps.registry.models import Adapter, AdapterVersion, FoundationModel


class TuningStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING_APPROVAL = "pending_approval", _("Pending approval")
    APPROVED = "approved", _("Approved")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    REJECTED = "rejected", _("Rejected")


TUNING_TRANSITIONS: dict[str, frozenset[str]] = {
    TuningStatus.DRAFT: frozenset({TuningStatus.PENDING_APPROVAL, TuningStatus.CANCELLED}),
    TuningStatus.PENDING_APPROVAL: frozenset(
        {TuningStatus.APPROVED, TuningStatus.REJECTED, TuningStatus.DRAFT}
    ),
    TuningStatus.APPROVED: frozenset(
        {TuningStatus.QUEUED, TuningStatus.RUNNING, TuningStatus.FAILED, TuningStatus.CANCELLED}
    ),
    TuningStatus.QUEUED: frozenset(
        {TuningStatus.RUNNING, TuningStatus.SUCCEEDED, TuningStatus.FAILED, TuningStatus.CANCELLED}
    ),
    TuningStatus.RUNNING: frozenset({TuningStatus.SUCCEEDED, TuningStatus.FAILED, TuningStatus.CANCELLED}),
    TuningStatus.SUCCEEDED: frozenset(),
    TuningStatus.FAILED: frozenset(),
    TuningStatus.CANCELLED: frozenset(),
    TuningStatus.REJECTED: frozenset(),
}
TUNING_ACTIVE = frozenset({TuningStatus.QUEUED, TuningStatus.RUNNING})


class TuningRequest(BaseModel):
    """A request to train a new version of an adapter: what, on which data, with which hardware, at
    what estimated cost, and why. Its job's state is mirrored here by the poller."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="tuning_requests")
    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, related_name="tuning_requests")
    status = models.CharField(max_length=20, choices=TuningStatus.choices, default=TuningStatus.DRAFT)
    train_dataset_uri = models.CharField(max_length=1000)
    validation_dataset_uri = models.CharField(max_length=1000, blank=True)
    # rank, alpha, dropout, epochs, learning_rate (LoRA); epochs, learning_rate_multiplier (managed)
    hyperparameters = models.JSONField(default=dict)
    machine_type = models.CharField(max_length=64, blank=True)
    accelerator_type = models.CharField(max_length=64, blank=True)
    accelerator_count = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(16)])
    estimated_hours = models.DecimalField(
        max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    hourly_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    estimated_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    justification = models.TextField(max_length=4000)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The job. `job_key` is written (and committed) before the provider is called, so that a retried or
    # repeated dispatch finds the job it started instead of starting a second one.
    job_backend = models.CharField(max_length=20, blank=True)
    job_key = models.CharField(max_length=100, blank=True, db_index=True)
    job_name = models.CharField(max_length=500, blank=True, db_index=True)
    job_state = models.PositiveSmallIntegerField(null=True, blank=True)  # apps.cloud.jobs.base.JobState
    job_error = models.TextField(blank=True)
    job_output_uri = models.CharField(max_length=1000, blank=True)
    progress = models.FloatField(null=True, blank=True)
    log_tail = models.TextField(blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    result_version = models.OneToOneField(
        AdapterVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="tuning_request"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"], name="tuning_status_idx")]

    def __str__(self) -> str:
        return f"tuning #{self.pk} of {self.adapter}"

    @property
    def base_model(self) -> FoundationModel:
        return self.adapter.base_model


class DeploymentStrategy(models.TextChoices):
    REPLACE = "replace", _("Replace: all the traffic at once")
    CANARY = "canary", _("Canary: a small share first")
    AB = "ab", _("A/B split")


class DeploymentStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING_APPROVAL = "pending_approval", _("Pending approval")
    APPROVED = "approved", _("Approved")
    DEPLOYING = "deploying", _("Deploying")
    LIVE = "live", _("Live")
    PROMOTED = "promoted", _("Promoted")
    ROLLED_BACK = "rolled_back", _("Rolled back")
    REPLACED = "replaced", _("Replaced")
    FAILED = "failed", _("Failed")
    REJECTED = "rejected", _("Rejected")


class DeploymentAction(models.TextChoices):
    PROMOTE = "promote", _("Promoting")
    ROLLBACK = "rollback", _("Rolling back")


DEPLOYMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    DeploymentStatus.DRAFT: frozenset({DeploymentStatus.PENDING_APPROVAL}),
    DeploymentStatus.PENDING_APPROVAL: frozenset(
        {DeploymentStatus.APPROVED, DeploymentStatus.REJECTED, DeploymentStatus.DRAFT}
    ),
    DeploymentStatus.APPROVED: frozenset({DeploymentStatus.DEPLOYING, DeploymentStatus.FAILED}),
    DeploymentStatus.DEPLOYING: frozenset({DeploymentStatus.LIVE, DeploymentStatus.FAILED}),
    DeploymentStatus.LIVE: frozenset({DeploymentStatus.PROMOTED, DeploymentStatus.ROLLED_BACK}),
    DeploymentStatus.PROMOTED: frozenset({DeploymentStatus.ROLLED_BACK, DeploymentStatus.REPLACED}),
    # A promoted deployment is replaced when a later one is promoted (its model leaves the endpoint),
    # and comes back (redeployed at 100 %) when that later one is rolled back.
    DeploymentStatus.REPLACED: frozenset({DeploymentStatus.PROMOTED}),
    DeploymentStatus.ROLLED_BACK: frozenset(),
    DeploymentStatus.FAILED: frozenset(),
    DeploymentStatus.REJECTED: frozenset(),
}


class Endpoint(BaseModel):
    """Where models serve: a Vertex AI endpoint, or (local backend) an endpoint kept in the console."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="endpoints")
    name = models.CharField(max_length=100)
    backend = models.CharField(max_length=20)
    resource_name = models.CharField(max_length=500, blank=True)  # projects/…/endpoints/… on Vertex
    # deployed_model_id → percent, as the provider holds it after the last change
    traffic_split = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="endpoint_unique_name_per_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class Deployment(BaseModel):
    """A request to put an adapter version (or a base model) on an endpoint with a traffic share."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="deployments")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="deployments")
    adapter_version = models.ForeignKey(
        AdapterVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
    base_model = models.ForeignKey(
        FoundationModel, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
    strategy = models.CharField(max_length=20, choices=DeploymentStrategy.choices)
    traffic_percent = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    status = models.CharField(max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.DRAFT)
    machine_type = models.CharField(max_length=64, blank=True)
    accelerator_type = models.CharField(max_length=64, blank=True)
    accelerator_count = models.PositiveSmallIntegerField(default=0)
    justification = models.TextField(max_length=4000, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # What the provider answered: the registered model and the deployed model on the endpoint
    model_resource = models.CharField(max_length=500, blank=True)
    model_version_id = models.CharField(max_length=64, blank=True)
    deployed_model_id = models.CharField(max_length=200, blank=True)
    # The endpoint's split before this deployment went live: what a rollback puts back
    previous_traffic_split = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    deployed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # A promote or roll back asked for and not done yet: the worker calls the provider, then records it.
    action = models.CharField(max_length=20, choices=DeploymentAction.choices, blank=True)
    action_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    action_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(adapter_version__isnull=False) | Q(base_model__isnull=False),
                name="deployment_has_a_model",
            ),
        ]

    def __str__(self) -> str:
        what = self.adapter_version or self.base_model
        return f"deployment #{self.pk}: {what} on {self.endpoint}"
