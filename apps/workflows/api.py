"""API v1 for the approval engine: requests, the caller's review queue, decisions, withdrawal."""

from drf_spectacular.utils import extend_schema
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
from apps.common.exceptions import NotFound
from apps.common.permissions import HasScope
from apps.workflows.models import ApprovalRequest, Decision, RequestStatus
from apps.workflows.selectors import approval_request_get, approval_request_list, review_queue
from apps.workflows.services import (
    approval_decision_record,
    approval_gate_verdict,
    approval_request_can_decide,
    approval_request_withdraw,
)


class ApprovalRequestOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    subject_kind = serializers.CharField()
    subject_id = serializers.IntegerField(source="object_id")
    summary = serializers.CharField()
    status = NamedChoiceField(choices=RequestStatus.choices, enum_name="RequestStatus")
    requested_by = serializers.CharField(source="requested_by.username")
    approvals_required = serializers.IntegerField()
    approver_role = serializers.CharField()
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class ApprovalDecisionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    request = serializers.IntegerField(source="request_id")
    reviewer = serializers.CharField(source="reviewer.username")
    decision = serializers.ChoiceField(choices=Decision.choices)
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()


def _get_request(*, user, request_id: int) -> ApprovalRequest:
    found = approval_request_get(user=user, request_id=request_id)
    if found is None:
        raise NotFound("No such approval request.")
    return found


class ApprovalListApi(ApiView):
    """Approval requests of the caller's teams; `mine=1` gives their review queue (what they can decide now)."""

    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_READ

    class FilterSerializer(FilterSerializer):
        status = NamedChoiceField(choices=RequestStatus.choices, enum_name="RequestStatus", required=False)
        mine = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        operation_id="approvals_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedApprovalRequestList", ApprovalRequestOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        if filters["mine"]:
            queryset = review_queue(user=request.user)
            if filters.get("status"):
                queryset = queryset.filter(status=filters["status"])
        else:
            queryset = approval_request_list(user=request.user, status=filters.get("status"))
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=ApprovalRequestOutputSerializer
        )


class ApprovalDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_READ

    class OutputSerializer(ApprovalRequestOutputSerializer):
        decisions = ApprovalDecisionOutputSerializer(many=True)
        can_decide = serializers.BooleanField(help_text="Whether the caller may decide this request now.")
        cannot_decide_reason = serializers.CharField(help_text="Why not, when they may not.")
        evaluation_gate = serializers.JSONField(
            allow_null=True,
            help_text="The evaluation gate's verdict (passed, reason, thresholds, and per golden set its run and "
            "checks), or null when the policy does not require evaluation. Approving is refused (409 "
            "evaluation_gate_failed) while it has not passed.",
        )

    @extend_schema(
        operation_id="approvals_retrieve", responses={200: OutputSerializer} | errors(401, 403, 404)
    )
    def get(self, request: Request, request_id: int) -> Response:
        approval = _get_request(user=request.user, request_id=request_id)
        can_decide, reason = approval_request_can_decide(request=approval, user=request.user)
        approval.can_decide, approval.cannot_decide_reason = can_decide, reason
        verdict = approval_gate_verdict(request=approval) if approval.status == RequestStatus.OPEN else None
        approval.evaluation_gate = (
            None
            if verdict is None
            else {"passed": verdict.passed, "reason": verdict.reason, **verdict.as_details()}
        )
        return Response(self.OutputSerializer(approval).data)


class ApprovalDecisionCreateApi(ApiView):
    """Decide an open request. The requester can never decide it (403 `self_approval`), whatever roles
    they hold; only the policy's approver role of the request's team decides."""

    permission_classes = [HasScope]
    required_scope = Scope.APPROVALS_WRITE

    class InputSerializer(StrictSerializer):
        decision = serializers.ChoiceField(choices=Decision.choices)
        comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=5000)

    class OutputSerializer(serializers.Serializer):
        decision = ApprovalDecisionOutputSerializer()
        approval_request = ApprovalRequestOutputSerializer()

    @extend_schema(
        operation_id="approvals_decide",
        request=InputSerializer,
        responses={201: OutputSerializer} | errors(400, 401, 403, 404, 409, 413),
    )
    def post(self, request: Request, request_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        decision = approval_decision_record(
            request_id=request_id, reviewer=request.user, decision=data["decision"], comment=data["comment"]
        )
        decision.request.refresh_from_db()
        body = self.OutputSerializer({"decision": decision, "approval_request": decision.request}).data
        return Response(body, status=201)


class ApprovalWithdrawApi(ApiView):
    """The requester takes their request back; the subject returns to its state before the request."""

    permission_classes = [HasScope]
    required_scope = Scope.APPROVALS_WRITE

    class InputSerializer(StrictSerializer):
        pass

    @extend_schema(
        operation_id="approvals_withdraw",
        request=None,
        responses={200: ApprovalRequestOutputSerializer} | errors(400, 401, 403, 404, 409, 413),
    )
    def post(self, request: Request, request_id: int) -> Response:
        validated(self.InputSerializer, request.data)
        approval = approval_request_withdraw(request_id=request_id, actor=request.user)
        return Response(ApprovalRequestOutputSerializer(approval).data)
