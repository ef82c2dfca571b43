"""GET /api/v1/prompts/{name}/resolve?label=production — the hot path applications call.

The content hash is the ETag, so a client that already holds the version gets a 304.

With a team token (what applications use) the answer comes from two short-lived, per-process
snapshots, and every request still checks the token (revoked, expired, inactive user), its scope
and the user's role in the token's team:
- the token row with its user and roles (apps.accounts.authentication.CachedBearerTokenAuthentication);
- the rendered answer per (team, name, label), at most RESOLVE_CACHE_SECONDS old.
A label move, a prompt or team change, or a token, user or membership change drops the snapshots at
once in the process that made it (signals, again on commit) and within those few seconds everywhere
else. So a request served from memory touches no database, and a moved `production` label is seen by
every server process within seconds, whatever the cache backend (the embedded default's cache lives
in each process). A browser session goes through the selector, as every other read does.

The common case (a GET with a good token, the scope, a role in the team, a prompt and label that
exist, JSON accepted) is answered in `dispatch` before DRF wraps the request: the same checks in the
same order (the rate limit too: a token over it gets its 429 here), the same body and headers. Anything else (no token, a refusal, a missing prompt, another
Accept) goes through DRF as usual, which checks again (with an uncached token lookup) and answers
in the API's error format.

bench/resolve.py measures this endpoint beside the MLflow prompt registry.
"""

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import CachedBearerTokenAuthentication
from apps.accounts.models import Team
from apps.accounts.roles import CATALOG_READERS
from apps.accounts.selectors import user_has_role
from apps.catalog.models import Prompt, PromptLabel
from apps.catalog.selectors import prompt_get, prompt_resolve, prompt_version_by_label, resolve_payload
from apps.common.api import errors
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.permissions import HasScope, view_scope
from apps.common.ratelimit import api_rate_check, rate_limited_error, rate_limited_response
from apps.costs.selectors import budget_check_hard_limits

RESOLVE_CACHE_SECONDS = float(getattr(settings, "CATALOG_RESOLVE_SNAPSHOT_SECONDS", 2.0))
_RESOLVED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class _Resolved:
    expires: float
    etag: str
    body: bytes  # the JSON that DRF's JSONRenderer gives for the payload, rendered once


_resolved: dict[tuple[int, str, str], _Resolved] = {}
_resolved_lock = threading.Lock()


def resolve_snapshots_clear(**_kwargs) -> None:
    with _resolved_lock:
        _resolved.clear()


def _catalog_changed(**_kwargs) -> None:
    resolve_snapshots_clear()
    transaction.on_commit(resolve_snapshots_clear)  # a request between the save and the commit may refill it


for _model in (PromptLabel, Prompt, Team):
    post_save.connect(_catalog_changed, sender=_model, dispatch_uid=f"resolve-save-{_model.__name__}")
    post_delete.connect(_catalog_changed, sender=_model, dispatch_uid=f"resolve-delete-{_model.__name__}")


def _resolve_for_token(user, team_id: int, name: str, label: str) -> _Resolved:
    # The permission check runs on every request, cached answer or not (the roles come with the token).
    if not user_has_role(user, team_id, CATALOG_READERS):
        raise NotFound(f"No prompt named {name!r}.")
    key = (team_id, name, label)
    now = time.monotonic()
    hit = _resolved.get(key)
    if hit is not None and hit.expires > now:
        return hit
    prompt = prompt_get(user=user, name=name)  # a token sees its own team only
    version = prompt_version_by_label(prompt=prompt, label=label)
    version.prompt = prompt
    payload = resolve_payload(version, label)
    fresh = _Resolved(now + RESOLVE_CACHE_SECONDS, payload["etag"], JSONRenderer().render(payload))
    with _resolved_lock:
        if len(_resolved) >= _RESOLVED_MAX:
            _resolved.clear()
        _resolved[key] = fresh
    return fresh


# Accept headers for which DRF's negotiation picks the JSON renderer without a second thought.
_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})


def _etag_matches(header: str, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or etag in {part.strip().removeprefix("W/") for part in header.split(",")}


class PromptResolveApi(APIView):
    permission_classes = [HasScope]
    required_scope = "prompts:read"

    def dispatch(self, request, *args, **kwargs):
        fast = self._answer_from_memory(request, kwargs.get("name"))
        if fast is not None:
            return fast
        return super().dispatch(request, *args, **kwargs)

    def _answer_from_memory(self, request, name: str | None) -> HttpResponse | None:
        """DRF's authentication, permission and `get` for a token, on the plain Django request; None
        (and DRF takes over) for anything but a success."""
        if request.method != "GET" or name is None or "format" in request.GET:
            return None
        if request.META.get("HTTP_ACCEPT", "").strip() not in _PLAIN_ACCEPT:
            return None
        try:
            authenticated = CachedBearerTokenAuthentication().authenticate(request)
        except exceptions.APIException:
            return None
        if authenticated is None:
            return None
        user, token = authenticated
        scope = view_scope(self, "GET")
        if scope is not None and not token.allows(scope):
            return None
        # The rate limit, counted once for the request (DRF's throttle reuses this decision if the
        # request goes on to DRF); over it, the 429 is answered here without touching the database.
        limit = api_rate_check(request, user=user, token=token, method="GET")
        if limit is not None and not limit.allowed:
            self.headers = self.default_response_headers
            return self.finalize_response(
                request, rate_limited_response(rate_limited_error(limit, token=token))
            )
        try:
            resolved = _resolve_for_token(user, token.team_id, name, request.GET.get("label", "production"))
            budget_check_hard_limits(team_id=token.team_id, prompt=name, app=request.GET.get("app", ""))
        except ApplicationError:
            return None  # DRF answers it, in the API's error format
        request.user = user  # as DRF does for the underlying request
        self.headers = self.default_response_headers
        return self.finalize_response(
            request, self._answer(resolved, request.headers.get("If-None-Match", ""))
        )

    @staticmethod
    def _answer(resolved: _Resolved, if_none_match: str) -> HttpResponse:
        headers = {"ETag": resolved.etag, "Cache-Control": "private, no-cache"}
        if _etag_matches(if_none_match, resolved.etag):
            not_modified = HttpResponse(status=304, headers=headers)
            del not_modified["Content-Type"]  # as DRF does for an empty body
            return not_modified
        return HttpResponse(resolved.body, content_type="application/json", headers=headers)

    @extend_schema(
        operation_id="prompt_resolve",
        parameters=[
            OpenApiParameter("label", str, description="Label to resolve (default: production)"),
            OpenApiParameter("app", str, description="The calling app, so that an app's hard budget applies"),
            OpenApiParameter(
                "team", str, description="Team slug, when the name exists in several of your teams"
            ),
        ],
        responses={
            200: inline_serializer(
                "ResolvedPrompt",
                {
                    "name": serializers.CharField(),
                    "team": serializers.CharField(),
                    "label": serializers.CharField(),
                    "version": serializers.IntegerField(),
                    "messages": serializers.ListField(child=serializers.DictField()),
                    "variables": serializers.ListField(child=serializers.CharField()),
                    "model": serializers.CharField(),
                    "parameters": serializers.DictField(),
                    "content_hash": serializers.CharField(),
                    "etag": serializers.CharField(),
                },
            ),
            304: None,
        }
        | errors(401, 403, 404, 409, 429),
    )
    def get(self, request: Request, name: str) -> Response | HttpResponse:
        label = request.query_params.get("label", "production")
        if_none_match = request.headers.get("If-None-Match", "")
        token = getattr(request.user, "active_token", None)
        app = request.query_params.get("app", "")
        if token is not None:
            resolved = _resolve_for_token(request.user, token.team_id, name, label)
            budget_check_hard_limits(team_id=token.team_id, prompt=name, app=app)
            return self._answer(resolved, if_none_match)
        payload = prompt_resolve(
            user=request.user, name=name, label=label, team_slug=request.query_params.get("team") or None
        )
        budget_check_hard_limits(team_id=Team.objects.get(slug=payload["team"]).pk, prompt=name, app=app)
        headers = {"ETag": payload["etag"], "Cache-Control": "private, no-cache"}
        if _etag_matches(if_none_match, payload["etag"]):
            return Response(status=304, headers=headers)
        return Response(payload, headers=headers)
