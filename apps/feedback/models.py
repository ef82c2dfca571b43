"""Human feedback: rating schemas, annotation queues of logged (stored, redacted) answers, the slots that
annotators lease one at a time, their annotations, adjudications, end-user feedback and exported datasets.

A queue's item is one stored log event (or, in a pairwise queue, two events: answer A and answer B for the
same input). Each item has `overlap` slots; an annotator leases one slot at a time (`next item`), and a
lease not submitted within the queue's `lease_minutes` returns to the pool. The constraints below are what
makes assignment safe under concurrency: a slot number is held once per item, and an annotator holds at
most one slot of an item (so never rates it twice), whatever the interleaving."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.common.models import BaseModel
from apps.logs.models import LogEvent


class CriterionKind(models.TextChoices):
    THUMBS = "thumbs", _("Thumbs up or down")
    SCALE = "scale", _("Scale")
    LABELS = "labels", _("Categorical labels")
    PREFERENCE = "preference", _("Preference: A or B")
    TEXT = "text", _("Corrected answer (free text)")


class RatingSchema(BaseModel):
    """What annotators answer for each item: a list of criteria (`criteria`, validated by
    apps.feedback.schemas). Immutable once a queue uses it, so that every rating of a queue means the same."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="rating_schemas")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    criteria = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="rating_schema_unique_name")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class QueueKind(models.TextChoices):
    SAMPLE = "sample", _("Sample of logged answers")
    PAIRWISE = "pairwise", _("Pairs of answers (A/B)")


class QueueStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class AnnotationQueue(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="annotation_queues")
    name = models.CharField(max_length=100)
    schema = models.ForeignKey(RatingSchema, on_delete=models.PROTECT, related_name="queues")
    kind = models.CharField(max_length=10, choices=QueueKind.choices, default=QueueKind.SAMPLE)
    status = models.CharField(max_length=10, choices=QueueStatus.choices, default=QueueStatus.OPEN)
    filters = models.JSONField(default=dict, blank=True, help_text="How the items were chosen.")
    sampling_rate = models.FloatField(default=1.0)
    size = models.PositiveIntegerField()
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Annotators per item (k).")
    lease_minutes = models.PositiveIntegerField(default=30)
    instructions = models.TextField(blank=True)
    due_date = models.DateField(null=True, blank=True)
    assignees = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="annotation_queues", blank=True)
    item_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="annotation_queue_unique_name")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class QueueItem(models.Model):
    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    event = models.ForeignKey(LogEvent, on_delete=models.CASCADE, related_name="+")
    event_b = models.ForeignKey(LogEvent, on_delete=models.CASCADE, related_name="+", null=True, blank=True)

    class Meta:
        ordering = ["queue", "position"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "position"], name="queue_item_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id}#{self.position}"


class SlotState(models.TextChoices):
    OPEN = "open", _("Open")
    LEASED = "leased", _("Leased")
    DONE = "done", _("Rated")
    SKIPPED = "skipped", _("Skipped")


class AnnotationSlot(models.Model):
    """One of an item's `overlap` places. Open → leased (by one annotator, until `leased_until`) → done,
    or skipped (the annotator passed: a fresh open slot with the same number replaces it, and the
    annotator is not offered the item again)."""

    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="slots")
    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="slots")
    number = models.PositiveSmallIntegerField()
    position = models.PositiveIntegerField(help_text="The item's position (the order slots are handed out).")
    state = models.CharField(max_length=8, choices=SlotState.choices, default=SlotState.OPEN)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    leased_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "number"], condition=~Q(state="skipped"), name="slot_unique_number"
            ),
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=Q(annotator__isnull=False),
                name="slot_unique_annotator",
            ),
        ]
        indexes = [
            models.Index(fields=["queue", "state", "position", "number"], name="slot_queue_state_pos"),
            models.Index(fields=["queue", "state", "leased_until"], name="slot_queue_state_lease"),
            models.Index(fields=["queue", "annotator", "state"], name="slot_queue_annotator"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}/{self.number} {self.state}"


class Annotation(models.Model):
    """A submitted rating: one per (item, annotator). `seconds` is the time from the lease to the submit."""

    queue = models.ForeignKey(AnnotationQueue, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="annotations")
    slot = models.OneToOneField(AnnotationSlot, on_delete=models.CASCADE, related_name="annotation")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    values = models.JSONField(default=dict)
    seconds = models.FloatField(null=True, blank=True)
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ["item_id", "submitted_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="annotation_unique_annotator"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} by {self.annotator_id}"


class Adjudication(BaseModel):
    """Governance's final values for an item (where annotators disagreed, or to give the corrected answer)."""

    item = models.OneToOneField(QueueItem, on_delete=models.CASCADE, related_name="adjudication")
    values = models.JSONField(default=dict)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"adjudication of {self.item_id}"


class EndUserFeedback(BaseModel):
    """Feedback an application sends for one of its calls (by request id), from one end user. It may
    arrive before the call's log event is stored: it is joined to the log by (team, request_id)."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="end_user_feedback")
    request_id = models.CharField(max_length=128)
    end_user = models.CharField(max_length=300, blank=True)
    thumbs = models.BooleanField(null=True, blank=True)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "request_id", "end_user"], name="end_user_feedback_unique"
            )
        ]
        indexes = [models.Index(fields=["team", "created_at"], name="euf_team_created")]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.request_id}"

    @property
    def negative(self) -> bool:
        return self.thumbs is False or (self.score is not None and self.score <= 2)


NEGATIVE_FEEDBACK = Q(thumbs=False) | Q(score__lte=2)
POSITIVE_FEEDBACK = Q(thumbs=True) | Q(score__gte=4)


class DatasetKind(models.TextChoices):
    SFT = "sft", _("Supervised tuning (chat messages)")
    PREFERENCE = "preference", _("Preference pairs")


class Dataset(BaseModel):
    """An exported, immutable dataset: JSONL rows, their hash, and where every row came from. A tuning
    request names it by `uri` (atalaya://datasets/<uuid>) or id."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="datasets")
    queue = models.ForeignKey(AnnotationQueue, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=DatasetKind.choices)
    content = models.TextField(help_text="JSONL, one row per line.")
    content_hash = models.CharField(max_length=64)
    row_count = models.PositiveIntegerField()
    lineage = models.JSONField(default=list, help_text="Per row: the queue item and the log event ids.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["team__slug", "name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name", "version"], name="dataset_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name} v{self.version}"

    @property
    def uri(self) -> str:
        return f"atalaya://datasets/{self.uid}"
