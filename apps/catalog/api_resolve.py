"""GET /api/v1/prompts/{name}/resolve?label=production — the hot path applications call.

The payload is cached per (team, name, label) and invalidated when the label moves; the
content hash is the ETag, so a client that already holds the version gets a 304.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.selectors import prompt_resolve
from apps.common.permissions import HasScope


def _etag_matches(header: str, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or etag in {part.strip().removeprefix("W/") for part in header.split(",")}


class PromptResolveApi(APIView):
    permission_classes = [HasScope]
    required_scope = "prompts:read"

    @extend_schema(
        operation_id="prompt_resolve",
        parameters=[
            OpenApiParameter("label", str, description="Label to resolve (default: production)"),
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
        },
    )
    def get(self, request: Request, name: str) -> Response:
        token = getattr(request.user, "active_token", None)
        payload = prompt_resolve(
            user=request.user,
            name=name,
            label=request.query_params.get("label", "production"),
            team_id=token.team_id if token is not None else None,
            team_slug=request.query_params.get("team") or None,
        )
        headers = {"ETag": payload["etag"], "Cache-Control": "private, no-cache"}
        if _etag_matches(request.headers.get("If-None-Match", ""), payload["etag"]):
            return Response(status=304, headers=headers)
        return Response(payload, headers=headers)
