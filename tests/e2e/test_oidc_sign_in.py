"""Single sign-on in a real browser: a person clicks "Sign in with Fake IdP" on the sign-in page, goes
through the fake OpenID Connect provider (tests/accounts/oidc_provider.py), comes back signed in, and
sees their team's prompts and not another team's."""

import re

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import User
from tests.accounts.oidc_provider import FakeOidcProvider, oidc_settings_apply
from tests.factories import make_prompt, make_world


@pytest.fixture
def provider(settings):
    fake = FakeOidcProvider().start()
    fake.interactive = True  # a page with a "Continue as …" button, like a real provider's consent
    oidc_settings_apply(settings, fake)  # OIDC on for this test only
    yield fake
    fake.stop()


def test_sign_in_with_the_provider_lands_on_the_team_pages(
    page: Page, live_server, transactional_db, provider
):
    world = make_world()
    make_prompt(world.support, world.eng, name="welcome", description="Greets a new customer")
    make_prompt(world.finance, world.fin_eng, name="invoice")
    provider.user.update(sub="30003", email="lucia@example.com", groups=["atalaya-support-engineers"])
    base = live_server.url

    page.goto(f"{base}/prompts/")  # not signed in: sent to the sign-in page, which remembers where to
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    expect(page.get_by_label("Password")).to_be_visible()  # passwords stay
    page.get_by_role("link", name="Sign in with Fake IdP").click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(provider.issuer)}/authorize\?"))
    page.get_by_role("button", name="Continue as lucia@example.com").click()

    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page).to_have_url(f"{base}/prompts/")
    expect(page.locator(".header-user")).to_contain_text("lucia@example.com")
    main = page.locator("main")
    expect(main).to_contain_text("welcome")
    expect(main).not_to_contain_text("invoice")
    expect(page.get_by_role("link", name="Catalog")).to_be_visible()
    expect(page.get_by_role("link", name="Audit")).to_have_count(0)  # engineers do not read the audit

    user = User.objects.get(oidc_identities__subject="30003")
    assert {(m.team.slug, m.role, m.source) for m in user.memberships.all()} == {
        ("support", "engineer", "oidc")
    }
