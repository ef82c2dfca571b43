#!/usr/bin/env python
"""Take the README's screenshots from a running demo console (`make run`), with Debian's Chromium.

.venv/bin/python scripts/screenshots.py --base http://127.0.0.1:8000 --out docs/screenshots
"""

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--password", default="demo")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)

        def session(username: str, language: str = "en"):
            context = browser.new_context(viewport={"width": 1280, "height": 820}, locale="en-US")
            page = context.new_page()
            page.goto(f"{args.base}/accounts/login/")
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(args.password)
            page.get_by_role("button", name="Sign in").click()
            if language == "es":
                page.get_by_role("button", name="Español").click()
            return page

        page = session("eng")
        page.goto(f"{args.base}/prompts/")
        page.screenshot(path=out / "catalog.png")
        page.goto(f"{args.base}/prompts/support/support-reply/")
        page.screenshot(path=out / "prompt.png")
        page.goto(f"{args.base}/prompts/support/support-reply/versions/new/")
        page.wait_for_selector("#preview [data-preview-sample]")
        for field in page.locator("#preview [data-preview-sample]").all():
            field.fill(
                {"sample_company": "Acme", "sample_tier": "gold"}.get(
                    field.get_attribute("name"), "Where is my order?"
                )
            )
        page.wait_for_timeout(800)
        page.screenshot(path=out / "editor.png")

        page = session("gov")
        page.goto(f"{args.base}/reviews/")
        page.get_by_role("link", name="support/support-reply v2").click()
        page.screenshot(path=out / "review.png", full_page=True)
        # The evaluation gate: v3's replay run failed, so its review page shows why and Approve is disabled.
        page.goto(f"{args.base}/reviews/")
        page.get_by_role("link", name="support/support-reply v3").click()
        page.screenshot(path=out / "gate.png", full_page=True)
        page.get_by_role("link", name="Run #", exact=False).first.click()
        page.screenshot(path=out / "run.png", full_page=True)
        page.goto(f"{args.base}/golden-sets/")
        page.get_by_role("link", name="support-reply-basics").first.click()
        page.screenshot(path=out / "golden-set.png", full_page=True)
        page.goto(f"{args.base}/audit/")
        page.screenshot(path=out / "audit.png")

        page.goto(f"{args.base}/logs/")
        page.screenshot(path=out / "logs.png")

        page = session("owner")
        page.goto(f"{args.base}/costs/")
        page.wait_for_timeout(1500)  # Plotly draws after load
        page.screenshot(path=out / "costs.png", full_page=False)

        page = session("gov", "es")
        page.goto(f"{args.base}/reviews/")
        page.screenshot(path=out / "reviews-es.png")

        # Models: a tuning request on the demo's tiny model, approved, trained by the local runner.
        page = session("eng")
        page.goto(f"{args.base}/registry/")
        page.screenshot(path=out / "registry.png")
        page.get_by_role("link", name="support/demo-tone").click()
        page.get_by_role("link", name="Request tuning").click()
        page.get_by_label("Training dataset").fill("deploy/trainer/examples/train.jsonl")
        page.get_by_label("Validation dataset").fill("deploy/trainer/examples/validation.jsonl")
        page.get_by_label("LoRA rank").fill("4")
        page.get_by_label("Estimated hours").fill("0.1")
        page.get_by_label("Justification").fill("Answers should sound like our support team.")
        page.get_by_role("button", name="Save and send for approval").click()
        request_url = page.url
        reviewer = session("gov")
        reviewer.goto(f"{args.base}/reviews/")
        reviewer.get_by_role("link", name="Tune support/demo-tone", exact=False).first.click()
        reviewer.screenshot(path=out / "tuning-review.png", full_page=True)
        reviewer.get_by_role("button", name="Approve").click()
        page.goto(request_url)
        page.locator("#tuning-job[data-status=succeeded]").wait_for(timeout=180_000)
        page.screenshot(path=out / "tuning.png", full_page=True)
        page.goto(f"{args.base}/deployments/")
        page.get_by_role("link", name="support-chat").first.click()
        page.screenshot(path=out / "endpoint.png")
        browser.close()
    print(f"screenshots in {out}/")


if __name__ == "__main__":
    main()
