"""Reads of the registry, always narrowed to the teams where the user holds a registry role."""

from django.db.models import Count, Prefetch, Q, QuerySet

from apps.accounts.models import User
from apps.accounts.roles import REGISTRY_READERS
from apps.accounts.selectors import user_team_ids
from apps.common.exceptions import NotFound
from apps.registry.models import Adapter, AdapterAlias, AdapterVersion, AliasMove, FoundationModel


def base_model_list(
    *, user: User, team_id: int | None = None, provider: str = "", search: str = ""
) -> QuerySet[FoundationModel]:
    qs = FoundationModel.objects.filter(team_id__in=user_team_ids(user, REGISTRY_READERS))
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if provider:
        qs = qs.filter(provider=provider)
    if search:
        qs = qs.filter(Q(model_id__icontains=search) | Q(display_name__icontains=search))
    return (
        qs.select_related("team", "created_by")
        .annotate(adapter_count=Count("adapters"))
        .order_by("team__slug", "provider", "model_id")
    )


def base_model_get(*, user: User, model_id: int) -> FoundationModel:
    model = base_model_list(user=user).filter(pk=model_id).first()
    if model is None:
        raise NotFound(f"No base model {model_id}.")
    return model


def adapter_list(
    *, user: User, team_id: int | None = None, base_model_id: int | None = None, search: str = ""
) -> QuerySet[Adapter]:
    qs = Adapter.objects.filter(team_id__in=user_team_ids(user, REGISTRY_READERS))
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if base_model_id is not None:
        qs = qs.filter(base_model_id=base_model_id)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return (
        qs.select_related("team", "base_model", "created_by")
        .prefetch_related(Prefetch("aliases", queryset=AdapterAlias.objects.select_related("version")))
        .annotate(version_count=Count("versions"))
        .order_by("team__slug", "name")
    )


def adapter_get(*, user: User, adapter_id: int) -> Adapter:
    adapter = adapter_list(user=user).filter(pk=adapter_id).first()
    if adapter is None:
        raise NotFound(f"No adapter {adapter_id}.")
    return adapter


def adapter_versions(*, adapter: Adapter) -> QuerySet[AdapterVersion]:
    return (
        AdapterVersion.objects.filter(adapter=adapter)
        .select_related("registered_by", "adapter__team")
        .prefetch_related("aliases")
        .order_by("-number")
    )


def adapter_version_get(*, user: User, adapter_id: int, number: int) -> AdapterVersion:
    adapter = adapter_get(user=user, adapter_id=adapter_id)
    version = adapter_versions(adapter=adapter).filter(number=number).first()
    if version is None:
        raise NotFound(f"{adapter} has no version {number}.")
    return version


def alias_moves(*, adapter: Adapter, limit: int = 50) -> list[AliasMove]:
    return list(
        AliasMove.objects.filter(adapter=adapter)
        .select_related("version", "previous_version", "requested_by")
        .order_by("-created_at")[:limit]
    )
