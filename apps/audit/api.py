"""API v1 for the audit trail: events with filters (newest first, by sequence) and the chain check."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.roles import AUDIT_READERS, Scope
from apps.accounts.selectors import team_get_by_slug
from apps.audit.selectors import audit_can_read, audit_event_list
from apps.audit.services import audit_chain_verify
from apps.common.api import (
    PAGINATION_PARAMETERS,
    ApiView,
    FilterSerializer,
    errors,
    paginated_response,
    paginated_schema,
    validated,
)
from apps.common.exceptions import PermissionDenied
from apps.common.pagination import CursorPagination
from apps.common.permissions import HasScope


class AuditCursorPagination(CursorPagination):
    """The chain's own order: newest first by sequence (unique, so cursors are exact)."""

    ordering = "-sequence"


def _require_audit_reader(user) -> None:
    if not audit_can_read(user=user):
        raise PermissionDenied("Only administrators and governance can read the audit trail.")


class AuditEventListApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.AUDIT_READ

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, max_length=63, help_text="Team slug.")
        action = serializers.CharField(
            required=False, max_length=80, help_text="An action, or a prefix ending in '.' (`catalog.`)."
        )
        actor = serializers.CharField(required=False, max_length=150, help_text="Username.")
        target_type = serializers.CharField(required=False, max_length=80, help_text="`catalog.prompt`…")
        target_id = serializers.CharField(required=False, max_length=64)
        since = serializers.DateTimeField(required=False, help_text="Events at or after this time.")
        until = serializers.DateTimeField(required=False, help_text="Events before this time.")

    class OutputSerializer(serializers.Serializer):
        sequence = serializers.IntegerField()
        occurred_at = serializers.DateTimeField()
        actor = serializers.CharField(source="actor_username")
        actor_id = serializers.IntegerField(allow_null=True)
        team = serializers.CharField(source="team_slug")
        action = serializers.CharField()
        target_type = serializers.CharField()
        target_id = serializers.CharField()
        target_repr = serializers.CharField()
        changes = serializers.JSONField()
        context = serializers.JSONField()
        prev_hash = serializers.CharField()
        hash = serializers.CharField()

    @extend_schema(
        operation_id="audit_events_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedAuditEventList", OutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        _require_audit_reader(request.user)
        slug = filters.pop("team", "")
        team = team_get_by_slug(user=request.user, slug=slug, roles=AUDIT_READERS) if slug else None
        queryset = audit_event_list(user=request.user, team_id=team.pk if team else None, **filters)
        if slug and team is None:
            queryset = queryset.none()
        return paginated_response(
            request=request,
            view=self,
            queryset=queryset,
            serializer_class=self.OutputSerializer,
            pagination_class=AuditCursorPagination,
        )


class AuditVerifyApi(ApiView):
    """Walk the whole hash chain; `first_broken_sequence` names the first event that does not hold."""

    permission_classes = [HasScope]
    required_scope = Scope.AUDIT_READ

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        events_checked = serializers.IntegerField()
        first_broken_sequence = serializers.IntegerField(allow_null=True)
        reason = serializers.CharField()

    @extend_schema(operation_id="audit_verify", responses={200: OutputSerializer} | errors(401, 403))
    def get(self, request: Request) -> Response:
        _require_audit_reader(request.user)
        return Response(self.OutputSerializer(audit_chain_verify()).data)
