"""Browser tests: Playwright driving Debian's Chromium, headless, against Django's live server.

`playwright install` cannot download browsers here, so the launch points at /usr/bin/chromium
(installed by .ci/run). Under CI=true a missing browser is a failure, never a skip.
"""

import os
import shutil

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

CHROMIUM = os.environ.get("ATALAYA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium` (.ci/run does).")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}, "locale": "en-US"}


# Content security policy: every browser test also proves the policy breaks nothing. The page reports
# each violation (the `securitypolicyviolation` event, from a script Playwright injects before the
# page's own, which CSP does not govern) as a console error, and Chromium logs its own "Refused to …"
# error; either one fails the test.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || event.documentURI}:${event.lineNumber}:${event.columnNumber} ${event.sample}`);
});
"""


@pytest.fixture
def csp_violations(context) -> list[str]:
    """The CSP violations seen by any page of the test's browser context (cleared by a test that
    expects some)."""
    violations: list[str] = []

    def on_console(message) -> None:
        text = message.text
        if message.type == "error" and ("CSP violation" in text or "Content Security Policy" in text):
            violations.append(f"{message.page.url if message.page else ''}: {text}")

    context.add_init_script(_CSP_LISTENER)
    context.on("console", on_console)
    return violations


@pytest.fixture(autouse=True)
def _fail_on_csp_violations(request):
    if "context" not in request.fixturenames and "page" not in request.fixturenames:
        yield
        return
    violations = request.getfixturevalue("csp_violations")
    yield
    if violations:
        pytest.fail("Content security policy violations:\n" + "\n".join(violations), pytrace=False)
