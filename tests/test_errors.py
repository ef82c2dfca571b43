import pytest
from django.db import OperationalError
from django.test import Client, override_settings
from django.urls import path

from apps.accounts.models import Team
from console import urls as console_urls


def _boom(request):
    Team.objects.get(slug="does-not-exist")  # an unexpected error


urlpatterns = [path("api/v1/boom", _boom), path("boom", _boom)]
handler500 = console_urls.handler500  # the handler the project configures


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_unexpected_errors_answer_500_in_the_api_format_without_details():
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "server_error", "message": "Something went wrong on our side.", "details": {}}
    }
    page = client.get("/boom")
    assert page.status_code == 500
    assert "DoesNotExist" not in page.content.decode()


class _DatabaseDownInMiddleware:
    """A middleware whose own query fails (a view's failure is DatabaseUnavailableMiddleware's)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
def test_a_database_error_outside_any_view_answers_503_not_500(settings):
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}._DatabaseDownInMiddleware"]
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/boom")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"
    page = client.get("/boom", HTTP_ACCEPT_LANGUAGE="es")
    assert page.status_code == 503
    assert "No disponible por el momento" in page.content.decode()
