"""API v1 for evaluation runs: start one on a prompt version (or an adapter version), its history, a run with
its summary, gate outcome and per-case results.

Starting answers 202 with the queued run: the worker carries it out, and `GET /api/v1/evaluations/{id}/`
shows its progress. Objects of a team the caller cannot read answer 404; a reader who may not start runs 403.
"""

from typing import Any

from django.core.paginator import Paginator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import Scope
from apps.catalog.models import Prompt
from apps.catalog.selectors import prompt_version_get
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
from apps.common.views import parse_id
from apps.evaluation.golden_sets import golden_sets_applicable
from apps.evaluation.models import EvaluationProvider, EvaluationRun, GoldenSet, RunStatus
from apps.evaluation.runs import (
    evaluation_run_get,
    evaluation_run_results,
    evaluation_run_start,
    evaluation_runs_for_adapter_version,
    evaluation_runs_for_version,
)
from apps.registry.selectors import adapter_version_get

RESULTS_PAGE_SIZE = 100


class EvaluationRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    prompt = serializers.CharField(source="prompt_version.prompt.name")
    prompt_version = serializers.IntegerField(
        source="prompt_version_id", help_text="The prompt version's id."
    )
    prompt_version_number = serializers.IntegerField(source="prompt_version.number")
    adapter_version = serializers.SerializerMethodField(help_text="`<adapter> v<n>` for an adapter run.")
    golden_set = serializers.CharField(source="golden_set_version.golden_set.name")
    golden_set_version = serializers.IntegerField(source="golden_set_version.number")
    subject_hash = serializers.CharField()
    counts_for_gate = serializers.BooleanField(
        help_text="False for a prompt run with a model or parameters of its own (or whose draft was edited since):"
        " kept and shown, but it never decides the version's gate."
    )
    provider = NamedChoiceField(choices=EvaluationProvider.choices, enum_name="EvaluationProvider")
    replay = serializers.BooleanField(source="is_replay", help_text="Answers replayed from recordings.")
    model = serializers.CharField()
    parameters = serializers.DictField()
    status = NamedChoiceField(choices=RunStatus.choices, enum_name="EvaluationRunStatus")
    cases_total = serializers.IntegerField()
    cases_done = serializers.IntegerField()
    summary = serializers.DictField(help_text="Aggregates with 95 % confidence intervals (empty until done).")
    passed = serializers.BooleanField(allow_null=True, help_text="The gate's outcome; null until decided.")
    gate = serializers.DictField(help_text="The gate checks under the team's policy thresholds.")
    baseline_run = serializers.IntegerField(source="baseline_run_id", allow_null=True)
    judge_prompt_version = serializers.IntegerField(source="judge_prompt_version_id", allow_null=True)
    error = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_adapter_version(self, run: EvaluationRun) -> str | None:
        version = run.adapter_version
        return f"{version.adapter.name} v{version.number}" if version else None


class CaseResultOutputSerializer(serializers.Serializer):
    case = serializers.IntegerField(source="case.position", help_text="The case's position in the set.")
    case_name = serializers.CharField(source="case.name")
    variables = serializers.DictField(source="case.variables")
    request_key = serializers.CharField()
    output = serializers.CharField()
    tokens_in = serializers.IntegerField(allow_null=True)
    tokens_out = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    cost = serializers.DecimalField(max_digits=14, decimal_places=8, allow_null=True, coerce_to_string=False)
    metrics = serializers.DictField()
    failures = serializers.ListField(child=serializers.CharField())
    passed = serializers.BooleanField()
    error = serializers.CharField()
    attempts = serializers.IntegerField()
    judge_score = serializers.FloatField(allow_null=True)
    judge_reason = serializers.CharField()


class StartInputSerializer(StrictSerializer):
    golden_set = serializers.CharField(
        required=False,
        max_length=100,
        help_text="The golden set's id or name (in the prompt's team); default: the prompt's own.",
    )
    provider = serializers.CharField(max_length=20, help_text="vertex, openai or replay.")
    model = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Default: the version's model. A run on another model never counts for the version's gate.",
    )
    parameters = serializers.DictField(
        required=False,
        help_text="Default: the version's parameters. A run with others never counts for the version's gate.",
    )


def _golden_set(prompt: Prompt, ref: str | None) -> GoldenSet | None:
    if not ref:
        return None
    sets = golden_sets_applicable(prompt=prompt)
    # An id in ASCII digits, else a name ("²" is a digit to str.isdigit, yet no number int() reads).
    number = parse_id(ref)
    found = sets.filter(pk=number).first() if number is not None else sets.filter(name=ref).first()
    if found is None:
        raise NotFound(f"No golden set {ref!r} for {prompt.name!r}.", code="golden_set_not_found")
    return found


def _start_schema(operation_id: str, request: Any) -> Any:
    return extend_schema(
        operation_id=operation_id,
        request=request,
        responses={202: EvaluationRunOutputSerializer} | errors(400, 401, 403, 404, 413, 422),
    )


class PromptVersionEvaluationsApi(ApiView):
    """GET: the version's runs, newest first. POST: start a run (202 with the queued run); when production
    holds another version, a baseline run of it is linked (reused, or queued too)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.EVALUATIONS_READ, "POST": Scope.EVALUATIONS_WRITE}

    @extend_schema(
        operation_id="prompt_version_evaluations_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated_schema("PaginatedEvaluationRunList", EvaluationRunOutputSerializer)}
        | errors(401, 403, 404),
    )
    def get(self, request: Request, version_id: int) -> Response:
        version = prompt_version_get(user=request.user, version_id=version_id)
        return paginated_response(
            request=request,
            view=self,
            queryset=evaluation_runs_for_version(user=request.user, version=version),
            serializer_class=EvaluationRunOutputSerializer,
        )

    @_start_schema("prompt_version_evaluations_create", StartInputSerializer)
    def post(self, request: Request, version_id: int) -> Response:
        data = validated(StartInputSerializer, request.data)
        version = prompt_version_get(user=request.user, version_id=version_id)
        run = evaluation_run_start(
            actor=request.user,
            prompt_version=version,
            golden_set=_golden_set(version.prompt, data.get("golden_set")),
            provider=data["provider"],
            model=data.get("model"),
            parameters=data.get("parameters"),
        )
        return Response(EvaluationRunOutputSerializer(run).data, status=202)


class AdapterStartInputSerializer(StartInputSerializer):
    prompt_version = serializers.IntegerField(
        min_value=1, help_text="The id of the prompt version that renders each case."
    )
    model = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Refused (422): an adapter run's model is always the served LoRA module's name "
        "(EVALUATION_ADAPTER_MODEL_NAME, default `<adapter>-v<n>`).",
    )
    parameters = serializers.DictField(
        required=False, help_text="Refused (422): the rendering prompt version's parameters are sent."
    )


class AdapterVersionEvaluationsApi(ApiView):
    """GET: the adapter version's runs. POST: start a run where the adapter version answers the cases that
    a prompt version renders; the version behind the adapter's production (or champion) alias is the
    baseline."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.EVALUATIONS_READ, "POST": Scope.EVALUATIONS_WRITE}

    @extend_schema(
        operation_id="adapter_version_evaluations_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated_schema("PaginatedAdapterEvaluationRunList", EvaluationRunOutputSerializer)}
        | errors(401, 403, 404),
    )
    def get(self, request: Request, adapter_id: int, number: int) -> Response:
        adapter_version = adapter_version_get(user=request.user, adapter_id=adapter_id, number=number)
        return paginated_response(
            request=request,
            view=self,
            queryset=evaluation_runs_for_adapter_version(user=request.user, adapter_version=adapter_version),
            serializer_class=EvaluationRunOutputSerializer,
        )

    @_start_schema("adapter_version_evaluations_create", AdapterStartInputSerializer)
    def post(self, request: Request, adapter_id: int, number: int) -> Response:
        data = validated(AdapterStartInputSerializer, request.data)
        adapter_version = adapter_version_get(user=request.user, adapter_id=adapter_id, number=number)
        version = prompt_version_get(user=request.user, version_id=data["prompt_version"])
        run = evaluation_run_start(
            actor=request.user,
            prompt_version=version,
            golden_set=_golden_set(version.prompt, data.get("golden_set")),
            provider=data["provider"],
            model=data.get("model"),
            parameters=data.get("parameters"),
            adapter_version=adapter_version,
        )
        return Response(EvaluationRunOutputSerializer(run).data, status=202)


class EvaluationRunDetailApi(ApiView):
    """A run: status, summary, gate outcome, and one page of its per-case results (`page`, 100 a page;
    `only=failed` or `only=errors` narrows them)."""

    permission_classes = [HasScope]
    required_scope = Scope.EVALUATIONS_READ

    class FilterSerializer(FilterSerializer):
        page = serializers.IntegerField(required=False, min_value=1, default=1)
        only = serializers.ChoiceField(choices=["failed", "errors"], required=False)

    @extend_schema(
        operation_id="evaluations_retrieve",
        parameters=[
            OpenApiParameter("page", OpenApiTypes.INT, description="Page of the per-case results."),
            OpenApiParameter("only", OpenApiTypes.STR, enum=["failed", "errors"]),
        ],
        responses={
            200: inline_serializer(
                "EvaluationRunDetail",
                {
                    "run": EvaluationRunOutputSerializer(),
                    "results": CaseResultOutputSerializer(many=True),
                    "page": serializers.IntegerField(),
                    "pages": serializers.IntegerField(),
                    "count": serializers.IntegerField(help_text="Results (as narrowed by `only`)."),
                },
            )
        }
        | errors(400, 401, 403, 404),
    )
    def get(self, request: Request, run_id: int) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        run = evaluation_run_get(user=request.user, run_id=run_id)
        paginator = Paginator(
            evaluation_run_results(run=run, only=filters.get("only", "")), RESULTS_PAGE_SIZE
        )
        page = paginator.get_page(filters["page"])
        return Response(
            {
                "run": EvaluationRunOutputSerializer(run).data,
                "results": CaseResultOutputSerializer(page.object_list, many=True).data,
                "page": page.number,
                "pages": paginator.num_pages,
                "count": paginator.count,
            }
        )
