"""API v1 for human feedback.

- `POST /api/v1/feedback/`: end-user feedback from applications (scope `feedback:write`).
- Schemas, queues, annotating (next item, submit, skip), results, adjudication and dataset export
  (reads `feedback:read`, writes `annotations:write`). Who may do what in a team is decided by the
  services and selectors: governance, engineers and administrators manage; annotators annotate the
  queues they are assigned; governance adjudicates.
"""

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Team
from apps.accounts.roles import Scope
from apps.accounts.selectors import active_token, team_get_by_slug, user_team_ids
from apps.common.api import (
    PAGINATION_PARAMETERS,
    ApiView,
    FilterSerializer,
    NamedChoiceField,
    StrictSerializer,
    errors,
    paginated_response,
    paginated_schema,
    validated,
)
from apps.common.exceptions import NotFound
from apps.common.pagination import CursorPagination
from apps.common.permissions import HasScope
from apps.feedback.models import AnnotationSlot, DatasetKind, QueueKind
from apps.feedback.selectors import (
    dataset_get,
    dataset_list,
    item_get_for_adjudication,
    queue_get_for_annotation,
    queue_get_managed,
    queue_list,
    queue_progress,
    queue_results,
    rating_schema_list,
    slot_for_annotation,
)
from apps.feedback.services import (
    FEEDBACK_SENDERS,
    adjudication_set,
    annotation_next,
    annotation_queue_create,
    annotation_skip,
    annotation_submit,
    dataset_export,
    end_user_feedback_record,
    rating_schema_create,
)
from apps.logs.models import EventState, LogEvent

READ_WRITE = {"GET": Scope.FEEDBACK_READ, "POST": Scope.ANNOTATIONS_WRITE, "PUT": Scope.ANNOTATIONS_WRITE}


def _team_from(request: Request, slug: str, roles: Any = None) -> Team:
    """The named team (one of the caller's), else the token's team, else the caller's only team with
    these roles."""
    if slug:
        team = team_get_by_slug(user=request.user, slug=slug)
        if team is None:
            raise NotFound(f"No team {slug!r}.", code="team_not_found")
        return team
    token = active_token(request.user)
    if token is not None:
        return token.team
    teams = user_team_ids(request.user, roles)
    if len(teams) == 1:
        return Team.objects.get(pk=teams[0])
    raise NotFound("Name the team with its slug (`team`).", code="team_required")


# End-user feedback


class EndUserFeedbackApi(ApiView):
    """End-user feedback on one call, by its `request_id` (the id the application logged it with).

    - Idempotent per (team, `request_id`, `end_user`): the first call answers 201; repeating it answers 200
      with the same feedback. A repeat with *different* values replaces them (an end user who changes a
      thumbs up into a thumbs down): the latest answer counts, 200, `"changed": true`.
    - The call's log need not be stored yet: feedback often arrives before its log batch is scanned, so an
      unknown `request_id` is accepted and joined to the log when it is stored (`linked` says whether it is).
    - A score is 1–5 (else 422 `invalid_score`); a comment at most 4,000 characters (else 422); at least
      one of `thumbs`, `score`, `comment` (else 422 `empty_feedback`).
    """

    permission_classes = [HasScope]
    required_scope = Scope.FEEDBACK_WRITE

    class InputSerializer(StrictSerializer):
        request_id = serializers.CharField(max_length=128)
        end_user = serializers.CharField(
            max_length=300, required=False, default="", allow_blank=True, help_text="Opaque end-user id."
        )
        thumbs = serializers.BooleanField(required=False, allow_null=True, default=None)
        score = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="1 to 5.")
        comment = serializers.CharField(
            required=False, default="", allow_blank=True, trim_whitespace=False, help_text="At most 4,000."
        )
        team = serializers.CharField(
            required=False, default="", max_length=63, help_text="Team slug (browser sessions only)."
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        request_id = serializers.CharField()
        end_user = serializers.CharField()
        thumbs = serializers.BooleanField(allow_null=True)
        score = serializers.IntegerField(allow_null=True)
        comment = serializers.CharField()
        changed = serializers.BooleanField(help_text="Whether this call changed anything.")
        linked = serializers.BooleanField(help_text="Whether the call's log event is stored.")
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="feedback_create",
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "Thumbs down with a comment",
                value={
                    "request_id": "7f3c2a9e",
                    "end_user": "u-123",
                    "thumbs": False,
                    "comment": "Wrong order",
                },
                request_only=True,
            )
        ],
        responses={201: OutputSerializer, 200: OutputSerializer} | errors(400, 401, 403, 404, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        team = _team_from(request, data.pop("team"), FEEDBACK_SENDERS)
        result = end_user_feedback_record(actor=request.user, team=team, **data)
        feedback = result.feedback
        linked = LogEvent.objects.filter(
            team=team, request_id=feedback.request_id, state=EventState.STORED
        ).exists()
        body = {
            "id": feedback.pk,
            "request_id": feedback.request_id,
            "end_user": feedback.end_user,
            "thumbs": feedback.thumbs,
            "score": feedback.score,
            "comment": feedback.comment,
            "changed": result.changed,
            "linked": linked,
            "created_at": feedback.created_at,
            "updated_at": feedback.updated_at,
        }
        return Response(self.OutputSerializer(body).data, status=201 if result.created else 200)


# Schemas


class CriterionSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    guidance = serializers.CharField()
    required = serializers.BooleanField()
    min = serializers.IntegerField(required=False)
    max = serializers.IntegerField(required=False)
    labels = serializers.ListField(child=serializers.CharField(), required=False)


class SchemaOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    criteria = CriterionSerializer(many=True)
    created_at = serializers.DateTimeField()


class SchemaListCreateApi(ApiView):
    """GET lists the rating schemas of your teams; POST defines one (governance, engineers, administrators).
    `criteria` is a list: `{"name", "kind": thumbs|scale|labels|preference|text, "guidance", "required",
    "min"/"max" (scale), "labels" (labels)}`; a rubric is several criteria. Invalid criteria → 422."""

    permission_classes = [HasScope]
    required_scope = READ_WRITE

    class InputSerializer(StrictSerializer):
        team = serializers.CharField(required=False, default="", max_length=63)
        name = serializers.SlugField(max_length=100)
        description = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)
        criteria = serializers.JSONField()

    @extend_schema(
        operation_id="feedback_schemas_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated_schema("PaginatedRatingSchemaList", SchemaOutputSerializer)}
        | errors(401, 403),
    )
    def get(self, request: Request) -> Response:
        validated(FilterSerializer, request.query_params)
        return paginated_response(
            request=request,
            view=self,
            queryset=rating_schema_list(user=request.user),
            serializer_class=SchemaOutputSerializer,
        )

    @extend_schema(
        operation_id="feedback_schemas_create",
        request=InputSerializer,
        responses={201: SchemaOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        team = _team_from(request, data.pop("team"))
        schema = rating_schema_create(actor=request.user, team=team, **data)
        return Response(SchemaOutputSerializer(schema).data, status=201)


# Queues


class QueueOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    schema = serializers.CharField(source="schema.name")
    kind = serializers.CharField()
    status = serializers.CharField()
    filters = serializers.JSONField()
    sampling_rate = serializers.FloatField()
    size = serializers.IntegerField()
    items = serializers.IntegerField(source="item_count")
    overlap = serializers.IntegerField()
    lease_minutes = serializers.IntegerField()
    instructions = serializers.CharField()
    due_date = serializers.DateField(allow_null=True)
    created_at = serializers.DateTimeField()


class QueueListCreateApi(ApiView):
    """GET lists the queues you manage or annotate; POST creates a queue (governance, engineers,
    administrators). Items are the team's stored (redacted) logs matching `filters` (`app`, `prompt`,
    `prompt_version`, `model`, `since`, `until`, `negative_feedback`), each kept when the hash of its id
    falls under `sampling_rate`, up to `size` — or, for `kind: pairwise`, pairs of answers to the same
    input from side A (`prompt_version`/`model`) and side B (`prompt_version_b`/`model_b`). Every item is
    rated by `overlap` annotators (k)."""

    permission_classes = [HasScope]
    required_scope = READ_WRITE

    class InputSerializer(StrictSerializer):
        class FiltersSerializer(StrictSerializer):
            app = serializers.CharField(required=False, max_length=100)
            prompt = serializers.CharField(required=False, max_length=100)
            prompt_version = serializers.IntegerField(required=False, min_value=1)
            model = serializers.CharField(required=False, max_length=200)
            since = serializers.DateTimeField(required=False)
            until = serializers.DateTimeField(required=False)
            negative_feedback = serializers.BooleanField(required=False)
            prompt_version_b = serializers.IntegerField(required=False, min_value=1)
            model_b = serializers.CharField(required=False, max_length=200)

        team = serializers.CharField(required=False, default="", max_length=63)
        name = serializers.SlugField(max_length=100)
        schema = serializers.CharField(max_length=100, help_text="The schema's name in the team.")
        kind = NamedChoiceField(enum_name="QueueKind", choices=QueueKind.choices, default=QueueKind.SAMPLE)
        filters = FiltersSerializer(required=False, default=dict)
        sampling_rate = serializers.FloatField(required=False, default=1.0)
        size = serializers.IntegerField()
        overlap = serializers.IntegerField(required=False, default=1)
        lease_minutes = serializers.IntegerField(required=False, default=30)
        instructions = serializers.CharField(required=False, default="", allow_blank=True, max_length=10000)
        due_date = serializers.DateField(required=False, allow_null=True, default=None)
        assignees = serializers.ListField(
            child=serializers.CharField(max_length=150), required=False, default=list, max_length=200
        )

    @extend_schema(
        operation_id="feedback_queues_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated_schema("PaginatedAnnotationQueueList", QueueOutputSerializer)}
        | errors(401, 403),
    )
    def get(self, request: Request) -> Response:
        validated(FilterSerializer, request.query_params)
        return paginated_response(
            request=request,
            view=self,
            queryset=queue_list(user=request.user),
            serializer_class=QueueOutputSerializer,
        )

    @extend_schema(
        operation_id="feedback_queues_create",
        request=InputSerializer,
        responses={201: QueueOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        from apps.accounts.models import User
        from apps.feedback.models import RatingSchema

        data = validated(self.InputSerializer, request.data)
        team = _team_from(request, data.pop("team"))
        schema = RatingSchema.objects.filter(team=team, name=data.pop("schema")).first()
        if schema is None:
            raise NotFound("No such schema in this team.", code="schema_not_found")
        names = data.pop("assignees")
        assignees = list(User.objects.filter(username__in=names))
        missing = sorted(set(names) - {u.username for u in assignees})
        if missing:
            raise NotFound(f"No such users: {', '.join(missing)}.", code="user_not_found")
        queue = annotation_queue_create(
            actor=request.user, team=team, schema=schema, assignees=assignees, **data
        )
        return Response(QueueOutputSerializer(queue).data, status=201)


class QueueDetailApi(ApiView):
    """A queue with its progress: slots rated, leased, open, and per annotator (its managers only)."""

    permission_classes = [HasScope]
    required_scope = READ_WRITE

    class OutputSerializer(QueueOutputSerializer):
        progress = serializers.JSONField()

    @extend_schema(
        operation_id="feedback_queues_retrieve", responses={200: OutputSerializer} | errors(401, 403, 404)
    )
    def get(self, request: Request, queue_id: int) -> Response:
        queue = queue_get_managed(user=request.user, queue_id=queue_id)
        if queue is None:
            raise NotFound("No such queue.")
        queue.progress = queue_progress(queue=queue)  # type: ignore[attr-defined]
        return Response(self.OutputSerializer(queue).data)


def _slot_body(request: Request, slot: AnnotationSlot) -> dict[str, Any]:
    content = slot_for_annotation(user=request.user, slot=slot)

    def event(e: LogEvent | None) -> dict[str, Any] | None:
        if e is None:
            return None
        return {
            "request_id": e.request_id,
            "prompt": e.prompt,
            "prompt_version": e.prompt_version,
            "model": e.model,
            "input": e.input,
            "output": e.output,
        }

    return {
        "slot": slot.pk,
        "item": slot.item_id,
        "number": slot.number,
        "leased_until": slot.leased_until,
        "answer": event(content["event"]),
        "answer_b": event(content["event_b"]),
    }


class SlotOutputSerializer(serializers.Serializer):
    slot = serializers.IntegerField(help_text="Submit or skip with this id.")
    item = serializers.IntegerField()
    number = serializers.IntegerField(help_text="Which of the item's k places you hold.")
    leased_until = serializers.DateTimeField(help_text="After this the slot may go to someone else.")
    answer = serializers.JSONField(help_text="The redacted call: prompt, version, model, input, output.")
    answer_b = serializers.JSONField(allow_null=True, help_text="Answer B of a pairwise queue.")


class QueueNextApi(ApiView):
    """The next item for you (an annotator of the queue): the slot you already hold, else a newly leased
    one (200), or 204 when nothing is left for you. Only redacted text is returned; others' ratings never."""

    permission_classes = [HasScope]
    required_scope = {"POST": Scope.ANNOTATIONS_WRITE}

    @extend_schema(
        operation_id="feedback_queues_next",
        request=None,
        responses={200: SlotOutputSerializer, 204: OpenApiResponse(description="Nothing left for you.")}
        | errors(401, 403, 404),
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = queue_get_for_annotation(user=request.user, queue_id=queue_id)
        if queue is None:
            raise NotFound("No such queue in your assignments.")
        slot = annotation_next(actor=request.user, queue=queue)
        if slot is None:
            return Response(status=204)
        return Response(SlotOutputSerializer(_slot_body(request, slot)).data)


class SlotSubmitApi(ApiView):
    """Submit your values for the slot you hold: `{"values": {criterion: value}}`. A value off the schema
    → 422 naming the criterion and what it allows; a lease that went to someone else → 409 `lease_lost`."""

    permission_classes = [HasScope]
    required_scope = {"POST": Scope.ANNOTATIONS_WRITE}

    class InputSerializer(StrictSerializer):
        values = serializers.JSONField()

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        item = serializers.IntegerField(source="item_id")
        values = serializers.JSONField()
        seconds = serializers.FloatField(allow_null=True)
        submitted_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="feedback_slots_submit",
        request=InputSerializer,
        responses={201: OutputSerializer} | errors(400, 401, 403, 404, 409, 422),
    )
    def post(self, request: Request, slot_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        annotation = annotation_submit(actor=request.user, slot_id=slot_id, values=data["values"])
        return Response(self.OutputSerializer(annotation).data, status=201)


class SlotSkipApi(ApiView):
    """Pass on the item you hold: it returns to the pool for others and is not offered to you again."""

    permission_classes = [HasScope]
    required_scope = {"POST": Scope.ANNOTATIONS_WRITE}

    @extend_schema(
        operation_id="feedback_slots_skip",
        request=None,
        responses={204: OpenApiResponse(description="Skipped.")} | errors(401, 403, 404, 409),
    )
    def post(self, request: Request, slot_id: int) -> Response:
        annotation_skip(actor=request.user, slot_id=slot_id)
        return Response(status=204)


class QueueResultsApi(ApiView):
    """Scores per prompt version, model and criterion with 95 % intervals (Wilson for thumbs and the share
    preferring B; Student's t for scales), agreement per criterion (Krippendorff's alpha: nominal for thumbs,
    labels and preferences, ordinal and interval for scales; Cohen's kappa per pair of annotators), each
    annotator's agreement with the consensus, and the items where annotators disagree."""

    permission_classes = [HasScope]
    required_scope = READ_WRITE

    class OutputSerializer(serializers.Serializer):
        scores = serializers.ListField(child=serializers.DictField())
        agreement = serializers.ListField(child=serializers.DictField())
        annotators = serializers.ListField(child=serializers.DictField())
        disagreements = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="feedback_queues_results", responses={200: OutputSerializer} | errors(401, 403, 404)
    )
    def get(self, request: Request, queue_id: int) -> Response:
        queue = queue_get_managed(user=request.user, queue_id=queue_id)
        if queue is None:
            raise NotFound("No such queue.")
        results = queue_results(queue=queue)
        results["disagreements"] = [
            {"item": d["item"].pk, "criteria": d["criteria"], "adjudicated": d["adjudicated"]}
            for d in results["disagreements"]
        ]
        return Response(self.OutputSerializer(results).data)


class AdjudicationApi(ApiView):
    """Governance sets an item's final values (any criteria, including the corrected answer); audited."""

    permission_classes = [HasScope]
    required_scope = {"PUT": Scope.ANNOTATIONS_WRITE}

    class InputSerializer(StrictSerializer):
        values = serializers.JSONField()
        note = serializers.CharField(required=False, default="", allow_blank=True, max_length=4000)

    class OutputSerializer(serializers.Serializer):
        item = serializers.IntegerField(source="item_id")
        values = serializers.JSONField()
        note = serializers.CharField()
        decided_by = serializers.CharField(source="decided_by.username")
        updated_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="feedback_items_adjudicate",
        request=InputSerializer,
        responses={200: OutputSerializer} | errors(400, 401, 403, 404, 422),
    )
    def put(self, request: Request, item_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        item = item_get_for_adjudication(user=request.user, item_id=item_id)
        if item is None:
            raise NotFound("No such item.")
        adjudication = adjudication_set(actor=request.user, item=item, **data)
        return Response(self.OutputSerializer(adjudication).data)


# Datasets


class DatasetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    uri = serializers.CharField(help_text="Stable: atalaya://datasets/<uuid>; what a tuning request names.")
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    version = serializers.IntegerField()
    kind = serializers.CharField()
    queue = serializers.IntegerField(source="queue_id")
    row_count = serializers.IntegerField()
    content_hash = serializers.CharField(help_text="SHA-256 of the JSONL content.")
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()


class DatasetCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class DatasetExportApi(ApiView):
    """Export the queue's final values (adjudicated, or every annotator agreeing) as a new version of a
    dataset: `kind: sft` (JSONL `{"messages": [...]}` ending with the corrected or accepted answer) or
    `preference` (`{"prompt", "chosen", "rejected"}` from A/B preferences and corrected answers)."""

    permission_classes = [HasScope]
    required_scope = {"POST": Scope.ANNOTATIONS_WRITE}

    class InputSerializer(StrictSerializer):
        kind = NamedChoiceField(enum_name="DatasetKind", choices=DatasetKind.choices)
        name = serializers.SlugField(required=False, default="", allow_blank=True, max_length=100)

    @extend_schema(
        operation_id="feedback_queues_export",
        request=InputSerializer,
        responses={201: DatasetOutputSerializer} | errors(400, 401, 403, 404, 422),
    )
    def post(self, request: Request, queue_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        queue = queue_get_managed(user=request.user, queue_id=queue_id)
        if queue is None:
            raise NotFound("No such queue.")
        dataset = dataset_export(actor=request.user, queue=queue, **data)
        return Response(DatasetOutputSerializer(dataset).data, status=201)


class DatasetListApi(ApiView):
    """Exported datasets of your teams, newest first."""

    permission_classes = [HasScope]
    required_scope = Scope.FEEDBACK_READ

    @extend_schema(
        operation_id="datasets_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated_schema("PaginatedDatasetList", DatasetOutputSerializer)} | errors(401, 403),
    )
    def get(self, request: Request) -> Response:
        validated(FilterSerializer, request.query_params)
        return paginated_response(
            request=request,
            view=self,
            queryset=dataset_list(user=request.user),
            serializer_class=DatasetOutputSerializer,
            pagination_class=DatasetCursorPagination,
        )


class DatasetDetailApi(ApiView):
    """A dataset with its lineage: per row, the queue item and the log event ids (and request ids)."""

    permission_classes = [HasScope]
    required_scope = Scope.FEEDBACK_READ

    class OutputSerializer(DatasetOutputSerializer):
        lineage = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="datasets_retrieve", responses={200: OutputSerializer} | errors(401, 403, 404)
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_get(user=request.user, dataset_id=dataset_id)
        if dataset is None:
            raise NotFound("No such dataset.")
        return Response(self.OutputSerializer(dataset).data)


class DatasetDownloadApi(ApiView):
    """The dataset's JSONL content (`application/jsonl`), with its hash in `ETag`."""

    permission_classes = [HasScope]
    required_scope = Scope.FEEDBACK_READ

    @extend_schema(
        operation_id="datasets_download",
        responses={(200, "application/jsonl"): OpenApiTypes.STR} | errors(401, 403, 404),
    )
    def get(self, request: Request, dataset_id: int) -> HttpResponse:
        dataset = dataset_get(user=request.user, dataset_id=dataset_id)
        if dataset is None:
            raise NotFound("No such dataset.")
        return dataset_response(dataset)


def dataset_response(dataset: Any) -> HttpResponse:
    response = HttpResponse(dataset.content, content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{dataset.name}-v{dataset.version}.jsonl"'
    response["ETag"] = f'"{dataset.content_hash}"'
    return response
