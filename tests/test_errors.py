import pytest
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
