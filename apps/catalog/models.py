import hashlib
import json

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.common.models import BaseModel

name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.-]{0,99}$",
    _("Use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit (at most 100)."),
)
label_validator = RegexValidator(
    r"^[a-z][a-z0-9_-]{0,39}$", _("Use lowercase letters, digits, '-' and '_', starting with a letter.")
)


class Prompt(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="prompts")
    name = models.CharField(max_length=100, validators=[name_validator])
    description = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="prompt_unique_name_per_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class PromptTag(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=40)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="prompt_tag_unique")]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    IN_REVIEW = "in_review", _("In review")
    APPROVED = "approved", _("Approved")
    CHANGES_REQUESTED = "changes_requested", _("Changes requested")
    REJECTED = "rejected", _("Rejected")
    RETIRED = "retired", _("Retired")


def content_hash(*, messages: list, model: str, parameters: dict) -> str:
    encoded = json.dumps(
        {"messages": messages, "model": model, "parameters": parameters},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(encoded.encode()).hexdigest()


class PromptVersion(BaseModel):
    """One version of a prompt. Its content (messages, model, parameters) is frozen once submitted."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    messages = models.JSONField()
    model = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=list)
    message = models.CharField(max_length=500, blank=True, help_text=_("What changed, for reviewers."))
    content_hash = models.CharField(max_length=64, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["prompt", "number"], name="version_unique_number")]

    def __str__(self) -> str:
        return f"{self.prompt} v{self.number}"

    @property
    def team(self) -> Team:
        return self.prompt.team

    @property
    def etag(self) -> str:
        return f'"{self.content_hash}"'

    @property
    def is_frozen(self) -> bool:
        return self.status != VersionStatus.DRAFT


class PromptLabel(BaseModel):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=40, validators=[label_validator])
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="labels")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="label_unique_per_prompt")]

    def __str__(self) -> str:
        return f"{self.prompt}@{self.name}"


class LabelMoveStatus(models.TextChoices):
    PENDING = "pending", _("Pending approval")
    APPLIED = "applied", _("Applied")
    REJECTED = "rejected", _("Rejected")
    CHANGES_REQUESTED = "changes_requested", _("Changes requested")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class LabelMove(BaseModel):
    """A request to point a protected label at a version: the subject of an approval request."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="label_moves")
    label = models.CharField(max_length=40, validators=[label_validator])
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    previous_version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, null=True, related_name="+")
    status = models.CharField(max_length=20, choices=LabelMoveStatus.choices, default=LabelMoveStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prompt}@{self.label} → v{self.version.number}"

    @property
    def team(self) -> Team:
        return self.prompt.team
