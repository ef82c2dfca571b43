"""Forms of the golden-set pages: a set, a case (each expectation its own labelled field), an import."""

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.catalog.models import Prompt
from apps.evaluation.golden_sets import CASE_FIELDS, FORMATS, LIST_FIELDS, PROVENANCE, CaseError, case_clean
from apps.evaluation.models import GoldenSet


class GoldenSetCreateForm(forms.Form):
    team = forms.ModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), empty_label=None, to_field_name="slug"
    )
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("Lowercase letters, digits, '-', '_' and '.'; unique in the team."),
    )
    prompt = forms.ModelChoiceField(
        label=_("Prompt"),
        queryset=Prompt.objects.none(),
        required=False,
        empty_label=_("None: shared by the team's prompts"),
        help_text=_("The prompt whose versions must pass this set; leave empty to share it in the team."),
    )
    description = forms.CharField(
        label=_("Description"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, teams: Any, prompts: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
        self.fields["prompt"].queryset = prompts
        self.fields["prompt"].label_from_instance = lambda p: f"{p.team.slug}/{p.name}"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        prompt, team = data.get("prompt"), data.get("team")
        if prompt is not None and team is not None and prompt.team_id != team.pk:
            self.add_error("prompt", _("Choose a prompt of the same team."))
        return data


class GoldenSetEditForm(forms.Form):
    description = forms.CharField(
        label=_("Description"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )


def _lines(raw: str) -> list[str]:
    return [line.strip() for line in raw.splitlines() if line.strip()]


class JsonTextField(forms.CharField):
    """JSON typed in a textarea: parsed in clean, an error when it is not JSON."""

    def __init__(self, *, empty: Any, **kwargs: Any):
        self.empty = empty
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if value in (None, {}, []) and value == self.empty:
            return ""
        return json.dumps(value, indent=2, ensure_ascii=False)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text.strip():
            return self.empty
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                _("Not valid JSON (line %(line)s, column %(column)s: %(problem)s).")
                % {"line": exc.lineno, "column": exc.colno, "problem": exc.msg}
            ) from None


class GoldenCaseForm(forms.Form):
    """A case; checked with the same rules as the services (each problem shown on its field)."""

    name = forms.CharField(label=_("Name"), required=False, max_length=200)
    variables = JsonTextField(
        label=_("Variables"),
        empty={},
        help_text=_('A JSON object: the variables the prompt is rendered with, e.g. {"question": "…"}.'),
    )
    reference = forms.CharField(
        label=_("Reference answer"),
        required=False,
        max_length=20_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("What a good answer says: compared by similarity metrics and the judge."),
    )
    exact = forms.BooleanField(label=_("The answer must equal the reference"), required=False)
    must_contain = forms.CharField(
        label=_("Must contain"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One text per line."),
    )
    must_not_contain = forms.CharField(
        label=_("Must not contain"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One text per line."),
    )
    regex = forms.CharField(
        label=_("Regular expression"),
        required=False,
        max_length=1000,
        strip=False,
        widget=forms.TextInput(attrs={"class": "mono", "spellcheck": "false"}),
        help_text=_("Python syntax; the answer must match it somewhere."),
    )
    expect_json = forms.BooleanField(label=_("The answer must be JSON"), required=False)
    json_schema = JsonTextField(
        label=_("JSON schema of the answer"),
        empty=None,
        help_text=_("A JSON Schema the answer must validate against (implies a JSON answer)."),
    )
    max_latency_ms = forms.IntegerField(label=_("Maximum latency (ms)"), required=False, min_value=1)
    max_tokens = forms.IntegerField(label=_("Maximum output tokens"), required=False, min_value=1)
    rubric = forms.CharField(
        label=_("Rubric for the judge"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What an LLM judge scores the answer against."),
    )
    case_sensitive = forms.BooleanField(label=_("Case-sensitive text checks"), required=False)
    message = forms.CharField(
        label=_("Change note"),
        required=False,
        max_length=500,
        help_text=_("Why this version, for the history."),
    )
    base_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, source: str = "manual", source_ref: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.source, self.source_ref = source, source_ref

    @staticmethod
    def initial_from(case: dict[str, Any]) -> dict[str, Any]:
        initial = dict(case)
        initial["must_contain"] = "\n".join(case.get("must_contain") or [])
        initial["must_not_contain"] = "\n".join(case.get("must_not_contain") or [])
        return initial

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        raw = {name: data.get(name) for name in CASE_FIELDS if name not in (*LIST_FIELDS, *PROVENANCE)}
        raw["must_contain"] = _lines(data.get("must_contain") or "")
        raw["must_not_contain"] = _lines(data.get("must_not_contain") or "")
        raw["source"], raw["source_ref"] = self.source, self.source_ref
        try:
            self.case = case_clean(raw)
        except CaseError as exc:
            field = exc.details.get("field")
            message = exc.message.split(": ", 1)[-1]
            self.add_error(field if field in self.fields else None, message)
        return data


class GoldenImportForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("JSONL (one case object per line) or CSV (a header row naming the case fields)."),
    )
    format = forms.ChoiceField(
        label=_("Format"),
        required=False,
        choices=[("", _("From the file name")), *((f, f.upper()) for f in FORMATS)],
    )
    append = forms.BooleanField(
        label=_("Keep the current cases and add these after them"),
        required=False,
        help_text=_("Unchecked: the file's cases replace the current ones."),
    )
    message = forms.CharField(label=_("Change note"), required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        upload = data.get("file")
        if upload is not None and not data.get("format"):
            suffix = upload.name.rsplit(".", 1)[-1].lower() if "." in upload.name else ""
            if suffix in ("jsonl", "ndjson"):
                data["format"] = "jsonl"
            elif suffix == "csv":
                data["format"] = "csv"
            else:
                self.add_error("format", _("Say the format: the file name ends neither in .jsonl nor .csv."))
        return data


class GoldenSetChoiceForm(forms.Form):
    golden_set = forms.ModelChoiceField(
        label=_("Golden set"), queryset=GoldenSet.objects.none(), empty_label=None
    )

    def __init__(self, *args: Any, sets: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["golden_set"].queryset = sets
        self.fields["golden_set"].label_from_instance = lambda s: (
            f"{s.name} ({s.prompt.name})" if s.prompt_id else f"{s.name} ({_('shared')})"
        )
