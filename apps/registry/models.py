"""The model and adapter registry: base models, LoRA adapters, their versions, aliases and lineage.

Mirrored into MLflow (apps.registry.mlflow_sync): every row that MLflow should know carries
`mlflow_synced_at`, cleared by each change, set by the sync task once MLflow has it.
"""

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.common.models import BaseModel

name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.-]{0,99}$",
    _("Use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit (at most 100)."),
)
alias_validator = RegexValidator(
    r"^[a-z][a-z0-9_-]{0,39}$", _("Use lowercase letters, digits, '-' and '_', starting with a letter.")
)


class Provider(models.TextChoices):
    VERTEX = "vertex", _("Vertex AI (Google)")
    HUGGING_FACE = "hugging_face", _("Hugging Face (open weights)")
    OPENAI_COMPATIBLE = "openai_compatible", _("OpenAI-compatible endpoint")
    OTHER = "other", _("Other")


class FoundationModel(BaseModel):
    """A base model a team may tune or call: Gemini on Vertex, an open model, a self-hosted one."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="base_models")
    provider = models.CharField(max_length=32, choices=Provider.choices)
    model_id = models.CharField(
        max_length=200,
        help_text=_("The provider's identifier, e.g. gemini-2.5-flash or google/gemma-3-1b-it."),
    )
    display_name = models.CharField(max_length=200, blank=True)
    context_window = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text=_("Tokens the model accepts in one request.")
    )
    notes = models.TextField(blank=True, max_length=4000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    mlflow_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["provider", "model_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "provider", "model_id"], name="base_model_unique_per_team"
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.model_id

    @property
    def mlflow_name(self) -> str:
        return f"{self.team.slug}.base.{self.provider}.{self.model_id}".replace("/", "__")


class TuningMethod(models.TextChoices):
    LORA = "lora", _("LoRA")
    VERTEX_SUPERVISED = "vertex_supervised", _("Vertex managed supervised tuning")


class Adapter(BaseModel):
    """A line of tuned versions over one base model (a LoRA adapter, or a Vertex tuned model)."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="adapters")
    name = models.CharField(max_length=100, validators=[name_validator])
    base_model = models.ForeignKey(FoundationModel, on_delete=models.PROTECT, related_name="adapters")
    method = models.CharField(max_length=32, choices=TuningMethod.choices, default=TuningMethod.LORA)
    description = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    mlflow_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="adapter_unique_name_per_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    @property
    def mlflow_name(self) -> str:
        return f"{self.team.slug}.{self.name}"


class AdapterVersion(BaseModel):
    """One trained version: where its weights are, how well it trained, and where it came from."""

    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    artifact_uri = models.CharField(max_length=1000)
    metrics = models.JSONField(default=dict, blank=True)  # {"train_loss": 0.41, "validation_loss": 0.52}
    hyperparameters = models.JSONField(default=dict, blank=True)
    dataset_uri = models.CharField(max_length=1000, blank=True)
    validation_dataset_uri = models.CharField(max_length=1000, blank=True)
    # dataset → tuning request → job → this version, with who requested and approved (set by the tuning app)
    lineage = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True, max_length=4000)
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    mlflow_version = models.CharField(max_length=20, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    mlflow_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["adapter", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["adapter", "number"], name="adapter_version_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.adapter} v{self.number}"


class AdapterAlias(BaseModel):
    """`champion`, `challenger`…: a name an application or a deployment uses instead of a number."""

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=40, validators=[alias_validator])
    version = models.ForeignKey(AdapterVersion, on_delete=models.PROTECT, related_name="aliases")
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["adapter", "name"], name="adapter_alias_unique")]

    def __str__(self) -> str:
        return f"{self.adapter}@{self.name}"


class MoveStatus(models.TextChoices):
    PENDING = "pending", _("Pending approval")
    APPLIED = "applied", _("Applied")
    REJECTED = "rejected", _("Rejected")
    CHANGES_REQUESTED = "changes_requested", _("Changes requested")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class AliasMove(BaseModel):
    """A request to point an alias at a version (or take it off, version null): applied on approval."""

    adapter = models.ForeignKey(Adapter, on_delete=models.PROTECT, related_name="alias_moves")
    alias = models.CharField(max_length=40, validators=[alias_validator])
    version = models.ForeignKey(
        AdapterVersion, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    previous_version = models.ForeignKey(
        AdapterVersion, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=MoveStatus.choices, default=MoveStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["adapter", "alias"], condition=Q(status="pending"), name="one_pending_move_per_alias"
            )
        ]

    def __str__(self) -> str:
        target = f"v{self.version.number}" if self.version is not None else "nothing"
        return f"{self.adapter}@{self.alias} → {target}"
