"""The content security policy header on the console's pages, and templates written for it (the browser
tests prove the policy breaks nothing: tests/e2e/conftest.py fails any of them on a violation)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


EXPECTED = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'report-sample'"],
    "style-src": ["'self'", "'report-sample'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}


def test_the_sign_in_page_has_the_policy(client):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    assert policy(response) == EXPECTED  # nothing else: no 'unsafe-inline', no nonce, no other origin


@pytest.mark.parametrize(
    "url", ["/reviews/", "/prompts/", "/costs/", "/audit/", "/logs/", "/accounts/tokens/", "/api/docs/"]
)
def test_signed_in_pages_have_the_policy(world, client_as, url):
    response = client_as(world.gov).get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert policy(response) == EXPECTED


def test_error_pages_have_the_policy(world, client_as):
    response = client_as(world.eng).get("/prompts/support/no-such-prompt/")
    assert response.status_code == 404
    assert policy(response) == EXPECTED


def test_form_action_takes_extra_origins_from_the_environment():
    """CSP_FORM_ACTION_EXTRA adds origins a form may post to (an identity provider's sign-in)."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action']))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "console.settings.test",
        "CSP_FORM_ACTION_EXTRA": "https://accounts.google.com,https://login.example.com",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == ["'self'", "https://accounts.google.com", "https://login.example.com"]


INLINE = {
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "event handler": re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I),
    "style attribute": re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I),
    "<style> element": re.compile(r"<style[\s>]", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def test_no_template_has_inline_script_style_or_handlers():
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"\{#.*?#\}", "", text)  # comments may name what they avoid
        for what, pattern in INLINE.items():
            for match in pattern.finditer(text):
                found.append(f"{path.relative_to(ROOT)}: {what}: {match.group(0)[:60]}")
    assert not found, "\n".join(found)


def test_plotly_styles_match_the_vendored_bundle():
    """Plotly's styles are files (it would inject them inline, which the policy refuses): generated
    from the vendored bundle, so an upgraded bundle needs them generated again."""
    result = subprocess.run(
        [sys.executable, "scripts/plotly_css.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
