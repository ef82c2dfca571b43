"""The whole first slice as people do it, in a real browser: an engineer writes and submits a prompt,
governance approves it and moves the production label, and an application resolves that version."""

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from apps.audit.services import audit_chain_verify
from tests.factories import make_token, make_world

PASSWORD = "demo-password"  # tests.factories.UserFactory


@pytest.fixture
def people(transactional_db):
    return make_world()


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_engineer_submits_governance_approves_application_resolves(page: Page, live_server, people, tmp_path):
    base = live_server.url

    # An engineer creates a prompt in their team and writes version 1.
    sign_in(page, base, "eng")
    page.goto(f"{base}/prompts/new/")
    page.get_by_label("Name", exact=True).fill("welcome")
    page.get_by_label("Description").fill("Greets a new customer")
    page.get_by_label("Tags").fill("support, onboarding")
    page.get_by_role("button", name="Create prompt").click()
    # Creating a prompt leads straight to writing its first version.
    expect(page).to_have_url(re.compile(r"/prompts/support/welcome/versions/new/$"))
    page.locator("#msg-0-role").select_option("system")
    page.locator("#msg-0-template").fill("You welcome customers of {{ company }}.")
    expect(page.locator("[data-message-row]:visible")).to_have_count(2)  # a system and a user message
    page.locator("#msg-1-role").select_option("user")
    page.locator("#msg-1-template").fill("Hello, I am {{ customer }}")
    page.get_by_role("combobox", name="Model").fill("gemini-2.5-flash")
    page.get_by_label("Parameters (JSON)").fill('{"temperature": 0.3}')
    page.get_by_label("Changelog message (optional)").fill("First version")

    # The live preview finds the variables and renders with sample values.
    preview = page.locator("#preview")
    expect(preview.get_by_label("company")).to_be_visible()
    preview.get_by_label("company").fill("Acme")
    preview.get_by_label("customer").fill("Ana")
    expect(preview).to_contain_text("You welcome customers of Acme.")
    expect(preview).to_contain_text("Hello, I am Ana")

    page.get_by_role("button", name="Save draft").last.click()
    expect(page.get_by_role("button", name="Submit for review")).to_be_visible()
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("main")).to_contain_text("In review")
    # The author is never offered the decision.
    expect(page.locator("button[name=decision][value=approve]")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "submitted.png"))
    sign_out(page)

    # Governance finds it in the review queue, reads the diff and approves with a comment.
    sign_in(page, base, "gov")
    page.goto(f"{base}/reviews/")
    page.get_by_role("link", name="support/welcome v1").click()
    expect(page.locator("main")).to_contain_text("You welcome customers of {{ company }}.")
    page.get_by_label("Comment").fill("Looks good")
    page.locator("button[name=decision][value=approve]").click()
    expect(page.locator("main")).to_contain_text("Approved")

    # Governance puts the approved version on the protected production label.
    page.goto(f"{base}/prompts/support/welcome/")
    page.get_by_label("Label", exact=True).fill("production")
    page.get_by_label("Version", exact=True).select_option("1")
    page.get_by_role("button", name="Move label").click()
    expect(page.locator("main")).to_contain_text("production")
    page.screenshot(path=str(tmp_path / "labelled.png"))

    # An application resolves the production label with a team token.
    token = make_token(people.eng, people.support, "prompts:read")
    response = httpx.get(
        f"{base}/api/v1/prompts/welcome/resolve",
        params={"label": "production"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1
    assert body["variables"] == ["company", "customer"]
    assert body["messages"][0] == {"role": "system", "template": "You welcome customers of {{ company }}."}
    assert body["parameters"] == {"temperature": 0.3}
    cached = httpx.get(
        f"{base}/api/v1/prompts/welcome/resolve",
        params={"label": "production"},
        headers={"Authorization": f"Bearer {token}", "If-None-Match": response.headers["ETag"]},
    )
    assert cached.status_code == 304

    # Every step is in the audit trail, and the chain verifies.
    page.goto(f"{base}/audit/")
    for text in ("Version submitted for review", "Version approved", "Label moved"):
        expect(page.locator("main")).to_contain_text(text)
    assert audit_chain_verify().ok


def test_spanish_interface(page: Page, live_server, people):
    sign_in(page, live_server.url, "eng")
    page.get_by_role("button", name="Español").click()
    expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()
    expect(page.locator("nav")).to_contain_text("Catálogo")
