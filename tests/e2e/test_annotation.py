"""Two annotators rate the same three logged answers in a real browser with the keyboard alone (number keys,
j/k between criteria, Enter to submit), and an engineer sees the agreement between them."""

import pytest
from playwright.sync_api import Page, expect

from apps.feedback.agreement import krippendorff_alpha
from apps.feedback.models import Annotation
from apps.feedback.services import annotation_queue_create, rating_schema_create
from tests.factories import make_world
from tests.feedback.conftest import event_spec, store_events

PASSWORD = "demo-password"  # tests.factories.UserFactory
SCHEMA = [
    {"name": "ok", "kind": "thumbs", "guidance": "Would you send it?"},
    {"name": "helpfulness", "kind": "scale", "min": 1, "max": 5},
]


@pytest.fixture
def queue(transactional_db):
    world = make_world()
    store_events(world.eng, world.support, [event_spec(f"r-{i}") for i in range(3)])
    schema = rating_schema_create(actor=world.gov, team=world.support, name="rubric", criteria=SCHEMA)
    queue = annotation_queue_create(
        actor=world.eng,
        team=world.support,
        name="weekly",
        schema=schema,
        size=3,
        overlap=2,
        assignees=[world.ann1, world.ann2],
    )
    return queue


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def rate_with_keys(page: Page, keys_per_item: list[list[str]]) -> None:
    for done, keys in enumerate(keys_per_item, start=1):
        expect(page.locator("[data-answer]")).to_contain_text("[EMAIL_ADDRESS]")
        expect(page.locator("body")).not_to_contain_text("ana.garcia@example.com")
        for key in keys:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        noun = "item" if done == 1 else "items"
        expect(page.locator("#annotator-progress")).to_contain_text(f"You rated {done} {noun}")
    expect(page.locator("#queue-done")).to_be_visible()


def test_two_annotators_rate_with_the_keyboard_and_the_agreement_is_shown(page: Page, live_server, queue):
    base = live_server.url
    annotate = f"{base}/feedback/queues/{queue.pk}/annotate/"

    sign_in(page, base, "ann1")
    expect(page).to_have_url(f"{base}/feedback/")  # annotators land on their queues
    page.goto(annotate)
    # thumbs up (1) moves on to helpfulness, then 4; the third item: k back to thumbs, 2 (down), then 3
    rate_with_keys(page, [["1", "4"], ["1", "4"], ["1", "k", "2", "3"]])
    sign_out(page)

    sign_in(page, base, "ann2")
    page.goto(annotate)
    # j moves to helpfulness without choosing a thumbs: then k back, 1, and the scale
    rate_with_keys(page, [["j", "k", "1", "4"], ["1", "5"], ["2", "3"]])
    sign_out(page)

    ratings = list(Annotation.objects.order_by("item__position", "annotator__username"))
    assert [(a.annotator.username, a.values) for a in ratings] == [
        ("ann1", {"ok": True, "helpfulness": 4}),
        ("ann2", {"ok": True, "helpfulness": 4}),
        ("ann1", {"ok": True, "helpfulness": 4}),
        ("ann2", {"ok": True, "helpfulness": 5}),
        ("ann1", {"ok": False, "helpfulness": 3}),
        ("ann2", {"ok": False, "helpfulness": 3}),
    ]
    assert all(a.seconds is not None and a.seconds >= 0 for a in ratings)

    sign_in(page, base, "eng")
    page.goto(f"{base}/feedback/queues/{queue.pk}/")
    agreement = page.locator("#agreement")
    expect(agreement).to_be_visible()
    helpfulness = krippendorff_alpha([[4, 4], [4, 5], [3, 3]], "interval")
    thumbs = krippendorff_alpha([[True, True], [True, True], [False, False]], "nominal")
    assert thumbs == 1.0
    expect(agreement.locator('[data-criterion="ok"]')).to_contain_text("nominal: 1.000")
    expect(agreement.locator('[data-criterion="helpfulness"]')).to_contain_text(
        f"interval: {helpfulness:.3f}"
    )
    expect(agreement.locator('[data-criterion="helpfulness"]')).to_contain_text("ann1 – ann2")
