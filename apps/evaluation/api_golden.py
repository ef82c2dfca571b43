"""API v1 for golden sets: list and create, a set with its latest version's cases, new versions (the full
list of cases, or a JSONL / CSV import), and the export of a version.

Sets of a team the caller cannot read answer 404; a caller who reads but does not write answers 403.
Scopes: `evaluations:read` to read, `evaluations:write` to write.
"""

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import CATALOG_READERS, Scope
from apps.accounts.selectors import active_token, team_get_by_slug
from apps.catalog.models import Prompt
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
from apps.common.exceptions import NotFound, Unprocessable
from apps.common.permissions import HasScope
from apps.evaluation.golden_sets import (
    FORMATS,
    cases_export,
    golden_cases,
    golden_set_create,
    golden_set_get,
    golden_set_import,
    golden_set_latest_version,
    golden_set_version_create,
    golden_set_version_get,
    golden_sets_for,
    golden_sets_with_latest,
)
from apps.evaluation.models import CaseSource, GoldenSet, GoldenSetVersion


class GoldenCaseSerializer(StrictSerializer):
    """One case. Only the expectations given are checked; at least one is required."""

    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    variables = serializers.DictField(required=False)
    reference = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    exact = serializers.BooleanField(required=False)
    must_contain = serializers.ListField(child=serializers.CharField(trim_whitespace=False), required=False)
    must_not_contain = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False), required=False
    )
    regex = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    expect_json = serializers.BooleanField(required=False)
    json_schema = serializers.JSONField(required=False, allow_null=True)
    max_latency_ms = serializers.IntegerField(required=False, allow_null=True)
    max_tokens = serializers.IntegerField(required=False, allow_null=True)
    rubric = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    case_sensitive = serializers.BooleanField(required=False)
    source = NamedChoiceField(choices=CaseSource.choices, enum_name="GoldenCaseSource", required=False)
    source_ref = serializers.CharField(required=False, allow_blank=True, max_length=200)


class GoldenCaseOutputSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField()
    variables = serializers.DictField()
    reference = serializers.CharField()
    exact = serializers.BooleanField()
    must_contain = serializers.ListField(child=serializers.CharField())
    must_not_contain = serializers.ListField(child=serializers.CharField())
    regex = serializers.CharField()
    expect_json = serializers.BooleanField()
    json_schema = serializers.JSONField(allow_null=True)
    max_latency_ms = serializers.IntegerField(allow_null=True)
    max_tokens = serializers.IntegerField(allow_null=True)
    rubric = serializers.CharField()
    case_sensitive = serializers.BooleanField()
    source = NamedChoiceField(choices=CaseSource.choices, enum_name="GoldenCaseSource")
    source_ref = serializers.CharField()


class GoldenSetVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    message = serializers.CharField()
    content_hash = serializers.CharField()
    case_count = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()


class GoldenSetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    description = serializers.CharField()
    prompt = serializers.CharField(
        source="prompt.name", allow_null=True, help_text="Null: shared in the team."
    )
    latest_version = GoldenSetVersionOutputSerializer(allow_null=True, source="latest")
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()


class GoldenSetDetailOutputSerializer(GoldenSetOutputSerializer):
    cases = GoldenCaseOutputSerializer(many=True, source="latest_cases")


def _with_latest(golden_set: GoldenSet, cases: bool = False) -> GoldenSet:
    golden_set.latest = golden_set_latest_version(golden_set=golden_set)
    if cases:
        golden_set.latest_cases = golden_cases(version=golden_set.latest) if golden_set.latest else []
    return golden_set


class GoldenSetListCreateApi(ApiView):
    """GET lists the golden sets of the caller's teams; POST creates one (in the token's team by default),
    with its version 1 holding the cases given."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.EVALUATIONS_READ, "POST": Scope.EVALUATIONS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63)
        prompt = serializers.CharField(required=False, allow_blank=True, max_length=100)

    class InputSerializer(StrictSerializer):
        team = serializers.CharField(
            required=False, max_length=63, help_text="Team slug; defaults to the token's."
        )
        name = serializers.CharField(max_length=100)
        description = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)
        prompt = serializers.CharField(
            required=False,
            allow_null=True,
            default=None,
            max_length=100,
            help_text="Omit to share in the team.",
        )
        cases = GoldenCaseSerializer(many=True, required=False, default=list)
        message = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)

    @extend_schema(
        operation_id="golden_sets_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedGoldenSetList", GoldenSetOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        slug = filters.get("team") or ""
        team = team_get_by_slug(user=request.user, slug=slug, roles=CATALOG_READERS) if slug else None
        queryset = golden_sets_for(user=request.user, team_id=team.pk if team else None)
        if slug and team is None:
            queryset = queryset.none()
        if filters.get("prompt"):
            queryset = queryset.filter(prompt__name=filters["prompt"])
        return paginated_response(
            request=request, view=self, queryset=queryset, serializer_class=_LatestSerializer
        )

    @extend_schema(
        operation_id="golden_sets_create",
        request=InputSerializer,
        responses={201: GoldenSetDetailOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        slug = data.get("team")
        token = active_token(request.user)
        if slug:
            team = team_get_by_slug(user=request.user, slug=slug)
            if team is None:
                raise NotFound(f"No team {slug!r}.", code="team_not_found")
        elif token is not None:
            team = token.team
        else:
            raise serializers.ValidationError({"team": ["Name the team (its slug)."]})
        prompt = None
        if data["prompt"]:
            prompt = Prompt.objects.filter(team=team, name=data["prompt"]).first()
            if prompt is None:
                raise NotFound(f"No prompt named {data['prompt']!r} in {team.slug}.", code="prompt_not_found")
        golden_set = golden_set_create(
            actor=request.user,
            team=team,
            name=data["name"],
            description=data["description"],
            prompt=prompt,
            cases=[dict(c) for c in data["cases"]],
            message=data["message"],
        )
        return Response(
            GoldenSetDetailOutputSerializer(_with_latest(golden_set, cases=True)).data, status=201
        )


class _PageSerializer(serializers.ListSerializer):
    """A page of sets with their latest versions fetched at once."""

    child = GoldenSetOutputSerializer()

    def to_representation(self, data: Any) -> Any:
        return super().to_representation(golden_sets_with_latest(data))


class _LatestSerializer(GoldenSetOutputSerializer):
    class Meta:
        list_serializer_class = _PageSerializer


class GoldenSetDetailApi(ApiView):
    """A golden set with its latest version and that version's cases."""

    permission_classes = [HasScope]
    required_scope = Scope.EVALUATIONS_READ

    @extend_schema(
        operation_id="golden_sets_retrieve",
        responses={200: GoldenSetDetailOutputSerializer} | errors(401, 403, 404),
    )
    def get(self, request: Request, golden_set_id: int) -> Response:
        golden_set = golden_set_get(user=request.user, golden_set_id=golden_set_id)
        return Response(GoldenSetDetailOutputSerializer(_with_latest(golden_set, cases=True)).data)


RAW_IMPORT_TYPES = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
}


class GoldenSetVersionCreateApi(ApiView):
    """A new version: either `cases` (the full list) or an import: `content` (a JSONL or CSV file's text)
    with `format`, or the file itself as the body (`Content-Type: text/csv` or `application/x-ndjson`,
    with `?append=true&message=…`); `append` keeps the latest cases before the imported ones.
    All or nothing."""

    permission_classes = [HasScope]
    required_scope = Scope.EVALUATIONS_WRITE

    class InputSerializer(StrictSerializer):
        cases = GoldenCaseSerializer(many=True, required=False)
        content = serializers.CharField(
            required=False, trim_whitespace=False, help_text="The text of a JSONL or CSV file to import."
        )
        format = NamedChoiceField(choices=FORMATS, enum_name="GoldenSetFormat", required=False)
        append = serializers.BooleanField(required=False, default=False)
        message = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
        base_version = serializers.IntegerField(
            required=False, min_value=1, help_text="The version edited: 409 if it is no longer the latest."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("cases" in attrs) == ("content" in attrs):
                raise serializers.ValidationError("Give either 'cases' or 'content' (with 'format').")
            if "content" in attrs and "format" not in attrs:
                raise serializers.ValidationError({"format": ["Say the format: jsonl or csv."]})
            return attrs

    class RawQuerySerializer(StrictSerializer):
        append = serializers.BooleanField(required=False, default=False)
        message = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)

    @extend_schema(
        operation_id="golden_set_versions_create",
        request={
            "application/json": InputSerializer,
            "text/csv": OpenApiTypes.STR,
            "application/x-ndjson": OpenApiTypes.STR,
        },
        responses={201: GoldenSetDetailOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request, golden_set_id: int) -> Response:
        raw_format = RAW_IMPORT_TYPES.get(request.content_type.split(";")[0].strip().lower())
        if raw_format is not None:
            query = validated(self.RawQuerySerializer, request.query_params)
            golden_set = golden_set_get(user=request.user, golden_set_id=golden_set_id)
            golden_set_import(
                actor=request.user,
                golden_set=golden_set,
                content=request.body,
                fmt=raw_format,
                append=query["append"],
                message=query["message"],
            )
            return Response(
                GoldenSetDetailOutputSerializer(_with_latest(golden_set, cases=True)).data, status=201
            )
        data = validated(self.InputSerializer, request.data)
        golden_set = golden_set_get(user=request.user, golden_set_id=golden_set_id)
        if "content" in data:
            golden_set_import(
                actor=request.user,
                golden_set=golden_set,
                content=data["content"],
                fmt=data["format"],
                append=data["append"],
                message=data["message"],
            )
        else:
            golden_set_version_create(
                actor=request.user,
                golden_set=golden_set,
                cases=[dict(c) for c in data["cases"]],
                message=data["message"],
                base_version=data.get("base_version"),
            )
        return Response(
            GoldenSetDetailOutputSerializer(_with_latest(golden_set, cases=True)).data, status=201
        )


def export_response(version: GoldenSetVersion, fmt: str) -> HttpResponse:
    content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    body = cases_export(golden_cases(version=version), fmt)
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    filename = f"{version.golden_set.name}-v{version.number}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["ETag"] = f'"{version.content_hash}"'
    return response


class _FormatIsOurs(DefaultContentNegotiation):
    """`?format=` names the export's format here, not a DRF renderer: errors stay JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):  # type: ignore[no-untyped-def]
        return renderers[0], renderers[0].media_type


class GoldenSetExportApi(ApiView):
    """A version's cases as JSONL or CSV (the latest version unless `version` is given)."""

    permission_classes = [HasScope]
    content_negotiation_class = _FormatIsOurs
    required_scope = Scope.EVALUATIONS_READ

    class QuerySerializer(StrictSerializer):
        format = NamedChoiceField(
            choices=FORMATS, enum_name="GoldenSetFormat", required=False, default="jsonl"
        )
        version = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(
        operation_id="golden_sets_export",
        parameters=[QuerySerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="One case per line."
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="A header, then one case per row."
            ),
        }
        | errors(400, 401, 403, 404),
    )
    def get(self, request: Request, golden_set_id: int) -> HttpResponse:
        query = validated(self.QuerySerializer, request.query_params)
        golden_set = golden_set_get(user=request.user, golden_set_id=golden_set_id)
        version: GoldenSetVersion | None
        if "version" in query:
            version = golden_set_version_get(golden_set=golden_set, number=query["version"])
        else:
            version = golden_set_latest_version(golden_set=golden_set)
        if version is None:
            raise Unprocessable("This golden set has no version yet.", code="no_version")
        return export_response(version, query["format"])
