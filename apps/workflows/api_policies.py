"""API v1 for approval policies: read the policy in force for every kind of change in the caller's teams;
a team's governance changes one (approvals, approver role, the evaluation gate and its thresholds)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import CATALOG_READERS, Role, Scope
from apps.accounts.selectors import team_get_by_slug
from apps.common.api import ApiView, FilterSerializer, NamedChoiceField, StrictSerializer, errors, validated
from apps.common.exceptions import NotFound
from apps.common.permissions import HasScope
from apps.workflows.models import ApprovalPolicy, SubjectKind
from apps.workflows.selectors import approval_policy_table
from apps.workflows.services import approval_policy_change


class ApprovalPolicyOutputSerializer(serializers.Serializer):
    team = serializers.SerializerMethodField()
    subject_kind = NamedChoiceField(choices=SubjectKind.choices, enum_name="SubjectKind")
    source = serializers.SerializerMethodField(help_text="`team` (its own), `global` or `default`.")
    approvals_required = serializers.IntegerField()
    approver_role = NamedChoiceField(choices=Role.choices, enum_name="Role")
    requires_evaluation = serializers.BooleanField()
    evaluation_thresholds = serializers.JSONField()
    cost_threshold = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    approvals_above_threshold = serializers.IntegerField(allow_null=True)

    def get_team(self, policy: ApprovalPolicy) -> str:
        return self.context["team"].slug

    def get_source(self, policy: ApprovalPolicy) -> str:
        return "team" if policy.team_id else "global" if policy.pk else "default"


class ApprovalPolicyListApi(ApiView):
    """The policy in force for every kind of change, in each of the caller's teams (or the one named)."""

    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_READ

    class FilterSerializer(FilterSerializer):
        team = serializers.SlugField(required=False)

    @extend_schema(
        operation_id="approval_policies_list",
        parameters=[FilterSerializer],
        responses={200: ApprovalPolicyOutputSerializer(many=True)} | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        rows = []
        for team, policies in approval_policy_table(user=request.user, roles=CATALOG_READERS):
            if filters.get("team") and team.slug != filters["team"]:
                continue
            rows += ApprovalPolicyOutputSerializer(policies, many=True, context={"team": team}).data
        return Response(rows)


class ApprovalPolicySetApi(ApiView):
    """Set the team's own policy for one kind of change (governance of the team only, 403 `not_governance`).
    `evaluation_thresholds` are checked by the gate (422 `invalid_thresholds` naming the bad key); only
    prompt versions, alias moves and deployments can require an evaluation."""

    permission_classes = [HasScope]
    required_scope = Scope.APPROVALS_WRITE

    class InputSerializer(StrictSerializer):
        approvals_required = serializers.IntegerField(min_value=1, max_value=10)
        approver_role = serializers.ChoiceField(choices=Role.choices, default=Role.GOVERNANCE)
        requires_evaluation = serializers.BooleanField(default=False)
        evaluation_thresholds = serializers.JSONField(required=False, default=dict)
        cost_threshold = serializers.DecimalField(
            max_digits=12, decimal_places=2, required=False, allow_null=True, default=None
        )
        approvals_above_threshold = serializers.IntegerField(
            min_value=1, max_value=10, required=False, allow_null=True, default=None
        )

    @extend_schema(
        operation_id="approval_policies_set",
        request=InputSerializer,
        responses={200: ApprovalPolicyOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def put(self, request: Request, team: str, subject_kind: str) -> Response:
        governed = team_get_by_slug(user=request.user, slug=team)
        if governed is None:
            raise NotFound(f"No team {team!r}.", code="team_not_found")
        if subject_kind not in SubjectKind.values:
            raise NotFound(f"No kind of change {subject_kind!r}.", code="unknown_subject_kind")
        data = validated(self.InputSerializer, request.data)
        policy = approval_policy_change(actor=request.user, team=governed, subject_kind=subject_kind, **data)
        return Response(ApprovalPolicyOutputSerializer(policy, context={"team": governed}).data)
