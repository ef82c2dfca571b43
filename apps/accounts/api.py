"""API v1 for API tokens. Browser sessions only: a token can neither mint, list nor revoke tokens.

The plaintext of a token is returned once, by the create call; the hash is never returned.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import Scope
from apps.accounts.selectors import team_get_by_slug, token_list
from apps.accounts.services import token_create, token_revoke
from apps.common.api import (
    PAGINATION_PARAMETERS,
    ApiView,
    FilterSerializer,
    StrictSerializer,
    errors,
    paginated_response,
    paginated_schema,
    validated,
)
from apps.common.exceptions import NotFound
from apps.common.permissions import HasScope, SessionOnly


class TokenOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    display = serializers.CharField(help_text="The public prefix, e.g. `atl_1a2b3c4d5e6f_…`.")
    user = serializers.CharField(source="user.username")
    team = serializers.CharField(source="team.slug")
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField(source="is_active")
    created_at = serializers.DateTimeField()


class TokenListCreateApi(ApiView):
    """GET: your own tokens and those of the teams you administer. POST: a new token for yourself in one
    of your teams; the response carries the plaintext `token`, shown this once."""

    permission_classes = [SessionOnly, HasScope]
    required_scope = Scope.ALL

    class FilterSerializer(FilterSerializer):
        pass

    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=100)
        team = serializers.CharField(max_length=63, help_text="Team slug.")
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False
        )
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    class OutputSerializer(TokenOutputSerializer):
        token = serializers.CharField(help_text="The token itself. Shown once: store it now.")

    @extend_schema(
        operation_id="tokens_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated_schema("PaginatedTokenList", TokenOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        validated(self.FilterSerializer, request.query_params)
        return paginated_response(
            request=request,
            view=self,
            queryset=token_list(user=request.user),
            serializer_class=TokenOutputSerializer,
        )

    @extend_schema(
        operation_id="tokens_create",
        request=InputSerializer,
        responses={201: OutputSerializer} | errors(400, 401, 403, 404, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        team = team_get_by_slug(user=request.user, slug=data["team"])
        if team is None:
            raise NotFound(f"No team {data['team']!r}.", code="team_not_found")
        token, plaintext = token_create(
            actor=request.user,
            user=request.user,
            team=team,
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data["expires_at"],
        )
        token.token = plaintext
        return Response(self.OutputSerializer(token).data, status=201)


class TokenRevokeApi(ApiView):
    """Revoke a token (yours, or one of a team you administer). It stops working at once."""

    permission_classes = [SessionOnly, HasScope]
    required_scope = Scope.ALL

    class InputSerializer(StrictSerializer):
        pass

    @extend_schema(
        operation_id="tokens_revoke",
        request=None,
        responses={200: TokenOutputSerializer} | errors(400, 401, 403, 404, 409, 413),
    )
    def delete(self, request: Request, token_id: int) -> Response:
        validated(self.InputSerializer, request.data)
        token = token_revoke(actor=request.user, token_id=token_id)
        return Response(TokenOutputSerializer(token).data)
