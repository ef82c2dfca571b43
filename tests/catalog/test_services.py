import pytest
from django.core.cache import cache

from apps.audit.models import AuditEvent
from apps.catalog.models import LabelMove, LabelMoveStatus, Prompt, PromptLabel, PromptVersion, VersionStatus
from apps.catalog.selectors import (
    last_approved_before,
    prompt_get,
    prompt_list,
    prompt_render,
    prompt_resolve,
    version_diff,
)
from apps.catalog.services import (
    prompt_create,
    prompt_label_set,
    prompt_version_retire,
    prompt_version_submit,
    prompt_version_update,
    resolve_cache_key,
)
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.workflows.models import ApprovalRequest, SubjectKind
from apps.workflows.services import approval_decision_record
from tests.factories import (
    MESSAGES,
    make_approved,
    make_prompt,
    make_submitted,
    make_version,
    put_on_label,
)


def test_version_records_variables_and_content_hash(world):
    version = make_version(make_prompt(world.support, world.eng), world.eng)
    assert version.number == 1
    assert version.status == VersionStatus.DRAFT
    assert version.variables == ["company", "question"]
    assert len(version.content_hash) == 64
    same = make_version(version.prompt, world.eng)
    assert same.number == 2
    assert same.content_hash == version.content_hash
    other = make_version(version.prompt, world.eng, parameters={"temperature": 0.9})
    assert other.content_hash != version.content_hash


@pytest.mark.parametrize(
    "messages, code, fragment",
    [
        ([], "invalid_messages", "at least one message"),
        ([{"role": "robot", "template": "x"}], "invalid_messages", "role"),
        ([{"role": "user"}], "invalid_messages", "exactly 'role' and 'template'"),
        ([{"role": "user", "template": "Hi {{ name "}], "template_syntax_error", "message 1, line 1"),
        (
            [{"role": "user", "template": "ok"}, {"role": "user", "template": "a\n{% if x %}"}],
            "template_syntax_error",
            "message 2, line 2",
        ),
        ([{"role": "user", "template": "{{ user.password }}"}], "template_syntax_error", "attribute access"),
        ([{"role": "user", "template": "{{ x['y'] }}"}], "template_syntax_error", "item access"),
        ([{"role": "user", "template": "{{ cycler() }}"}], "template_syntax_error", "function calls"),
        ([{"role": "user", "template": "{% include 'settings.py' %}"}], "template_syntax_error", "include"),
        (
            [{"role": "user", "template": "{{ ''.__class__.__mro__ }}"}],
            "template_syntax_error",
            "not allowed",
        ),
    ],
)
def test_invalid_content_is_refused_and_nothing_written(world, messages, code, fragment):
    prompt = make_prompt(world.support, world.eng)
    events = AuditEvent.objects.count()
    with pytest.raises(Unprocessable) as refused:
        make_version(prompt, world.eng, messages=messages)
    assert refused.value.code == code
    assert fragment in refused.value.message
    assert not PromptVersion.objects.exists()
    assert AuditEvent.objects.count() == events


def test_template_error_details_point_at_the_line(world):
    prompt = make_prompt(world.support, world.eng)
    with pytest.raises(Unprocessable) as refused:
        make_version(
            prompt,
            world.eng,
            messages=[
                {"role": "system", "template": "ok"},
                {"role": "user", "template": "line1\nline2 {{ }}"},
            ],
        )
    assert refused.value.details["message_index"] == 1
    assert refused.value.details["line"] == 2


def test_only_authors_create_prompts_and_names_are_unique_per_team(world):
    for username in ("gov", "owner", "ann1", "fin_eng"):
        with pytest.raises(PermissionDenied):
            prompt_create(actor=world.users[username], team=world.support, name="x")
    make_prompt(world.support, world.eng)
    with pytest.raises(Conflict):
        make_prompt(world.support, world.eng2)
    make_prompt(world.finance, world.eng2)  # same name, other team
    assert Prompt.objects.filter(name="greeting").count() == 2
    with pytest.raises(Conflict) as ambiguous:
        prompt_get(user=world.eng2, name="greeting")
    assert ambiguous.value.code == "ambiguous_name"
    assert prompt_get(user=world.eng2, name="greeting", team_slug="finance").team == world.finance
    with pytest.raises(Unprocessable):
        prompt_create(actor=world.eng, team=world.support, name="Bad Name!")


def test_submitted_content_is_frozen(world):
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    with pytest.raises(Conflict) as frozen:
        prompt_version_update(actor=world.eng, version=version, messages=MESSAGES, model="other")
    assert frozen.value.code == "version_frozen"
    with pytest.raises(Conflict):
        prompt_version_submit(actor=world.eng, version=version)


def test_draft_edit_recomputes_hash(world):
    version = make_version(make_prompt(world.support, world.eng), world.eng)
    before = version.content_hash
    edited = prompt_version_update(
        actor=world.eng,
        version=version,
        model="gemini-2.5-pro",
        messages=[{"role": "user", "template": "{{ q }}"}],
    )
    assert edited.content_hash != before
    assert edited.variables == ["q"]


def test_labels_point_at_approved_versions_only(world):
    prompt = make_prompt(world.support, world.eng)
    draft = make_version(prompt, world.eng)
    with pytest.raises(Conflict) as refused:
        prompt_label_set(actor=world.gov, prompt=prompt, label="staging", version_number=draft.number)
    assert refused.value.code == "version_not_approved"
    with pytest.raises(NotFound):
        prompt_label_set(actor=world.gov, prompt=prompt, label="staging", version_number=42)
    assert not PromptLabel.objects.exists()


def test_free_label_moves_directly_for_engineers(world):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov)
    result = prompt_label_set(actor=world.eng, prompt=prompt, label="staging", version_number=version.number)
    assert result.label is not None and result.label.version == version
    with pytest.raises(PermissionDenied):
        prompt_label_set(actor=world.owner, prompt=prompt, label="staging", version_number=version.number)


def test_protected_label_goes_through_governance_approval(world):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov)
    result = prompt_label_set(
        actor=world.eng, prompt=prompt, label="production", version_number=version.number
    )
    assert result.pending and result.label is None
    assert not PromptLabel.objects.filter(name="production").exists()
    with pytest.raises(PermissionDenied):  # four eyes on the move too
        approval_decision_record(request_id=result.request.pk, reviewer=world.eng, decision="approve")
    approval_decision_record(request_id=result.request.pk, reviewer=world.gov2, decision="approve")
    assert PromptLabel.objects.get(prompt=prompt, name="production").version == version
    assert LabelMove.objects.get().status == LabelMoveStatus.APPLIED
    moved = AuditEvent.objects.get(action="catalog.label_moved")
    assert moved.changes["approval_request"] == result.request.pk
    assert moved.actor_username == "gov2"


def test_rejected_label_move_leaves_the_label(world):
    prompt = make_prompt(world.support, world.eng)
    v1 = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, v1, "production", world.gov)
    v2 = make_approved(prompt, world.eng, world.gov)
    result = prompt_label_set(actor=world.eng, prompt=prompt, label="production", version_number=v2.number)
    approval_decision_record(request_id=result.request.pk, reviewer=world.gov, decision="reject")
    assert PromptLabel.objects.get(name="production").version == v1
    assert LabelMove.objects.get().status == LabelMoveStatus.REJECTED


def test_resolve_is_cached_and_invalidated_when_the_label_moves(world, django_capture_on_commit_callbacks):
    prompt = make_prompt(world.support, world.eng)
    v1 = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, v1, "production", world.gov)
    assert prompt_resolve(user=world.eng, name="greeting", label="production")["version"] == 1
    assert cache.get(resolve_cache_key(world.support.pk, "greeting", "production")) is not None
    v2 = make_approved(prompt, world.eng, world.gov, parameters={"temperature": 0.7})
    with django_capture_on_commit_callbacks(execute=True):
        put_on_label(prompt, v2, "production", world.gov)
    resolved = prompt_resolve(user=world.eng, name="greeting", label="production", team_id=world.support.pk)
    assert resolved["version"] == 2
    assert resolved["etag"] == v2.etag


def test_resolve_respects_teams_even_when_cached(world):
    prompt = make_prompt(world.support, world.eng)
    v1 = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, v1, "production", world.gov)
    prompt_resolve(user=world.eng, name="greeting", label="production", team_id=world.support.pk)
    for username in ("fin_eng", "ann1"):
        with pytest.raises(NotFound):
            prompt_resolve(
                user=world.users[username], name="greeting", label="production", team_id=world.support.pk
            )
    with pytest.raises(NotFound) as missing:
        prompt_resolve(user=world.eng, name="greeting", label="canary")
    assert missing.value.code == "label_not_found"


def test_render_validates_variables(world):
    version = make_version(make_prompt(world.support, world.eng), world.eng)
    rendered = prompt_render(version=version, variables={"company": "Acme", "question": "¿Hola?"})
    assert rendered == [
        {"role": "system", "content": "You are the support assistant of Acme."},
        {"role": "user", "content": "¿Hola?"},
    ]
    with pytest.raises(Unprocessable) as refused:
        prompt_render(version=version, variables={"company": "Acme", "questoin": "x"})
    assert refused.value.details == {"missing": ["question"], "unknown": ["questoin"]}
    assert "missing variable: question" in refused.value.message


def test_render_does_not_expose_objects(world):
    version = make_version(
        make_prompt(world.support, world.eng),
        world.eng,
        messages=[{"role": "user", "template": "{{ value }}"}],
    )
    rendered = prompt_render(version=version, variables={"value": {"secret": 1}})
    assert rendered[0]["content"] == "{'secret': 1}"


def test_retire_requires_no_label(world):
    prompt = make_prompt(world.support, world.eng)
    v1 = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, v1, "production", world.gov)
    with pytest.raises(Conflict) as labelled:
        prompt_version_retire(actor=world.gov, version=v1)
    assert labelled.value.code == "version_labelled"
    v2 = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, v2, "production", world.gov)
    with pytest.raises(PermissionDenied):
        prompt_version_retire(actor=world.eng, version=v1)
    assert prompt_version_retire(actor=world.gov, version=v1).status == VersionStatus.RETIRED


def test_diff_against_last_approved_highlights_changed_words(world):
    prompt = make_prompt(world.support, world.eng)
    v1 = make_approved(prompt, world.eng, world.gov)
    v2 = make_submitted(
        prompt,
        world.eng,
        messages=[
            {"role": "system", "template": "You are the friendly support assistant of {{ company }}."},
            {"role": "user", "template": "{{ question }}"},
            {"role": "user", "template": "<b>extra</b>"},
        ],
    )
    assert last_approved_before(version=v2) == v1
    rows = version_diff(old=v1, new=v2)
    replaced = [r for r in rows if r.kind == "replace"]
    assert len(replaced) == 1
    assert "<ins> friendly</ins>" in replaced[0].right
    assert "<del>" not in replaced[0].left
    inserted = [r for r in rows if r.kind == "insert"]
    assert any("&lt;b&gt;extra&lt;/b&gt;" in r.right for r in inserted)  # escaped, never raw HTML


def test_prompt_list_filters_and_visibility(world):
    a = prompt_create(actor=world.eng, team=world.support, name="alpha", description="Greets", tags=["Chat"])
    prompt_create(actor=world.eng, team=world.support, name="beta", tags=["batch"])
    prompt_create(actor=world.fin_eng, team=world.finance, name="gamma")
    assert [p.name for p in prompt_list(user=world.eng)] == ["alpha", "beta"]
    assert [p.name for p in prompt_list(user=world.eng, tag="chat")] == ["alpha"]
    assert [p.name for p in prompt_list(user=world.eng, search="greets")] == ["alpha"]
    assert [p.name for p in prompt_list(user=world.eng2)] == ["gamma", "alpha", "beta"]
    assert list(prompt_list(user=world.ann1)) == []
    assert a.tags.get().name == "chat"


def test_submit_opens_exactly_one_request(world):
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    assert (
        ApprovalRequest.objects.filter(subject_kind=SubjectKind.PROMPT_VERSION, object_id=version.pk).count()
        == 1
    )
