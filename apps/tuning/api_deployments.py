"""API v1 for endpoints and deployment requests.

Objects of a team the caller cannot read answer 404, never 403; a caller who can read but not act
answers 403 (requests are filed by engineers and administrators; promote and roll back are also open to
governance). Submitting answers 202 with the approval request; the deployment happens on approval, in a
task. Promote and roll back answer 202 with the deployment and its `action`: a worker makes the provider
calls and records the new state (or clears the action and keeps the provider's message in `error`).
"""

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
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
from apps.registry.api import team_filter, team_for_write
from apps.registry.selectors import base_model_get
from apps.tuning.deployment_selectors import (
    deployable_version_get,
    deployment_annotate,
    deployment_get,
    deployment_list,
    deployments_annotate,
    endpoint_get,
    endpoint_history,
    endpoint_list,
)
from apps.tuning.deployments import (
    deployment_create,
    deployment_promote,
    deployment_rollback,
    deployment_submit,
    endpoint_create,
)
from apps.tuning.models import Deployment, DeploymentStatus, DeploymentStrategy
from apps.workflows.api import ApprovalRequestOutputSerializer


class AdapterVersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    adapter = serializers.IntegerField(source="adapter_id")
    adapter_name = serializers.CharField(source="adapter.name")
    number = serializers.IntegerField()
    artifact_uri = serializers.CharField()


class DeploymentListSerializer(serializers.ListSerializer):
    """A page of deployments: their approval requests and approvers read for all of them at once."""

    def to_representation(self, data: Any) -> list[Any]:
        deployments = list(data.all() if hasattr(data, "all") else data)
        deployments_annotate([d for d in deployments if not hasattr(d, "approved_by")])
        return super().to_representation(deployments)


class DeploymentOutputSerializer(serializers.Serializer):
    class Meta:
        list_serializer_class = DeploymentListSerializer

    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    endpoint = serializers.IntegerField(source="endpoint_id")
    endpoint_name = serializers.CharField(source="endpoint.name")
    adapter_version = AdapterVersionRefSerializer(allow_null=True)
    base_model = serializers.IntegerField(source="base_model_id", allow_null=True)
    model = serializers.SerializerMethodField(help_text="What is deployed, for people.")
    strategy = NamedChoiceField(choices=DeploymentStrategy.choices, enum_name="DeploymentStrategy")
    traffic_percent = serializers.IntegerField(help_text="Its share of the endpoint's traffic when live.")
    status = NamedChoiceField(choices=DeploymentStatus.choices, enum_name="DeploymentStatus")
    machine_type = serializers.CharField()
    accelerator_type = serializers.CharField()
    accelerator_count = serializers.IntegerField()
    justification = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    approval_request = serializers.SerializerMethodField()
    approved_by = serializers.SerializerMethodField()
    model_resource = serializers.CharField(help_text="The provider's registered model.")
    model_version_id = serializers.CharField()
    deployed_model_id = serializers.CharField()
    previous_traffic_split = serializers.DictField(
        child=serializers.IntegerField(), help_text="The endpoint's split before it went live."
    )
    error = serializers.CharField(
        help_text="The provider's message when a deploy, promote or roll back failed."
    )
    action = serializers.CharField(
        help_text="`promote` or `rollback` while the worker does it; empty otherwise."
    )
    action_requested_by = serializers.CharField(
        source="action_requested_by.username", allow_null=True, default=None
    )
    deployed_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def _annotated(self, deployment: Deployment) -> Any:
        if not hasattr(deployment, "approved_by"):
            deployment_annotate(deployment)
        return deployment

    @extend_schema_field(serializers.CharField())
    def get_model(self, deployment: Deployment) -> str:
        return str(deployment.adapter_version or deployment.base_model)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_approval_request(self, deployment: Deployment) -> int | None:
        approval = self._annotated(deployment).approval
        return approval.pk if approval is not None else None

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_approved_by(self, deployment: Deployment) -> list[str]:
        return list(self._annotated(deployment).approved_by)


class EndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    backend = serializers.CharField()
    resource_name = serializers.CharField(help_text="The provider's endpoint; empty until the first deploy.")
    traffic_split = serializers.DictField(
        child=serializers.IntegerField(), help_text="Deployed model id → percent, as the provider holds it."
    )
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()


class EndpointDetailOutputSerializer(EndpointOutputSerializer):
    deployments = serializers.SerializerMethodField(help_text="Its history, newest first.")

    @extend_schema_field(DeploymentOutputSerializer(many=True))
    def get_deployments(self, endpoint: Any) -> list[dict[str, Any]]:
        history = endpoint_history(endpoint=endpoint)
        for deployment in history:
            deployment.endpoint = endpoint
            deployment.team = endpoint.team
        return list(DeploymentOutputSerializer(history, many=True).data)


class EndpointListCreateApi(ApiView):
    """GET lists the endpoints of the caller's teams; POST creates one (in the token's team by default).
    The provider's endpoint is created at the first deployment."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.MODELS_READ, "POST": Scope.MODELS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63)

    class InputSerializer(StrictSerializer):
        team = serializers.CharField(
            required=False, max_length=63, help_text="Team slug; defaults to the token's team."
        )
        name = serializers.CharField(max_length=100)

    @extend_schema(
        operation_id="endpoints_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedEndpointList", EndpointOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        team = team_filter(request, filters.get("team", ""))
        queryset = endpoint_list(user=request.user, team_id=team.pk if team else None)
        if team is False:
            queryset = queryset.none()
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=EndpointOutputSerializer
        )

    @extend_schema(
        operation_id="endpoints_create",
        request=InputSerializer,
        responses={201: EndpointOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        team = team_for_write(request, data.pop("team", None))
        endpoint = endpoint_create(actor=request.user, team=team, name=data["name"])
        return Response(EndpointOutputSerializer(endpoint).data, status=201)


class EndpointDetailApi(ApiView):
    """An endpoint with its current traffic split and its deployment history."""

    permission_classes = [HasScope]
    required_scope = Scope.MODELS_READ

    @extend_schema(
        operation_id="endpoints_retrieve",
        responses={200: EndpointDetailOutputSerializer} | errors(401, 403, 404),
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = endpoint_get(user=request.user, endpoint_id=endpoint_id)
        return Response(EndpointDetailOutputSerializer(endpoint).data)


class DeploymentListCreateApi(ApiView):
    """GET lists the deployment requests of the caller's teams; POST drafts one (submit it next)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.MODELS_READ, "POST": Scope.MODELS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63)
        endpoint = serializers.IntegerField(required=False, min_value=1)
        status = serializers.ChoiceField(choices=DeploymentStatus.choices, required=False)

    class InputSerializer(StrictSerializer):
        endpoint = serializers.IntegerField(min_value=1, help_text="The endpoint's id.")
        adapter_version = serializers.IntegerField(
            min_value=1,
            required=False,
            allow_null=True,
            help_text="The adapter version's id (or base_model).",
        )
        base_model = serializers.IntegerField(
            min_value=1,
            required=False,
            allow_null=True,
            help_text="An open base model's id (or adapter_version).",
        )
        strategy = serializers.ChoiceField(choices=DeploymentStrategy.choices)
        traffic_percent = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=0,
            max_value=100,
            help_text="replace: 100 (the default); canary: 1 to 50; ab: 1 to 99.",
        )
        machine_type = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
        accelerator_type = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
        accelerator_count = serializers.IntegerField(required=False, default=0, min_value=0, max_value=100)
        justification = serializers.CharField(max_length=4000)

    @extend_schema(
        operation_id="deployments_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedDeploymentList", DeploymentOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        team = team_filter(request, filters.get("team", ""))
        queryset = deployment_list(
            user=request.user,
            team_id=team.pk if team else None,
            endpoint_id=filters.get("endpoint"),
            status=filters.get("status", ""),
        )
        if team is False:
            queryset = queryset.none()
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=DeploymentOutputSerializer
        )

    @extend_schema(
        operation_id="deployments_create",
        request=InputSerializer,
        responses={201: DeploymentOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        endpoint = endpoint_get(user=request.user, endpoint_id=data.pop("endpoint"))
        version_id, model_id = data.pop("adapter_version", None), data.pop("base_model", None)
        deployment = deployment_create(
            actor=request.user,
            endpoint=endpoint,
            adapter_version=deployable_version_get(user=request.user, version_id=version_id)
            if version_id
            else None,
            base_model=base_model_get(user=request.user, model_id=model_id) if model_id else None,
            **data,
        )
        return Response(
            DeploymentOutputSerializer(deployment_get(user=request.user, deployment_id=deployment.pk)).data,
            status=201,
        )


class DeploymentDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.MODELS_READ

    @extend_schema(
        operation_id="deployments_retrieve",
        responses={200: DeploymentOutputSerializer} | errors(401, 403, 404),
    )
    def get(self, request: Request, deployment_id: int) -> Response:
        return Response(
            DeploymentOutputSerializer(deployment_get(user=request.user, deployment_id=deployment_id)).data
        )


class DeploymentSubmitApi(ApiView):
    """Send a draft to approval (four eyes, by the policy for `deployment`)."""

    permission_classes = [HasScope]
    required_scope = Scope.MODELS_WRITE

    @extend_schema(
        operation_id="deployments_submit",
        request=None,
        responses={
            202: inline_serializer(
                "DeploymentSubmitResult",
                {
                    "deployment": DeploymentOutputSerializer(),
                    "approval_request": ApprovalRequestOutputSerializer(),
                },
            )
        }
        | errors(401, 403, 404, 409, 422),
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        deployment = deployment_get(user=request.user, deployment_id=deployment_id)
        approval = deployment_submit(actor=request.user, deployment=deployment)
        return Response(
            {
                "deployment": DeploymentOutputSerializer(
                    deployment_get(user=request.user, deployment_id=deployment_id)
                ).data,
                "approval_request": ApprovalRequestOutputSerializer(approval).data,
            },
            status=202,
        )


class DeploymentPromoteApi(ApiView):
    """Ask for a live deployment to take 100 % of its endpoint (the earlier models are undeployed)."""

    permission_classes = [HasScope]
    required_scope = Scope.MODELS_WRITE

    @extend_schema(
        operation_id="deployments_promote",
        request=None,
        responses={202: DeploymentOutputSerializer} | errors(401, 403, 404, 409),
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        deployment = deployment_get(user=request.user, deployment_id=deployment_id)
        deployment_promote(actor=request.user, deployment=deployment)
        return Response(
            DeploymentOutputSerializer(deployment_get(user=request.user, deployment_id=deployment_id)).data,
            status=202,
        )


class DeploymentRollbackApi(ApiView):
    """Ask to put back what served before this deployment, and undeploy its model."""

    permission_classes = [HasScope]
    required_scope = Scope.MODELS_WRITE

    @extend_schema(
        operation_id="deployments_rollback",
        request=None,
        responses={202: DeploymentOutputSerializer} | errors(401, 403, 404, 409),
    )
    def post(self, request: Request, deployment_id: int) -> Response:
        deployment = deployment_get(user=request.user, deployment_id=deployment_id)
        deployment_rollback(actor=request.user, deployment=deployment)
        return Response(
            DeploymentOutputSerializer(deployment_get(user=request.user, deployment_id=deployment_id)).data,
            status=202,
        )
