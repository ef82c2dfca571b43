"""API v1 for tuning requests: file one (a draft), submit it for approval, follow its job, cancel it.

Approval is the engine's (`POST /api/v1/approvals/{id}/decisions/`); once approved, the job is dispatched
by a worker and followed by the beat poller. Scopes: `models:read` to read, `models:write` to write.
"""

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import Scope
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
from apps.common.permissions import HasScope
from apps.registry.api import team_filter
from apps.registry.selectors import adapter_get
from apps.tuning.models import TuningRequest, TuningStatus
from apps.tuning.selectors import tuning_request_get, tuning_request_list
from apps.tuning.services import tuning_request_cancel, tuning_request_create, tuning_request_submit
from apps.workflows.api import ApprovalRequestOutputSerializer
from apps.workflows.selectors import approval_latest_requests
from apps.workflows.services import approval_subject_request


class TuningRequestListSerializer(serializers.ListSerializer):
    """A page of tuning requests: their approval requests read for all of them at once."""

    def to_representation(self, data: Any) -> list[Any]:
        requests = list(data.all() if hasattr(data, "all") else data)
        latest = approval_latest_requests(model=TuningRequest, object_ids=[r.pk for r in requests])
        for request in requests:
            request.latest_approval = latest.get(request.pk)
        return super().to_representation(requests)


class TuningRequestOutputSerializer(serializers.Serializer):
    class Meta:
        list_serializer_class = TuningRequestListSerializer

    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    adapter = serializers.IntegerField(source="adapter_id")
    adapter_name = serializers.CharField(source="adapter.name")
    base_model = serializers.CharField(source="adapter.base_model.model_id")
    method = serializers.CharField(source="adapter.method")
    status = NamedChoiceField(choices=TuningStatus.choices, enum_name="TuningStatus")
    train_dataset_uri = serializers.CharField()
    validation_dataset_uri = serializers.CharField()
    hyperparameters = serializers.DictField()
    machine_type = serializers.CharField()
    accelerator_type = serializers.CharField()
    accelerator_count = serializers.IntegerField()
    estimated_hours = serializers.DecimalField(max_digits=8, decimal_places=2)
    hourly_price = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)
    estimated_cost = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    justification = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    approval_request = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()
    result_version = serializers.IntegerField(source="result_version.number", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_approval_request(self, obj) -> int | None:
        if hasattr(obj, "latest_approval"):
            approval = obj.latest_approval
        else:
            approval = approval_subject_request(subject=obj)
        return approval.pk if approval is not None else None

    @extend_schema_field(
        serializers.DictField(
            help_text="backend, name, state (Vertex's JobState name), progress (0..1), error, log_tail, "
            "output_uri, dispatched_at, started_at, ended_at, cancel_requested_at"
        )
    )
    def get_job(self, obj) -> dict:
        from apps.cloud.jobs import JobState

        return {
            "backend": obj.job_backend,
            "name": obj.job_name,
            "state": JobState(obj.job_state).name if obj.job_state else None,
            "progress": obj.progress,
            "error": obj.job_error,
            "log_tail": obj.log_tail,
            "output_uri": obj.job_output_uri,
            "dispatched_at": obj.dispatched_at,
            "started_at": obj.started_at,
            "ended_at": obj.ended_at,
            "cancel_requested_at": obj.cancel_requested_at,
        }


class TuningRequestListCreateApi(ApiView):
    """GET lists the tuning requests of the caller's teams; POST files a draft for an adapter."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.MODELS_READ, "POST": Scope.MODELS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63)
        status = serializers.ChoiceField(choices=TuningStatus.choices, required=False)
        adapter = serializers.IntegerField(required=False, min_value=1)

    class InputSerializer(StrictSerializer):
        adapter = serializers.IntegerField(min_value=1, help_text="The adapter the new version will join.")
        train_dataset_uri = serializers.CharField(max_length=1000)
        validation_dataset_uri = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=1000
        )
        hyperparameters = serializers.DictField(required=False, default=dict)
        machine_type = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
        accelerator_type = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
        accelerator_count = serializers.IntegerField(required=False, default=0, min_value=0, max_value=16)
        estimated_hours = serializers.DecimalField(
            max_digits=8, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("10000")
        )
        justification = serializers.CharField(max_length=4000)

    @extend_schema(
        operation_id="tuning_requests_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedTuningRequestList", TuningRequestOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        team = team_filter(request, filters.get("team", ""))
        queryset = tuning_request_list(
            user=request.user,
            team_id=team.pk if team else None,
            status=filters.get("status", ""),
            adapter_id=filters.get("adapter"),
        )
        if team is False:
            queryset = queryset.none()
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=TuningRequestOutputSerializer
        )

    @extend_schema(
        operation_id="tuning_requests_create",
        request=InputSerializer,
        responses={201: TuningRequestOutputSerializer} | errors(400, 401, 403, 404, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        adapter = adapter_get(user=request.user, adapter_id=data.pop("adapter"))
        created = tuning_request_create(actor=request.user, adapter=adapter, **data)
        return Response(
            TuningRequestOutputSerializer(tuning_request_get(user=request.user, request_id=created.pk)).data,
            status=201,
        )


class TuningRequestDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.MODELS_READ

    @extend_schema(
        operation_id="tuning_requests_retrieve",
        responses={200: TuningRequestOutputSerializer} | errors(401, 403, 404),
    )
    def get(self, request: Request, request_id: int) -> Response:
        return Response(
            TuningRequestOutputSerializer(tuning_request_get(user=request.user, request_id=request_id)).data
        )


class TuningRequestSubmitApi(ApiView):
    """Send a draft to review: the estimate is taken again and an approval request opens (its id is in
    the answer); the policy for `tuning_request` may ask more approvals above a cost."""

    permission_classes = [HasScope]
    required_scope = Scope.MODELS_WRITE

    @extend_schema(
        operation_id="tuning_requests_submit",
        request=None,
        responses={201: ApprovalRequestOutputSerializer} | errors(401, 403, 404, 409),
    )
    def post(self, request: Request, request_id: int) -> Response:
        tuning = tuning_request_get(user=request.user, request_id=request_id)
        approval = tuning_request_submit(actor=request.user, request=tuning)
        return Response(ApprovalRequestOutputSerializer(approval).data, status=201)


class TuningRequestCancelApi(ApiView):
    """Stop a request: a draft or an undispatched approval ends at once, one waiting for approval is
    withdrawn, a queued or running job is asked to stop (the answer shows `cancel_requested_at`; the
    request becomes `cancelled` when the provider confirms)."""

    permission_classes = [HasScope]
    required_scope = Scope.MODELS_WRITE

    @extend_schema(
        operation_id="tuning_requests_cancel",
        request=None,
        responses={200: TuningRequestOutputSerializer} | errors(401, 403, 404, 409),
    )
    def post(self, request: Request, request_id: int) -> Response:
        tuning = tuning_request_get(user=request.user, request_id=request_id)
        tuning_request_cancel(actor=request.user, request=tuning)
        return Response(
            TuningRequestOutputSerializer(tuning_request_get(user=request.user, request_id=request_id)).data
        )
