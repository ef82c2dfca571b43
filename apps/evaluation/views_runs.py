"""Evaluation run pages: a run (its progress refreshing while it runs, summary with intervals, gate checks,
per-case results), the regression view against production, and starting a run from a prompt version."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.catalog.selectors import prompt_version_get
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.views import paginate, raise_for_http
from apps.evaluation.forms_runs import RunStartForm
from apps.evaluation.gates import run_gate_now
from apps.evaluation.models import EvaluationRun
from apps.evaluation.runs import (
    evaluation_run_get,
    evaluation_run_regression,
    evaluation_run_results,
    evaluation_run_start,
    user_can_start_runs,
)

REGRESSION_PAGE_SIZE = 50


def _run(request: HttpRequest, run_id: int) -> EvaluationRun:
    try:
        return evaluation_run_get(user=request.user, run_id=run_id)
    except NotFound:
        raise Http404 from None


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run(request, run_id)
    if request.htmx and not request.GET.get("page"):  # the progress panel refreshes itself while the run runs
        if run.is_finished:
            return HttpResponse(headers={"HX-Refresh": "true"})  # the whole page changes: reload it
        return render(request, "evaluation/partials/run_progress.html", {"run": run})
    only = request.GET.get("only", "")
    only = only if only in ("failed", "errors") else ""
    summary = run.summary or {}
    gate = run_gate_now(run)  # under today's policy, as an approval would judge it
    return render(
        request,
        "evaluation/run_detail.html",
        {
            "run": run,
            "summary": summary,
            "metric_rows": sorted((summary.get("metrics") or {}).items()),
            "gate": gate,
            "gate_checks": gate.get("checks", []),
            "results": paginate(request, evaluation_run_results(run=run, only=only), per_page=50),
            "case_filter": only,
        },
    )


@login_required
def run_regression(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run(request, run_id)
    rows = evaluation_run_regression(run=run)
    counts = {
        kind: sum(1 for row in rows if row.kind == kind) for kind in ("regressed", "improved", "changed")
    }
    page = paginate(request, rows, per_page=REGRESSION_PAGE_SIZE)  # only this page's outputs are diffed
    return render(
        request, "evaluation/run_regression.html", {"run": run, "rows": page, "page": page, "counts": counts}
    )


@login_required
@require_POST
def run_start(request: HttpRequest, version_id: int) -> HttpResponse:
    try:
        version = prompt_version_get(user=request.user, version_id=version_id)
    except NotFound:
        raise Http404 from None
    prompt = version.prompt
    back = redirect("catalog:version", team=prompt.team.slug, name=prompt.name, number=version.number)
    if not user_can_start_runs(user=request.user, team_id=prompt.team_id):
        messages.error(
            request,
            _("Your roles in %(team)s do not allow starting evaluation runs.") % {"team": prompt.team.slug},
        )
        return back
    form = RunStartForm(request.POST, prompt=prompt)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return back
    try:
        run = evaluation_run_start(
            actor=request.user,
            prompt_version=version,
            golden_set=form.cleaned_data["golden_set"],
            provider=form.cleaned_data["provider"],
            model=form.cleaned_data["model"] or None,
        )
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
        return back
    messages.success(request, _("Evaluation run #%(id)s queued.") % {"id": run.pk})
    return redirect("evaluation_runs:run", run_id=run.pk)
