"""API v1 for the prompt catalog: prompts, versions, submission, labels and rendering.

Objects of a team the caller cannot read answer 404, never 403, so that nothing of another team is
revealed; a caller who can read but not write answers 403. The resolve endpoint is in api_resolve.py.
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import CATALOG_READERS, Scope
from apps.accounts.selectors import active_token, team_get_by_slug
from apps.catalog.models import Prompt, PromptVersion, VersionStatus
from apps.catalog.selectors import (
    prompt_get,
    prompt_list,
    prompt_render,
    prompt_version_by_label,
    prompt_version_by_number,
    prompt_version_get,
    prompt_versions,
)
from apps.catalog.services import (
    ROLES,
    prompt_create,
    prompt_label_set,
    prompt_version_create,
    prompt_version_submit,
    prompt_version_update,
)
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
from apps.workflows.api import ApprovalRequestOutputSerializer
from apps.workflows.services import approval_subject_request

TEAM_PARAM = OpenApiParameter(
    "team", str, description="Team slug, when the name exists in several of your teams (else 409)."
)


class TeamQuerySerializer(StrictSerializer):
    team = serializers.CharField(required=False, allow_blank=True, max_length=63)


def _prompt_for(request: Request, name: str) -> Prompt:
    """The prompt named in the path, among the caller's teams (`?team=` disambiguates)."""
    query = validated(TeamQuerySerializer, request.query_params)
    return prompt_get(user=request.user, name=name, team_slug=query.get("team") or None)


# Shared output shapes


class PromptOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    tags = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField(help_text="Label name → version number.")
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, prompt: Prompt) -> list[str]:
        return [tag.name for tag in prompt.tags.all()]

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_labels(self, prompt: Prompt) -> dict[str, int]:
        return {label.name: label.version.number for label in prompt.labels.all()}


class PromptVersionSummaryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    status = NamedChoiceField(choices=VersionStatus.choices, enum_name="VersionStatus")
    model = serializers.CharField()
    message = serializers.CharField()
    content_hash = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()


class PromptMessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLES)
    template = serializers.CharField(trim_whitespace=False, allow_blank=True)


class PromptVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prompt = serializers.CharField(source="prompt.name")
    team = serializers.CharField(source="prompt.team.slug")
    number = serializers.IntegerField()
    status = NamedChoiceField(choices=VersionStatus.choices, enum_name="VersionStatus")
    messages = PromptMessageSerializer(many=True)
    variables = serializers.ListField(child=serializers.CharField())
    model = serializers.CharField()
    parameters = serializers.DictField()
    message = serializers.CharField()
    content_hash = serializers.CharField()
    labels = serializers.SerializerMethodField(help_text="The labels pointing at this version.")
    approval_request = serializers.SerializerMethodField(
        help_text="The latest approval request about this version (open or closed), if any."
    )
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_labels(self, version: PromptVersion) -> list[str]:
        return [label.name for label in version.labels.all()]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_approval_request(self, version: PromptVersion) -> int | None:
        request = approval_subject_request(subject=version)
        return request.pk if request is not None else None


# Prompts


class PromptListCreateApi(ApiView):
    """GET lists the prompts of the caller's teams; POST creates one (in the token's team by default)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.PROMPTS_READ, "POST": Scope.PROMPTS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63)
        tag = serializers.CharField(required=False, allow_blank=True, max_length=40)
        search = serializers.CharField(required=False, allow_blank=True, max_length=200)
        status = NamedChoiceField(
            choices=VersionStatus.choices,
            enum_name="VersionStatus",
            required=False,
            help_text="Prompts having a version in this state.",
        )

    class InputSerializer(StrictSerializer):
        team = serializers.CharField(
            required=False, max_length=63, help_text="Team slug; defaults to the token's team."
        )
        name = serializers.CharField(max_length=100)
        description = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)
        tags = serializers.ListField(
            child=serializers.CharField(max_length=40), required=False, default=list, max_length=20
        )

    @extend_schema(
        operation_id="prompts_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedPromptList", PromptOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        slug = filters.get("team") or ""
        team = team_get_by_slug(user=request.user, slug=slug, roles=CATALOG_READERS) if slug else None
        queryset = prompt_list(
            user=request.user,
            team_id=team.pk if team is not None else None,
            tag=filters.get("tag", ""),
            search=filters.get("search", ""),
            status=filters.get("status", ""),
        )
        if slug and team is None:
            queryset = queryset.none()
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=PromptOutputSerializer
        )

    @extend_schema(
        operation_id="prompts_create",
        request=InputSerializer,
        responses={201: PromptOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        token = active_token(request.user)
        slug = data.get("team")
        if slug:
            team = team_get_by_slug(user=request.user, slug=slug)
            if team is None:
                raise NotFound(f"No team {slug!r}.", code="team_not_found")
        elif token is not None:
            team = token.team
        else:
            raise serializers.ValidationError({"team": ["Name the team (its slug)."]})
        prompt = prompt_create(
            actor=request.user,
            team=team,
            name=data["name"],
            description=data["description"],
            tags=data["tags"],
        )
        return Response(PromptOutputSerializer(prompt).data, status=201)


class PromptDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_READ

    class OutputSerializer(PromptOutputSerializer):
        versions = PromptVersionSummaryOutputSerializer(many=True, source="versions_list")

    @extend_schema(
        operation_id="prompts_retrieve",
        parameters=[TEAM_PARAM],
        responses={200: OutputSerializer} | errors(400, 401, 403, 404, 409),
    )
    def get(self, request: Request, name: str) -> Response:
        prompt = _prompt_for(request, name)
        prompt.versions_list = list(prompt_versions(prompt=prompt))
        return Response(self.OutputSerializer(prompt).data)


# Versions


class PromptVersionCreateApi(ApiView):
    """A new draft version; its variables are read from the templates."""

    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_WRITE

    class InputSerializer(StrictSerializer):
        messages = PromptMessageSerializer(many=True)
        model = serializers.CharField(max_length=200)
        parameters = serializers.DictField(required=False, default=dict)
        message = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=500, help_text="Changelog for reviewers."
        )

    @extend_schema(
        operation_id="prompt_versions_create",
        parameters=[TEAM_PARAM],
        request=InputSerializer,
        responses={201: PromptVersionOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request, name: str) -> Response:
        data = validated(self.InputSerializer, request.data)
        prompt = _prompt_for(request, name)
        version = prompt_version_create(actor=request.user, prompt=prompt, **data)
        return Response(PromptVersionOutputSerializer(version).data, status=201)


class PromptVersionDetailUpdateApi(ApiView):
    """GET a version with its content; PATCH edits a draft (409 once submitted: its content is frozen)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.PROMPTS_READ, "PATCH": Scope.PROMPTS_WRITE}

    class InputSerializer(StrictSerializer):
        messages = PromptMessageSerializer(many=True, required=False)
        model = serializers.CharField(max_length=200, required=False)
        parameters = serializers.DictField(required=False)
        message = serializers.CharField(required=False, allow_blank=True, max_length=500)

    @extend_schema(
        operation_id="prompt_versions_retrieve",
        responses={200: PromptVersionOutputSerializer} | errors(401, 403, 404),
    )
    def get(self, request: Request, version_id: int) -> Response:
        version = prompt_version_get(user=request.user, version_id=version_id)
        return Response(PromptVersionOutputSerializer(version).data)

    @extend_schema(
        operation_id="prompt_versions_partial_update",
        request=InputSerializer,
        responses={200: PromptVersionOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def patch(self, request: Request, version_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        version = prompt_version_get(user=request.user, version_id=version_id)
        version = prompt_version_update(
            actor=request.user,
            version=version,
            messages=data.get("messages", version.messages),
            model=data.get("model", version.model),
            parameters=data.get("parameters", version.parameters),
            message=data.get("message", version.message),
        )
        return Response(PromptVersionOutputSerializer(version).data)


class PromptVersionSubmitApi(ApiView):
    """Send a draft to review: opens its approval request (201). Its content is frozen from now on."""

    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_WRITE

    class InputSerializer(StrictSerializer):
        pass

    @extend_schema(
        operation_id="prompt_versions_submit",
        request=None,
        responses={201: ApprovalRequestOutputSerializer} | errors(400, 401, 403, 404, 409, 413),
    )
    def post(self, request: Request, version_id: int) -> Response:
        validated(self.InputSerializer, request.data)
        version = prompt_version_get(user=request.user, version_id=version_id)
        approval = prompt_version_submit(actor=request.user, version=version)
        return Response(ApprovalRequestOutputSerializer(approval).data, status=201)


# Labels


class PromptLabelSetApi(ApiView):
    """Point a label at an approved version. 200 when it moved; 202 when the label is protected and
    the caller is not governance: an approval request was opened instead."""

    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_WRITE

    class InputSerializer(StrictSerializer):
        version = serializers.IntegerField(min_value=1)

    class OutputSerializer(serializers.Serializer):
        prompt = serializers.CharField(source="prompt.name")
        team = serializers.CharField(source="prompt.team.slug")
        name = serializers.CharField()
        version = serializers.IntegerField(source="version.number")
        updated_by = serializers.CharField(source="updated_by.username")
        updated_at = serializers.DateTimeField()

    class PendingOutputSerializer(serializers.Serializer):
        status = NamedChoiceField(choices=["pending_approval"], enum_name="LabelPending")
        label = serializers.CharField()
        version = serializers.IntegerField()
        approval_request = serializers.IntegerField()

    @extend_schema(
        operation_id="prompt_labels_set",
        parameters=[TEAM_PARAM],
        request=InputSerializer,
        responses={200: OutputSerializer, 202: PendingOutputSerializer}
        | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def put(self, request: Request, name: str, label: str) -> Response:
        data = validated(self.InputSerializer, request.data)
        prompt = _prompt_for(request, name)
        result = prompt_label_set(
            actor=request.user, prompt=prompt, label=label, version_number=data["version"]
        )
        if result.request is not None:
            pending: dict[str, Any] = {
                "status": "pending_approval",
                "label": label,
                "version": data["version"],
                "approval_request": result.request.pk,
            }
            return Response(self.PendingOutputSerializer(pending).data, status=202)
        return Response(self.OutputSerializer(result.label).data)


# Render


class PromptRenderApi(ApiView):
    """Render a version (by number, or the one a label points at) with variables; a missing or unknown
    variable is refused (422 `invalid_variables`, naming it)."""

    permission_classes = [HasScope]
    required_scope = Scope.PROMPTS_READ

    class InputSerializer(StrictSerializer):
        version = serializers.IntegerField(min_value=1, required=False)
        label = serializers.CharField(required=False, max_length=40)
        variables = serializers.DictField(required=False, default=dict)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("version" in attrs) == ("label" in attrs):
                raise serializers.ValidationError("Give either 'version' or 'label'.")
            return attrs

    class OutputSerializer(serializers.Serializer):
        class RenderedMessageSerializer(serializers.Serializer):
            role = serializers.CharField()
            content = serializers.CharField()

        prompt = serializers.CharField()
        team = serializers.CharField()
        version = serializers.IntegerField()
        label = serializers.CharField(allow_null=True)
        model = serializers.CharField()
        parameters = serializers.DictField()
        messages = RenderedMessageSerializer(many=True)

    @extend_schema(
        operation_id="prompts_render",
        parameters=[TEAM_PARAM],
        request=InputSerializer,
        responses={200: OutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request, name: str) -> Response:
        data = validated(self.InputSerializer, request.data)
        prompt = _prompt_for(request, name)
        if "label" in data:
            version = prompt_version_by_label(prompt=prompt, label=data["label"])
        else:
            version = prompt_version_by_number(prompt=prompt, number=data["version"])
        messages = prompt_render(version=version, variables=data["variables"])
        rendered = {
            "prompt": prompt.name,
            "team": prompt.team.slug,
            "version": version.number,
            "label": data.get("label"),
            "model": version.model,
            "parameters": version.parameters,
            "messages": messages,
        }
        return Response(self.OutputSerializer(rendered).data)
