import pytest

from tests.accounts.oidc_provider import FakeOidcProvider, oidc_settings_apply


@pytest.fixture
def provider():
    """A fresh fake OpenID Connect provider on its own port."""
    fake = FakeOidcProvider().start()
    yield fake
    fake.stop()


@pytest.fixture
def oidc(settings, provider) -> FakeOidcProvider:
    """OIDC on for this test only, with explicit endpoints pointing at the fake."""
    oidc_settings_apply(settings, provider)
    return provider
