import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.catalog.models import LabelMove, Prompt, PromptLabel, PromptVersion, VersionStatus
from apps.workflows.models import ApprovalRequest


def prompt_url(name, catalog, **kwargs):
    return reverse(name, kwargs={"team": "support", "name": catalog.prompt.name, **kwargs})


class TestList:
    def test_rows_show_team_tags_labels_and_latest_status(self, world, catalog, client_as):
        response = client_as(world.eng).get(reverse("catalog:list"))
        body = response.content.decode()
        assert "greeting" in body and "chat" in body
        assert "production v1" in body
        assert "v3" in body and "Draft" in body
        assert "invoice" not in body  # finance is not eng's team
        assert "New prompt" in body

    def test_product_owner_has_no_new_prompt_button(self, world, catalog, client_as):
        assert b"New prompt" not in client_as(world.owner).get(reverse("catalog:list")).content

    def test_filters_and_htmx_partial(self, world, catalog, client_as):
        client = client_as(world.eng2)  # member of support and finance
        everything = client.get(reverse("catalog:list")).content.decode()
        assert "greeting" in everything and "invoice" in everything
        partial = client.get(reverse("catalog:list"), {"team": "finance"}, HTTP_HX_REQUEST="true")
        body = partial.content.decode()
        assert "<html" not in body and "invoice" in body and "greeting" not in body
        assert "HX-Request" in partial["Vary"]
        by_tag = client.get(reverse("catalog:list"), {"tag": "chat"}).content.decode()
        assert "greeting" in by_tag and "invoice" not in by_tag
        by_search = client.get(reverse("catalog:list"), {"q": "customers"}).content.decode()
        assert "greeting" in by_search and "invoice" not in by_search
        by_status = client.get(reverse("catalog:list"), {"status": "approved"}).content.decode()
        assert "greeting" in by_status and "invoice" not in by_status
        nothing = client.get(reverse("catalog:list"), {"q": "zzz"}).content.decode()
        assert "No prompt matches these filters." in nothing

    def test_unknown_team_filter_is_ignored_not_leaked(self, world, catalog, client_as):
        body = client_as(world.eng).get(reverse("catalog:list"), {"team": "finance"}).content.decode()
        assert "invoice" not in body


class TestPromptPage:
    def test_timeline_labels_and_forms(self, world, catalog, client_as):
        body = client_as(world.eng).get(prompt_url("catalog:prompt", catalog)).content.decode()
        for number in (1, 2, 3):
            assert f"Version {number}" in body
        assert "First version" in body and "Work in progress" in body
        assert "In review" in body and "Approved" in body
        assert "New version" in body and "Move label" in body
        assert "open an approval request" in body  # explains the protected label to an engineer

    def test_governance_is_told_protected_labels_move_directly(self, world, catalog, client_as):
        body = client_as(world.gov).get(prompt_url("catalog:prompt", catalog)).content.decode()
        assert "move directly for you" in body
        assert "New version" not in body

    def test_create_prompt(self, world, client_as):
        response = client_as(world.eng).post(
            reverse("catalog:prompt_create"),
            {"team": "support", "name": "faq", "description": "Answers", "tags": "help, faq"},
        )
        prompt = Prompt.objects.get(name="faq")
        assert response["Location"] == reverse("catalog:version_create", args=["support", "faq"])
        assert sorted(prompt.tags.values_list("name", flat=True)) == ["faq", "help"]

    def test_create_prompt_refusal_is_shown_and_nothing_written(self, world, catalog, client_as):
        before = AuditEvent.objects.count()
        response = client_as(world.eng).post(
            reverse("catalog:prompt_create"), {"team": "support", "name": "greeting"}
        )
        assert response.status_code == 200
        assert "already exists" in response.content.decode()
        assert AuditEvent.objects.count() == before

    def test_cannot_create_in_a_team_one_does_not_author(self, world, client_as):
        response = client_as(world.eng).post(
            reverse("catalog:prompt_create"), {"team": "finance", "name": "x"}
        )
        assert response.status_code == 200  # the team is not among the choices: a form error
        assert not Prompt.objects.filter(name="x").exists()

    def test_edit_details(self, world, catalog, client_as):
        client_as(world.eng).post(
            prompt_url("catalog:prompt_edit", catalog), {"description": "New words", "tags": "a, b"}
        )
        catalog.prompt.refresh_from_db()
        assert catalog.prompt.description == "New words"


class TestLabels:
    def test_engineer_moving_a_protected_label_opens_a_request(self, world, catalog, client_as):
        response = client_as(world.eng).post(
            prompt_url("catalog:label_set", catalog), {"label": "production", "version": "1"}, follow=True
        )
        body = response.content.decode()
        move = LabelMove.objects.get()
        request = ApprovalRequest.objects.get(object_id=move.pk, subject_kind="label_move")
        assert f"request #{request.pk}" in body
        assert "waits for governance approval" in body
        assert "Pending: production" in body

    def test_engineer_moves_a_free_label_directly(self, world, catalog, client_as):
        response = client_as(world.eng).post(
            prompt_url("catalog:label_set", catalog), {"label": "staging", "version": "1"}, follow=True
        )
        assert "staging now points at v1" in response.content.decode()
        assert PromptLabel.objects.get(name="staging").version == catalog.approved
        assert not LabelMove.objects.exists()

    def test_governance_moves_production_directly(self, world, catalog, client_as):
        v4 = PromptVersion.objects.get(pk=catalog.in_review.pk)
        from apps.workflows.services import approval_decision_record

        approval_decision_record(request_id=catalog.request.pk, reviewer=world.gov2, decision="approve")
        client_as(world.gov).post(
            prompt_url("catalog:label_set", catalog), {"label": "production", "version": str(v4.number)}
        )
        assert PromptLabel.objects.get(name="production").version_id == v4.pk

    def test_only_approved_versions_are_offered(self, world, catalog, client_as):
        before = AuditEvent.objects.count()
        response = client_as(world.eng).post(
            prompt_url("catalog:label_set", catalog), {"label": "staging", "version": "3"}, follow=True
        )
        assert "Select a valid choice" in response.content.decode()
        assert AuditEvent.objects.count() == before


EDITOR = {
    "role": ["system", "user"],
    "template": ["You help {{ company }}.", "{{ question }}"],
    "model": "gemini-2.5-flash",
    "parameters": '{"temperature": 0.3}',
    "message": "Shorter",
    "action": "save",
}


class TestEditor:
    def test_new_version_prefills_from_the_latest(self, world, catalog, client_as):
        body = client_as(world.eng).get(prompt_url("catalog:version_create", catalog)).content.decode()
        assert "You are the support assistant of {{ company }}." in body  # v3's content
        assert 'value="gemini-2.5-flash"' in body

    def test_save_a_draft(self, world, catalog, client_as):
        response = client_as(world.eng).post(prompt_url("catalog:version_create", catalog), EDITOR)
        version = PromptVersion.objects.get(prompt=catalog.prompt, number=4)
        assert response["Location"] == prompt_url("catalog:version", catalog, number=4)
        assert version.parameters == {"temperature": 0.3}
        assert version.variables == ["company", "question"]
        assert version.message == "Shorter"

    def test_windows_line_endings_are_normalised(self, world, catalog, client_as):
        data = {**EDITOR, "template": ["Line one\r\nLine two", "{{ question }}"]}
        client_as(world.eng).post(prompt_url("catalog:version_create", catalog), data)
        assert PromptVersion.objects.get(number=4).messages[0]["template"] == "Line one\nLine two"

    @pytest.mark.parametrize(
        ("change", "error"),
        [
            ({"parameters": "{not json"}, "This is not valid JSON"),
            ({"parameters": "[1, 2]"}, "Give a JSON object"),
            ({"template": ["Hello {{ name }", "ok"]}, "Template error in message 1, line 1"),
            ({"template": ["{{ user.password }}", "ok"]}, "attribute access is not allowed"),
        ],
    )
    def test_invalid_content_is_refused_with_nothing_written(self, world, catalog, client_as, change, error):
        before = AuditEvent.objects.count()
        response = client_as(world.eng).post(
            prompt_url("catalog:version_create", catalog), {**EDITOR, **change}
        )
        assert response.status_code == 200
        assert error in response.content.decode()
        assert not PromptVersion.objects.filter(number=4).exists()
        assert AuditEvent.objects.count() == before

    def test_rows_can_be_added_and_removed_without_javascript(self, world, catalog, client_as):
        client = client_as(world.eng)
        added = client.post(
            prompt_url("catalog:version_create", catalog), {**EDITOR, "action": "add_message"}
        )
        assert added.content.decode().count('name="template"') == 3 + 1  # three rows + the row template
        removed = client.post(
            prompt_url("catalog:version_create", catalog), {**EDITOR, "action": "remove_message:0"}
        )
        body = removed.content.decode()
        assert body.count('name="template"') == 1 + 1
        assert "You help {{ company }}." not in body
        assert not PromptVersion.objects.filter(number=4).exists()

    def test_edit_a_draft(self, world, catalog, client_as):
        client_as(world.eng).post(prompt_url("catalog:version_edit", catalog, number=3), EDITOR)
        catalog.draft.refresh_from_db()
        assert catalog.draft.messages[0]["template"] == "You help {{ company }}."

    def test_submitted_versions_are_frozen(self, world, catalog, client_as):
        url = prompt_url("catalog:version_edit", catalog, number=2)
        response = client_as(world.eng).get(url)
        assert response["Location"] == prompt_url("catalog:version", catalog, number=2)
        client_as(world.eng).post(url, EDITOR)
        catalog.in_review.refresh_from_db()
        assert "friendly" in catalog.in_review.messages[0]["template"]


class TestPreview:
    def preview(self, client, catalog, **data):
        return client.post(
            prompt_url("catalog:preview", catalog), {**EDITOR, **data}, HTTP_HX_REQUEST="true"
        ).content.decode()

    def test_variables_inputs_and_rendered_messages(self, world, catalog, client_as):
        body = self.preview(client_as(world.eng), catalog, sample_company="Acme")
        assert 'name="sample_company"' in body and 'name="sample_question"' in body
        assert "You help Acme." in body
        assert "{{ question }}" in body  # no sample value: the placeholder stays

    def test_template_error_names_message_and_line(self, world, catalog, client_as):
        body = self.preview(
            client_as(world.eng),
            catalog,
            template=["fine", "Line one\n{% if x %}unclosed"],
            sample_company="Acme",
        )
        assert "Template error" in body and "message 2, line 2" in body
        assert 'name="sample_company" value="Acme"' in body  # kept for when the error is fixed

    def test_preview_writes_nothing_and_needs_an_author(self, world, catalog, client_as):
        before = (AuditEvent.objects.count(), PromptVersion.objects.count())
        self.preview(client_as(world.eng), catalog)
        assert (AuditEvent.objects.count(), PromptVersion.objects.count()) == before
        response = client_as(world.owner).post(prompt_url("catalog:preview", catalog), EDITOR)
        assert response.status_code == 403


class TestVersionActions:
    def test_submit_for_review(self, world, catalog, client_as):
        response = client_as(world.eng).post(
            prompt_url("catalog:version_submit", catalog, number=3), follow=True
        )
        catalog.draft.refresh_from_db()
        assert catalog.draft.status == VersionStatus.IN_REVIEW
        assert "someone else must approve it" in response.content.decode()

    def test_submit_button_only_on_drafts_for_authors(self, world, catalog, client_as):
        draft_page = client_as(world.eng).get(prompt_url("catalog:version", catalog, number=3)).content
        review_page = client_as(world.eng).get(prompt_url("catalog:version", catalog, number=2)).content
        gov_draft_page = client_as(world.gov).get(prompt_url("catalog:version", catalog, number=3)).content
        assert b"Submit for review" in draft_page
        assert b"Submit for review" not in review_page
        assert b"Submit for review" not in gov_draft_page

    def test_retire_for_governance_only_when_unlabelled(self, world, catalog, client_as):
        page = client_as(world.gov).get(prompt_url("catalog:version", catalog, number=1)).content
        assert b"Retire" in page
        response = client_as(world.gov).post(
            prompt_url("catalog:version_retire", catalog, number=1), follow=True
        )
        assert "move the label first" in response.content.decode()
        catalog.approved.refresh_from_db()
        assert catalog.approved.status == VersionStatus.APPROVED

    def test_diff_against_last_approved_highlights_words(self, world, catalog, client_as):
        body = client_as(world.gov).get(prompt_url("catalog:version", catalog, number=2)).content.decode()
        assert "Changes since v1, the last approved version" in body
        assert "<del>support</del>" in body and "<ins>friendly</ins>" in body
