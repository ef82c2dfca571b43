"""The content security policy in a real browser: it refuses what it should, the browser tests notice
(tests/e2e/conftest.py fails any test that meets a violation), and the Swagger UI page works under it."""

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_prompt_flow import sign_in
from tests.factories import make_world


@pytest.fixture
def people(transactional_db):
    return make_world()


def test_the_policy_refuses_inline_script_and_style_and_the_browser_tests_notice(
    page: Page, live_server, people, csp_violations
):
    sign_in(page, live_server.url, "eng")
    assert not csp_violations
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.head.appendChild(script);
          document.body.setAttribute("style", "background: red");
        }"""
    )
    assert page.evaluate("window.injected") is None
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"
    page.wait_for_timeout(200)
    directives = " ".join(csp_violations)
    assert "script-src" in directives and "style-src" in directives, csp_violations
    csp_violations.clear()  # expected here: the fixture would fail the test otherwise


def test_swagger_ui_works_under_the_policy(page: Page, live_server, people):
    sign_in(page, live_server.url, "eng")
    page.goto(f"{live_server.url}/api/docs/")
    # Swagger UI fetched the schema and drew the operations (its scripts and styles are files).
    expect(page.get_by_text("/api/v1/prompts/{name}/resolve").first).to_be_visible()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Atalaya API")
