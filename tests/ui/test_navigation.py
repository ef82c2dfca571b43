from django.test import RequestFactory
from django.urls import reverse

from apps.accounts.selectors import user_forget_roles
from apps.common.context_processors import navigation


def nav_keys(client):
    response = client.get(reverse("accounts:tokens"))
    return [item["key"] for item in response.context["nav_items"]]


def test_navigation_by_role(world, catalog, client_as):
    assert nav_keys(client_as(world.gov)) == [
        "catalog",
        "golden",
        "workflows",
        "logs",
        "costs",
        "registry",
        "feedback",
        "audit",
        "accounts",
    ]
    assert nav_keys(client_as(world.admin)) == [
        "catalog",
        "golden",
        "logs",
        "costs",
        "registry",
        "feedback",
        "audit",
        "accounts",
    ]
    assert nav_keys(client_as(world.eng)) == [
        "catalog",
        "golden",
        "logs",
        "costs",
        "registry",
        "feedback",
        "accounts",
    ]
    assert nav_keys(client_as(world.ann1)) == ["feedback", "accounts"]
    assert nav_keys(client_as(world.owner)) == ["catalog", "golden", "logs", "costs", "registry", "accounts"]
    world.admin.is_staff = True
    world.admin.save()
    assert nav_keys(client_as(world.admin))[-1] == "admin"


def test_review_badge_counts_the_queue(world, catalog, client_as):
    body = client_as(world.gov).get(reverse("accounts:tokens")).content.decode()
    assert '<span class="nav-count"><span aria-hidden="true">1</span>' in body


def test_navigation_is_cheap(world, catalog, django_assert_num_queries):
    request = RequestFactory().get("/")
    request.user = world.gov
    request.resolver_match = None
    user_forget_roles(world.gov)
    with django_assert_num_queries(2):  # the roles, the review count
        items = navigation(request)["nav_items"]
    assert next(item for item in items if item["key"] == "workflows")["badge"] == 1


def test_page_landmarks_and_skip_link(world, client_as):
    body = client_as(world.eng).get(reverse("catalog:list")).content.decode()
    assert 'href="#main"' in body and '<main id="main"' in body
    assert '<nav class="main-nav" aria-label="Main">' in body
    assert 'aria-current="page"' in body
    assert reverse("set_language") in body and 'value="es"' in body
