import contextlib
import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.catalog.models import VersionStatus
from apps.catalog.services import ROLES

ROLE_CHOICES = [(role, role) for role in ROLES]
MODEL_SUGGESTIONS = [
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-pro",
    "gemma-3-27b-it",
    "llama-3.3-70b-instruct",
]


def split_tags(raw: str) -> list[str]:
    return [t.strip() for t in raw.replace("\n", ",").split(",") if t.strip()]


class CatalogFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    team = forms.ChoiceField(label=_("Team"), required=False)
    tag = forms.ChoiceField(label=_("Tag"), required=False)
    status = forms.ChoiceField(
        label=_("Has a version"), required=False, choices=[("", _("Any status")), *VersionStatus.choices]
    )

    def __init__(self, *args, teams: list[Team], tags: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.teams = {t.slug: t for t in teams}
        self.fields["team"].choices = [("", _("All teams")), *((t.slug, t.slug) for t in teams)]
        self.fields["tag"].choices = [("", _("All tags")), *((t, t) for t in tags)]
        self.fields["q"].widget = forms.TextInput(
            attrs={"type": "search", "placeholder": _("Name or description"), "autocomplete": "off"}
        )

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data if self.is_valid() else {}
        team = self.teams.get(data.get("team") or "")
        return {
            "team_id": team.pk if team else None,
            "tag": data.get("tag", ""),
            "search": data.get("q", "").strip(),
            "status": data.get("status", ""),
        }


class PromptCreateForm(forms.Form):
    team = forms.ModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), empty_label=None, to_field_name="slug"
    )
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("Lowercase letters, digits, '-', '_' and '.'; applications resolve the prompt by it."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(
        label=_("Description"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    tags = forms.CharField(
        label=_("Tags"), required=False, max_length=900, help_text=_("Separated by commas.")
    )

    def __init__(self, *args, teams: Any, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams


class PromptEditForm(forms.Form):
    description = forms.CharField(
        label=_("Description"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    tags = forms.CharField(
        label=_("Tags"), required=False, max_length=900, help_text=_("Separated by commas.")
    )


class LabelMoveForm(forms.Form):
    label = forms.CharField(
        label=_("Label"),
        max_length=40,
        widget=forms.TextInput(
            attrs={
                "list": "label-suggestions",
                "autocomplete": "off",
                "spellcheck": "false",
                "aria-describedby": "label-help",
            }
        ),
    )
    version = forms.TypedChoiceField(label=_("Version"), coerce=int)

    def __init__(self, *args, approved_numbers: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(n, f"v{n}") for n in approved_numbers]


class VersionForm(forms.Form):
    """A version's content. The messages are repeated `role`/`template` fields (rows the browser can
    add and remove); the service validates the templates and names the message and line at fault."""

    model = forms.CharField(
        label=_("Model"),
        max_length=200,
        widget=forms.TextInput(
            attrs={"list": "model-suggestions", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    parameters = forms.CharField(
        label=_("Parameters (JSON)"),
        required=False,
        help_text=_('A JSON object, e.g. {"temperature": 0.2, "max_output_tokens": 512}.'),
        widget=forms.Textarea(attrs={"rows": 4, "class": "code", "spellcheck": "false"}),
    )
    message = forms.CharField(
        label=_("Changelog message"),
        required=False,
        max_length=500,
        help_text=_("What changed and why, for the reviewers."),
    )

    def __init__(self, data=None, *, initial_messages: list[dict[str, str]] | None = None, **kwargs):
        super().__init__(data, **kwargs)
        if data is not None:
            roles, templates = data.getlist("role"), data.getlist("template")
            rows = [
                {"role": role, "template": template.replace("\r\n", "\n")}
                for role, template in zip(roles, templates, strict=False)
            ]
        else:
            rows = [dict(m) for m in (initial_messages or [])] or [
                {"role": "system", "template": ""},
                {"role": "user", "template": ""},
            ]
        self.message_rows: list[dict[str, Any]] = rows
        self.message_error_index: int | None = None

    def apply_row_action(self, action: str) -> None:
        """Without JavaScript, the add and remove buttons post the form back with an action."""
        if action == "add_message":
            self.message_rows.append({"role": "user", "template": ""})
        elif action.startswith("remove_message:") and len(self.message_rows) > 1:
            with contextlib.suppress(ValueError, IndexError):
                del self.message_rows[int(action.split(":", 1)[1])]

    def messages(self) -> list[dict[str, str]]:
        return [{"role": row["role"], "template": row["template"]} for row in self.message_rows]

    def clean_parameters(self) -> dict[str, Any]:
        raw = self.cleaned_data["parameters"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                _("This is not valid JSON: %(error)s (line %(line)s, column %(column)s)."),
                params={"error": exc.msg, "line": exc.lineno, "column": exc.colno},
            ) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_("Give a JSON object, between braces."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.message_rows:
            raise forms.ValidationError(_("Add at least one message."))
        return cleaned

    def add_service_error(self, message: str, details: dict[str, Any]) -> None:
        index = details.get("message_index")
        if isinstance(index, int) and 0 <= index < len(self.message_rows):
            self.message_error_index = index
            self.message_rows[index]["error"] = message
        self.add_error(None, message)
