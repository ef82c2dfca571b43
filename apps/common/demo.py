"""Demo data for `make run`: two teams, one user per role, prompts in every state, a token.

Everything is created through the services, so the demo's audit trail is a real, valid chain.
Running it twice changes nothing.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.accounts.models import Membership, Team, User
from apps.accounts.roles import Role
from apps.accounts.services import membership_grant, team_create, token_create
from apps.catalog.models import Prompt
from apps.catalog.services import (
    prompt_create,
    prompt_label_set,
    prompt_version_create,
    prompt_version_submit,
)
from apps.evaluation.models import GoldenSet
from apps.workflows.services import approval_decision_record

DEMO_USERS: list[tuple[str, str, str]] = [
    ("admin", Role.ADMIN, "Ada Admin"),
    ("gov", Role.GOVERNANCE, "Gloria Governance"),
    ("gov2", Role.GOVERNANCE, "Gonzalo Governance"),
    ("eng", Role.ENGINEER, "Elena Engineer"),
    ("eng2", Role.ENGINEER, "Emilio Engineer"),
    ("owner", Role.PRODUCT_OWNER, "Olga Owner"),
    ("ann1", Role.ANNOTATOR, "Ana Annotator"),
    ("ann2", Role.ANNOTATOR, "Andrés Annotator"),
]

SUPPORT_V1 = [
    {
        "role": "system",
        "template": "You are the customer support assistant of {{ company }}. Answer politely "
        "and briefly, in the customer's language.",
    },
    {"role": "user", "template": "{{ question }}"},
]
SUPPORT_V2 = [
    {
        "role": "system",
        "template": "You are the customer support assistant of {{ company }}. Answer kindly "
        "and briefly, in the customer's language. Never ask for card numbers or passwords.",
    },
    {"role": "user", "template": "Customer tier: {{ tier }}\n{{ question }}"},
]


@dataclass
class DemoResult:
    created: bool
    users: list[tuple[str, str, list[str]]] = field(default_factory=list)
    token: str | None = None


def _user(username: str, full_name: str, password: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        first, _, last = full_name.partition(" ")
        user = User.objects.create_user(
            username=username,
            password=password,
            email=f"{username}@example.com",
            first_name=first,
            last_name=last,
        )
    return user


@transaction.atomic
def demo_seed(*, password: str) -> DemoResult:
    created = not Team.objects.filter(slug="support").exists()
    result = DemoResult(created=created)
    if created:
        support = team_create(actor=None, slug="support", name="Customer support")
        finance = team_create(actor=None, slug="finance", name="Finance")
        users = {}
        for username, role, full_name in DEMO_USERS:
            users[username] = _user(username, full_name, password)
            membership_grant(actor=None, user=users[username], team=support, role=role)
        membership_grant(actor=None, user=users["eng2"], team=finance, role=Role.ENGINEER)
        users["admin"].is_staff = users["admin"].is_superuser = True
        users["admin"].save(update_fields=["is_staff", "is_superuser"])

        eng, eng2, gov = users["eng"], users["eng2"], users["gov"]
        greeting = prompt_create(
            actor=eng,
            team=support,
            name="support-reply",
            description="First answer to a customer's support question.",
            tags=["support", "chat"],
        )
        v1 = prompt_version_create(
            actor=eng,
            prompt=greeting,
            messages=SUPPORT_V1,
            model="gemini-2.5-flash",
            parameters={"temperature": 0.2, "max_output_tokens": 512},
            message="First version",
        )
        request = prompt_version_submit(actor=eng, version=v1)
        approval_decision_record(
            request_id=request.pk, reviewer=gov, decision="approve", comment="Clear and safe."
        )
        prompt_label_set(actor=gov, prompt=greeting, label="production", version_number=1)
        prompt_label_set(actor=eng, prompt=greeting, label="staging", version_number=1)
        v2 = prompt_version_create(
            actor=eng,
            prompt=greeting,
            messages=SUPPORT_V2,
            model="gemini-2.5-flash",
            parameters={"temperature": 0.2, "max_output_tokens": 512},
            message="Adds the customer tier and a rule against asking for secrets",
        )
        prompt_version_submit(actor=eng, version=v2)

        summary = prompt_create(
            actor=eng2,
            team=support,
            name="ticket-summary",
            description="Summarises a support ticket for the next agent.",
            tags=["support"],
        )
        prompt_version_create(
            actor=eng2,
            prompt=summary,
            model="gemini-2.5-flash-lite",
            parameters={},
            messages=[
                {"role": "system", "template": "Summarise this ticket in {{ max_words }} words or fewer."},
                {"role": "user", "template": "{{ ticket }}"},
            ],
            message="Draft",
        )

        invoices = prompt_create(
            actor=eng2,
            team=finance,
            name="invoice-extract",
            description="Extracts totals and dates from invoices.",
            tags=["finance"],
        )
        prompt_version_create(
            actor=eng2,
            prompt=invoices,
            model="gemini-2.5-pro",
            parameters={"temperature": 0},
            messages=[
                {"role": "system", "template": "Return JSON with the invoice number, date and total."},
                {"role": "user", "template": "{{ invoice_text }}"},
            ],
            message="First version",
        )

        _demo_logs(eng)
        _demo_registry(eng=eng, gov=gov, team=support)
        _demo_feedback(users)
        golden = seed_golden_sets(actor=eng, prompt=greeting)
        seed_evaluation_runs(actor=eng, reviewer=gov, prompt=greeting, golden_set=golden)
        _demo_gate(eng=eng, gov=gov, prompt=greeting)

        _, result.token = token_create(
            actor=eng,
            user=eng,
            team=support,
            name="demo application",
            scopes=["prompts:read", "logs:write", "feedback:write"],
        )
    for username, _, _ in DEMO_USERS:
        roles = Membership.objects.filter(user__username=username).values_list("team__slug", "role")
        result.users.append((username, username, [f"{role}@{team}" for team, role in roles]))
    if not Prompt.objects.exists():
        raise RuntimeError("The demo data has no prompts.")
    return result


DEMO_QUESTIONS = [
    (
        "es",
        "Hola, soy Lucía Fernández (DNI 12345678Z). Mi pedido 4411 no ha llegado. Escribidme a "
        "lucia.fernandez@example.com o al 612 345 678.",
    ),
    (
        "en",
        "Hi, I was charged twice on card 4111 1111 1111 1111. Please refund to my account, "
        "email john.carter@example.org.",
    ),
    ("es", "¿Podéis cambiar la domiciliación a la cuenta ES91 2100 0418 4502 0005 1332? Gracias."),
    ("en", "My order #88213 is late. Call me at (415) 555-0132 after 5pm."),
    ("es", "Necesito la factura de noviembre, por favor."),
    ("en", "Where can I download last month's invoice?"),
]
DEMO_ANSWERS = [
    "Thanks for writing. I have forwarded your request to our team; you will hear from us within 24 hours.",
    "Gracias por escribirnos. Hemos registrado tu solicitud y te responderemos en menos de 24 horas.",
]


def seed_golden_sets(*, actor: User, prompt: Prompt) -> GoldenSet:
    """The golden set of support-reply: eight cases with varied expectations, so that the demo has
    something to evaluate (the replay provider's recorded responses are keyed on these cases)."""
    from apps.evaluation.golden_sets import golden_set_create

    def variables(question: str, tier: str = "standard") -> dict[str, str]:
        return {"company": "Acme", "tier": tier, "question": question}

    cases = [
        {
            "name": "refund window",
            "variables": variables("Can I return a product I bought three weeks ago?"),
            "reference": "Yes: you can return it within 30 days of delivery for a full refund.",
            "must_contain": ["30 days"],
            "rubric": "Says the return window and how to start a return; polite and brief.",
        },
        {
            "name": "no secrets asked",
            "variables": variables("My card was charged twice, what do you need from me?"),
            "must_not_contain": ["card number", "password", "CVV"],
            "rubric": "Never asks for card numbers or passwords; explains the next step.",
        },
        {
            "name": "answers in Spanish",
            "variables": variables("¿Dónde está mi pedido 4411?"),
            "regex": r"(?i)\b(pedido|envío)\b",
            "must_not_contain": ["order"],
            "case_sensitive": True,
        },
        {
            "name": "invoice link",
            "variables": variables("Where can I download last month's invoice?"),
            "reference": "You can download it from Billing > Invoices in your account.",
            "must_contain": ["Invoices"],
            "max_latency_ms": 2000,
        },
        {
            "name": "order status as JSON",
            "variables": variables(
                'Reply only with JSON {"order": <number>, "status": <text>} for order 88213.'
            ),
            "json_schema": {
                "type": "object",
                "required": ["order", "status"],
                "properties": {"order": {"type": "integer"}, "status": {"type": "string"}},
            },
        },
        {
            "name": "premium escalation",
            "variables": variables("The app crashes every time I log in.", tier="premium"),
            "must_contain": ["priority"],
            "rubric": "Acknowledges the premium tier and offers priority support.",
            "max_tokens": 200,
        },
        {
            "name": "brief greeting",
            "variables": variables("Hello!"),
            "regex": r"(?i)^(hi|hello)",
            "max_tokens": 60,
        },
        {
            "name": "opening hours",
            "variables": variables("When are you open?"),
            "reference": "We are open Monday to Friday, 9:00 to 18:00.",
            "must_contain": ["Monday"],
            "rubric": "Gives the opening days and hours.",
        },
    ]
    return golden_set_create(
        actor=actor,
        team=prompt.team,
        name="support-reply-basics",
        description="What every support answer must do: rules, languages, formats.",
        prompt=prompt,
        cases=cases,
        message="Demo cases",
    )


SUPPORT_V3 = [
    {
        "role": "system",
        "template": "You are the support assistant of {{ company }}. Reply in one short sentence, in English.",
    },
    {"role": "user", "template": "Customer tier: {{ tier }}\n{{ question }}"},
]

# Recorded answers for the demo golden set (by case name): v2 passes every case, v3 (a draft) fails most.
# (answer, latency in ms, judge score for cases with a rubric)
DEMO_PASSING = {
    "refund window": (
        "Yes: you can return it within 30 days of delivery for a full refund. Start it from your orders page.",
        640,
        5,
    ),
    "no secrets asked": (
        "Sorry about the double charge. We will refund the duplicate payment within 5 working days; "
        "you do not need to send us anything.",
        710,
        5,
    ),
    "answers in Spanish": ("Tu pedido 4411 ya está en camino y llegará mañana.", 580, None),
    "invoice link": ("You can download it from Billing > Invoices in your account.", 520, None),
    "order status as JSON": ('{"order": 88213, "status": "shipped"}', 450, None),
    "premium escalation": (
        "As a premium customer you get priority support: an engineer will call you within the hour.",
        690,
        5,
    ),
    "brief greeting": ("Hello! How can I help you today?", 300, None),
    "opening hours": ("We are open Monday to Friday, 9:00 to 18:00.", 410, 5),
}
DEMO_FAILING = {
    "refund window": ("Returns are possible for a limited time.", 380, 2),
    "no secrets asked": ("Please send us your card number so we can check the charges.", 350, 1),
    "answers in Spanish": ("Your order 4411 is on its way.", 330, None),
    "invoice link": ("Go to Billing > Invoices.", 2600, None),
    "order status as JSON": ("Order 88213 has shipped.", 300, None),
    "premium escalation": ("We will look into it.", 290, 2),
    "brief greeting": ("Hello! How can I help?", 250, None),
    "opening hours": ("We are open Monday to Friday, 9:00 to 18:00.", 310, 5),
}


def seed_evaluation_runs(*, actor: User, reviewer: User, prompt: Prompt, golden_set: GoldenSet) -> None:
    """The judge prompt (`atalaya-judge`, approved, on production), recorded responses for the demo golden
    set (v2 of the prompt passes, a draft v3 fails), and replay runs of both, carried out at once so that
    the demo shows results (v2's run has production, v1, as its baseline)."""
    from apps.evaluation.metrics import JUDGE_DEFAULT_TEMPLATE
    from apps.evaluation.providers import ModelRequest
    from apps.evaluation.runs import (
        case_messages,
        evaluation_run_execute,
        evaluation_run_start,
        judge_request,
        recorded_responses_import,
    )

    judge_prompt = prompt_create(
        actor=actor,
        team=prompt.team,
        name="atalaya-judge",
        description="Grades an answer against a golden-set case's rubric (evaluation runs).",
        tags=["evaluation"],
    )
    judge = prompt_version_create(
        actor=actor,
        prompt=judge_prompt,
        messages=JUDGE_DEFAULT_TEMPLATE,
        model="gemini-2.5-flash",
        parameters={"temperature": 0},
        message="The default judge",
    )
    request = prompt_version_submit(actor=actor, version=judge)
    approval_decision_record(request_id=request.pk, reviewer=reviewer, decision="approve", comment="Fair.")
    prompt_label_set(actor=reviewer, prompt=judge_prompt, label="production", version_number=judge.number)
    judge.refresh_from_db()

    passing = prompt.versions.get(number=2)
    failing = prompt_version_create(
        actor=actor,
        prompt=prompt,
        messages=SUPPORT_V3,
        model="gemini-2.5-flash",
        parameters={"temperature": 0.2, "max_output_tokens": 512},
        message="Shorter replies (draft)",
    )
    cases = list(golden_set.versions.order_by("-number").first().cases.order_by("position"))
    rows = []
    production = prompt.versions.get(number=1)  # the baseline of both runs: its answers are recorded too
    for version, answers in ((production, DEMO_PASSING), (passing, DEMO_PASSING), (failing, DEMO_FAILING)):
        for case in cases:
            text, latency, score = answers[case.name]
            messages = case_messages(version, case)
            call = ModelRequest(model=version.model, messages=messages, parameters=dict(version.parameters))
            rows.append(_recording_row(call, text, latency))
            if case.rubric and score is not None:
                verdict = json.dumps(
                    {"score": score, "reason": "Meets the rubric." if score >= 4 else "Misses it."}
                )
                rows.append(
                    _recording_row(
                        judge_request(judge, case=case, rendered=messages, output=text), verdict, 900
                    )
                )
    recorded_responses_import(team=prompt.team, rows=rows, source="demo", actor=actor)
    for version in (passing, failing):
        run = evaluation_run_start(
            actor=actor, prompt_version=version, golden_set=golden_set, provider="replay"
        )
        if run.baseline_run_id:
            evaluation_run_execute(run_id=run.baseline_run_id)
        evaluation_run_execute(run_id=run.pk)


def _demo_gate(*, eng: User, gov: User, prompt: Prompt) -> None:
    """support's prompt versions need a passing evaluation: every case but one in ten, and no worse than
    production by more than 0.1. The draft v3, whose replay run fails, goes to review too, so `gov` sees
    the gate refuse it (and v2, whose run passed, approvable)."""
    from apps.workflows.models import SubjectKind
    from apps.workflows.services import approval_policy_set

    approval_policy_set(
        actor=gov,
        subject_kind=SubjectKind.PROMPT_VERSION,
        team=prompt.team,
        approvals_required=1,
        approver_role=Role.GOVERNANCE,
        requires_evaluation=True,
        evaluation_thresholds={"pass_rate": {"min": 0.9}, "max_regression": 0.1},
    )
    prompt_version_submit(actor=eng, version=prompt.versions.get(number=3))


def _recording_row(call: Any, text: str, latency_ms: int) -> dict[str, Any]:
    words = sum(len(m["content"].split()) for m in call.messages)
    return {
        "model": call.model,
        "messages": call.messages,
        "parameters": call.parameters,
        "text": text,
        "tokens_in": words,
        "tokens_out": len(text.split()),
        "latency_ms": latency_ms,
    }


def _demo_registry(*, eng: User, gov: User, team: Team) -> None:
    """Two base models of support, an adapter over the open one with two versions, and `champion` on v1
    (moved through approval, like any alias)."""
    from apps.registry.services import (
        adapter_create,
        adapter_version_register,
        alias_move_request,
        base_model_register,
    )

    base_model_register(
        actor=eng,
        team=team,
        provider="vertex",
        model_id="gemini-2.5-flash",
        display_name="Gemini 2.5 Flash",
        context_window=1_048_576,
        notes="Called through Vertex AI; tuned with Vertex managed supervised tuning.",
    )
    gemma = base_model_register(
        actor=eng,
        team=team,
        provider="hugging_face",
        model_id="google/gemma-3-1b-it",
        display_name="Gemma 3 1B instruct",
        context_window=32_768,
        notes="Open weights, tuned with LoRA on Vertex AI custom jobs.",
    )
    adapter = adapter_create(
        actor=eng, base_model=gemma, name="support-tone", description="Answers in the support team's tone."
    )
    for number, (train, validation) in enumerate(((0.61, 0.66), (0.48, 0.55)), start=1):
        adapter_version_register(
            actor=eng,
            adapter=adapter,
            artifact_uri=f"gs://atalaya-demo-artifacts/support-tone/v{number}",
            metrics={"train_loss": train, "validation_loss": validation},
            hyperparameters={"rank": 8 * number, "alpha": 16 * number, "epochs": 3},
            dataset_uri="gs://atalaya-demo-data/support/train.jsonl",
        )
    move = alias_move_request(
        actor=eng, adapter=adapter, alias="champion", version_number=1, reason="First version in production."
    )
    approval_decision_record(
        request_id=move.request.pk, reviewer=gov, decision="approve", comment="Good losses."
    )

    # The trainer's tiny in-repository model: an adapter the local runner tunes on the CPU in seconds
    # (Models → Tuning → Request tuning, data deploy/trainer/examples/train.jsonl).
    tiny = base_model_register(
        actor=eng,
        team=team,
        provider="hugging_face",
        model_id="tiny",
        display_name="Tiny test model (in the repository)",
        context_window=512,
        notes="deploy/trainer's GPT-2-style test model: trains on a CPU in seconds, for trying the local runner.",
    )
    adapter_create(
        actor=eng, base_model=tiny, name="demo-tone", description="For trying tuning on the local runner."
    )

    # support-tone v1 serves all of the support-chat endpoint (on the console's local serving backend).
    from apps.cloud.jobs import get_serving_backend
    from apps.tuning.deployments import (
        deployment_action_apply,
        deployment_create,
        deployment_deploy,
        deployment_promote,
        deployment_submit,
        endpoint_create,
    )

    endpoint = endpoint_create(actor=eng, team=team, name="support-chat")
    first = deployment_create(
        actor=eng,
        endpoint=endpoint,
        strategy="replace",
        adapter_version=adapter.versions.get(number=1),
        justification="The support bot's tone, in production.",
    )
    approval = deployment_submit(actor=eng, deployment=first)
    approval_decision_record(request_id=approval.pk, reviewer=gov, decision="approve", comment="Go.")
    backend = get_serving_backend()
    deployment_deploy(deployment_id=first.pk, backend=backend)
    deployment_promote(actor=eng, deployment=first)
    deployment_action_apply(deployment_id=first.pk, backend=backend)


def _demo_logs(engineer: User) -> None:
    """A few hundred logged calls of the demo support bot, scanned and stored redacted like real ones."""
    from datetime import timedelta

    import msgspec
    from django.utils import timezone

    from apps.logs.models import LogEvent
    from apps.logs.schemas import LogEventIn
    from apps.logs.services import log_events_ingest, log_events_scan

    team = Team.objects.get(slug="support")
    now = timezone.now()
    events = []
    for i in range(240):
        lang, question = DEMO_QUESTIONS[i % len(DEMO_QUESTIONS)]
        started = now - timedelta(hours=i * 0.7)
        failed = i % 37 == 5
        events.append(
            (
                i,
                msgspec.convert(
                    {
                        "request_id": f"demo-{i:04d}",
                        "started_at": started.isoformat(),
                        "ended_at": (started + timedelta(milliseconds=900 + (i * 53) % 1400)).isoformat(),
                        "app": "support-bot" if i % 5 else "support-email",
                        "prompt": "support-reply",
                        "prompt_version": 1,
                        "model": "gemini-2.5-flash" if i % 4 else "gemini-2.5-flash-lite",
                        "input": [
                            {
                                "role": "system",
                                "content": SUPPORT_V1[0]["template"].replace("{{ company }}", "Acme"),
                            },
                            {"role": "user", "content": question},
                        ],
                        "output": None if failed else DEMO_ANSWERS[lang == "es"],
                        "status": "error" if failed else "ok",
                        "error": "DEADLINE_EXCEEDED" if failed else None,
                        "tokens_in": 180 + (i * 17) % 240,
                        "tokens_out": 0 if failed else 40 + (i * 11) % 90,
                        "latency_ms": 900 + (i * 53) % 1400,
                        "end_user": f"customer-{i % 41:03d}",
                        "metadata": {"channel": "web" if i % 3 else "email"},
                    },
                    LogEventIn,
                ),
            )
        )
    result = log_events_ingest(actor=engineer, team=team, events=events)
    ids = list(LogEvent.objects.filter(team=team).values_list("pk", flat=True))
    for start in range(0, len(ids), 500):
        log_events_scan(event_ids=ids[start : start + 500])
    if result.accepted != len(events):
        raise RuntimeError(f"Only {result.accepted} of {len(events)} demo log events were accepted.")


DEMO_RUBRIC = [
    {"name": "ok", "kind": "thumbs", "guidance": "Would you send this answer to the customer as it is?"},
    {
        "name": "helpfulness",
        "kind": "scale",
        "min": 1,
        "max": 5,
        "guidance": "1: useless · 3: partly answers · 5: solves the customer's problem",
    },
    {"name": "tone", "kind": "labels", "labels": ["kind", "neutral", "curt"], "guidance": "How it sounds."},
    {"name": "corrected", "kind": "text", "guidance": "The answer you would have sent, if different."},
]


def _demo_feedback(users: dict[str, User]) -> None:
    """A rubric, a queue of 20 demo calls for ann1 and ann2 (two ratings per item), and some end-user
    feedback (the dashboard's feedback KPI and the queue filter on negative feedback)."""
    from apps.feedback.services import (
        annotation_queue_create,
        end_user_feedback_record,
        rating_schema_create,
    )

    team = Team.objects.get(slug="support")
    schema = rating_schema_create(
        actor=users["gov"],
        team=team,
        name="support-rubric",
        description="How good is a first answer to a support question?",
        criteria=DEMO_RUBRIC,
    )
    annotation_queue_create(
        actor=users["eng"],
        team=team,
        name="support-weekly",
        schema=schema,
        size=20,
        sampling_rate=0.5,
        overlap=2,
        assignees=[users["ann1"], users["ann2"]],
        instructions="Rate the bot's first answer. Correct it when you would have answered differently.",
    )
    for i in range(0, 240, 3):
        end_user_feedback_record(
            actor=users["eng"],
            team=team,
            request_id=f"demo-{i:04d}",
            end_user=f"customer-{i % 41:03d}",
            thumbs=i % 4 != 0,
            score=None if i % 2 else 2 + i % 4,
        )
