"""API v1 for the model and adapter registry: base models, adapters, versions, alias moves.

Objects of a team the caller cannot read answer 404, never 403; a caller who can read but not write
answers 403. Alias moves go through the approval engine: the answer is 202 with the approval request.
"""

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Team
from apps.accounts.roles import REGISTRY_READERS, Scope
from apps.accounts.selectors import active_token, team_get_by_slug
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
from apps.registry.models import Adapter, AdapterVersion, MoveStatus, Provider, TuningMethod
from apps.registry.selectors import (
    adapter_get,
    adapter_list,
    adapter_version_get,
    adapter_versions,
    base_model_get,
    base_model_list,
)
from apps.registry.services import (
    adapter_create,
    adapter_version_register,
    alias_move_request,
    base_model_register,
)
from apps.workflows.api import ApprovalRequestOutputSerializer


def team_for_write(request: Request, slug: str | None) -> Team:
    """The team a write goes to: the one named (which the caller must belong to), else the token's."""
    if slug:
        team = team_get_by_slug(user=request.user, slug=slug)
        if team is None:
            raise NotFound(f"No team {slug!r}.", code="team_not_found")
        return team
    token = active_token(request.user)
    if token is not None:
        return token.team
    raise serializers.ValidationError({"team": ["Name the team (its slug)."]})


def team_filter(request: Request, slug: str) -> Team | bool | None:
    """The team named by ?team= among the caller's readable teams; False when named but not readable."""
    if not slug:
        return None
    return team_get_by_slug(user=request.user, slug=slug, roles=REGISTRY_READERS) or False


class BaseModelOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    provider = NamedChoiceField(choices=Provider.choices, enum_name="Provider")
    model_id = serializers.CharField()
    display_name = serializers.CharField()
    context_window = serializers.IntegerField()
    notes = serializers.CharField()
    mlflow_name = serializers.CharField()
    mlflow_synced = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.BooleanField())
    def get_mlflow_synced(self, obj: Any) -> bool:
        return obj.mlflow_synced_at is not None


class AdapterVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    adapter = serializers.IntegerField(source="adapter_id")
    number = serializers.IntegerField()
    artifact_uri = serializers.CharField()
    metrics = serializers.DictField(child=serializers.FloatField())
    hyperparameters = serializers.DictField()
    dataset_uri = serializers.CharField()
    validation_dataset_uri = serializers.CharField()
    lineage = serializers.DictField()
    notes = serializers.CharField()
    aliases = serializers.SerializerMethodField()
    mlflow_version = serializers.CharField()
    mlflow_synced = serializers.SerializerMethodField()
    registered_by = serializers.CharField(source="registered_by.username")
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_aliases(self, version: AdapterVersion) -> list[str]:
        return sorted(alias.name for alias in version.aliases.all())

    @extend_schema_field(serializers.BooleanField())
    def get_mlflow_synced(self, obj: Any) -> bool:
        return obj.mlflow_synced_at is not None


class AdapterOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    base_model = BaseModelOutputSerializer()
    method = NamedChoiceField(choices=TuningMethod.choices, enum_name="TuningMethod")
    description = serializers.CharField()
    aliases = serializers.SerializerMethodField(help_text="Alias → version number.")
    versions = serializers.IntegerField(source="version_count", help_text="How many versions.")
    mlflow_name = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_aliases(self, adapter: Adapter) -> dict[str, int]:
        return {alias.name: alias.version.number for alias in adapter.aliases.all()}


class BaseModelListCreateApi(ApiView):
    """GET lists the base models of the caller's teams; POST registers one (in the token's team by default)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.MODELS_READ, "POST": Scope.MODELS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63)
        provider = serializers.ChoiceField(choices=Provider.choices, required=False)
        search = serializers.CharField(required=False, allow_blank=True, max_length=200)

    class InputSerializer(StrictSerializer):
        team = serializers.CharField(
            required=False, max_length=63, help_text="Team slug; defaults to the token's team."
        )
        provider = serializers.ChoiceField(choices=Provider.choices)
        model_id = serializers.CharField(max_length=200)
        display_name = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        context_window = serializers.IntegerField(min_value=1, max_value=100_000_000)
        notes = serializers.CharField(required=False, default="", allow_blank=True, max_length=4000)

    @extend_schema(
        operation_id="models_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedBaseModelList", BaseModelOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        team = team_filter(request, filters.get("team", ""))
        queryset = base_model_list(
            user=request.user,
            team_id=team.pk if team else None,
            provider=filters.get("provider", ""),
            search=filters.get("search", ""),
        )
        if team is False:
            queryset = queryset.none()
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=BaseModelOutputSerializer
        )

    @extend_schema(
        operation_id="models_create",
        request=InputSerializer,
        responses={201: BaseModelOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        team = team_for_write(request, data.pop("team", None))
        model = base_model_register(actor=request.user, team=team, **data)
        return Response(BaseModelOutputSerializer(model).data, status=201)


class BaseModelDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.MODELS_READ

    @extend_schema(
        operation_id="models_retrieve", responses={200: BaseModelOutputSerializer} | errors(401, 403, 404)
    )
    def get(self, request: Request, model_id: int) -> Response:
        return Response(BaseModelOutputSerializer(base_model_get(user=request.user, model_id=model_id)).data)


class AdapterListCreateApi(ApiView):
    """GET lists the adapters of the caller's teams; POST creates one over a base model of the same team."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.MODELS_READ, "POST": Scope.MODELS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63)
        base_model = serializers.IntegerField(required=False, min_value=1)
        search = serializers.CharField(required=False, allow_blank=True, max_length=200)

    class InputSerializer(StrictSerializer):
        base_model = serializers.IntegerField(min_value=1, help_text="The base model's id.")
        name = serializers.CharField(max_length=100)
        method = serializers.ChoiceField(choices=TuningMethod.choices, default=TuningMethod.LORA)
        description = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)

    @extend_schema(
        operation_id="adapters_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedAdapterList", AdapterOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        team = team_filter(request, filters.get("team", ""))
        queryset = adapter_list(
            user=request.user,
            team_id=team.pk if team else None,
            base_model_id=filters.get("base_model"),
            search=filters.get("search", ""),
        )
        if team is False:
            queryset = queryset.none()
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=AdapterOutputSerializer
        )

    @extend_schema(
        operation_id="adapters_create",
        request=InputSerializer,
        responses={201: AdapterOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        base_model = base_model_get(user=request.user, model_id=data.pop("base_model"))
        adapter = adapter_create(actor=request.user, base_model=base_model, **data)
        return Response(
            AdapterOutputSerializer(adapter_get(user=request.user, adapter_id=adapter.pk)).data, status=201
        )


class AdapterDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.MODELS_READ

    @extend_schema(
        operation_id="adapters_retrieve", responses={200: AdapterOutputSerializer} | errors(401, 403, 404)
    )
    def get(self, request: Request, adapter_id: int) -> Response:
        return Response(AdapterOutputSerializer(adapter_get(user=request.user, adapter_id=adapter_id)).data)


class AdapterVersionListCreateApi(ApiView):
    """GET lists an adapter's versions, newest first; POST registers a version trained elsewhere
    (versions from tuning requests are registered by the console with their lineage)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.MODELS_READ, "POST": Scope.MODELS_WRITE}

    class InputSerializer(StrictSerializer):
        artifact_uri = serializers.CharField(max_length=1000)
        metrics = serializers.DictField(required=False, default=dict)
        hyperparameters = serializers.DictField(required=False, default=dict)
        dataset_uri = serializers.CharField(required=False, default="", allow_blank=True, max_length=1000)
        validation_dataset_uri = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=1000
        )
        notes = serializers.CharField(required=False, default="", allow_blank=True, max_length=4000)

    @extend_schema(
        operation_id="adapter_versions_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated_schema("PaginatedAdapterVersionList", AdapterVersionOutputSerializer)}
        | errors(401, 403, 404),
    )
    def get(self, request: Request, adapter_id: int) -> Response:
        adapter = adapter_get(user=request.user, adapter_id=adapter_id)
        return paginated_response(
            request=request,
            view=self,
            queryset=adapter_versions(adapter=adapter),
            serializer_class=AdapterVersionOutputSerializer,
        )

    @extend_schema(
        operation_id="adapter_versions_create",
        request=InputSerializer,
        responses={201: AdapterVersionOutputSerializer} | errors(400, 401, 403, 404, 413, 422),
    )
    def post(self, request: Request, adapter_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        adapter = adapter_get(user=request.user, adapter_id=adapter_id)
        version = adapter_version_register(actor=request.user, adapter=adapter, **data)
        return Response(AdapterVersionOutputSerializer(version).data, status=201)


class AdapterVersionDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.MODELS_READ

    @extend_schema(
        operation_id="adapter_versions_retrieve",
        responses={200: AdapterVersionOutputSerializer} | errors(401, 403, 404),
    )
    def get(self, request: Request, adapter_id: int, number: int) -> Response:
        version = adapter_version_get(user=request.user, adapter_id=adapter_id, number=number)
        return Response(AdapterVersionOutputSerializer(version).data)


class AliasMoveApi(ApiView):
    """Ask to point an alias (champion, challenger…) at a version, or take it off (version null). The move
    is applied when its approval request is approved (four eyes, by the policy for `alias_move`)."""

    permission_classes = [HasScope]
    required_scope = Scope.MODELS_WRITE

    class InputSerializer(StrictSerializer):
        alias = serializers.CharField(max_length=40)
        version = serializers.IntegerField(
            min_value=1, allow_null=True, help_text="Version number; null: remove."
        )
        reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)

    @extend_schema(
        operation_id="adapter_alias_move",
        request=InputSerializer,
        responses={
            202: inline_serializer(
                "AliasMoveResult",
                {
                    "move": inline_serializer(
                        "AliasMove",
                        {
                            "id": serializers.IntegerField(),
                            "alias": serializers.CharField(),
                            "to_version": serializers.IntegerField(allow_null=True),
                            "from_version": serializers.IntegerField(allow_null=True),
                            "status": NamedChoiceField(
                                choices=MoveStatus.choices, enum_name="AliasMoveStatus"
                            ),
                        },
                    ),
                    "approval_request": ApprovalRequestOutputSerializer(),
                },
            )
        }
        | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request, adapter_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        adapter = adapter_get(user=request.user, adapter_id=adapter_id)
        result = alias_move_request(
            actor=request.user,
            adapter=adapter,
            alias=data["alias"],
            version_number=data["version"],
            reason=data["reason"],
        )
        move = result.move
        return Response(
            {
                "move": {
                    "id": move.pk,
                    "alias": move.alias,
                    "to_version": move.version.number if move.version else None,
                    "from_version": move.previous_version.number if move.previous_version else None,
                    "status": move.status,
                },
                "approval_request": ApprovalRequestOutputSerializer(result.request).data,
            },
            status=202,
        )
