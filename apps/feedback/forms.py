"""Forms of the feedback pages: a rating schema, a queue, the annotation of one item, an adjudication."""

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.feedback.models import CriterionKind, DatasetKind, QueueKind

CRITERIA_EXAMPLE = json.dumps(
    [
        {"name": "ok", "kind": "thumbs", "guidance": "Would you send this answer to the customer?"},
        {"name": "helpfulness", "kind": "scale", "min": 1, "max": 5, "guidance": "5: solves the problem"},
        {"name": "tone", "kind": "labels", "labels": ["kind", "neutral", "rude"]},
        {"name": "corrected", "kind": "text", "guidance": "The answer you would have sent"},
    ],
    indent=2,
)


class SchemaForm(forms.Form):
    team = forms.ChoiceField(label=_("Team"))
    name = forms.SlugField(label=_("Name"), max_length=100)
    description = forms.CharField(
        label=_("Description"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    criteria = forms.CharField(
        label=_("Criteria (JSON)"),
        widget=forms.Textarea(attrs={"rows": 14, "class": "mono", "spellcheck": "false"}),
        initial=CRITERIA_EXAMPLE,
        help_text=_(
            "A list of criteria. Kinds: thumbs, scale (min, max), labels (labels), preference (A or B, for "
            "pairwise queues), text (a corrected answer). Each may have guidance; a rubric is several criteria."
        ),
    )

    def __init__(self, *args: Any, teams: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.slug, t.slug) for t in teams]

    def clean_criteria(self) -> Any:
        try:
            return json.loads(self.cleaned_data["criteria"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from None


class QueueForm(forms.Form):
    team = forms.ChoiceField(label=_("Team"))
    name = forms.SlugField(label=_("Name"), max_length=100)
    schema = forms.ChoiceField(label=_("Rating schema"))
    kind = forms.ChoiceField(label=_("Items"), choices=QueueKind.choices, initial=QueueKind.SAMPLE)
    app = forms.CharField(label=_("App"), required=False, max_length=100)
    prompt = forms.CharField(label=_("Prompt"), required=False, max_length=100)
    prompt_version = forms.IntegerField(label=_("Prompt version (A)"), required=False, min_value=1)
    model = forms.CharField(label=_("Model (A)"), required=False, max_length=200)
    prompt_version_b = forms.IntegerField(label=_("Prompt version B"), required=False, min_value=1)
    model_b = forms.CharField(label=_("Model B"), required=False, max_length=200)
    since = forms.DateTimeField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateTimeField(
        label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    negative_feedback = forms.BooleanField(
        label=_("Only calls with negative end-user feedback"), required=False
    )
    sampling_rate = forms.FloatField(
        label=_("Sampling rate"),
        initial=1.0,
        min_value=0.0001,
        max_value=1.0,
        help_text=_("The share of matching logs kept, chosen by a hash of their id (repeatable)."),
    )
    size = forms.IntegerField(label=_("Size"), initial=50, min_value=1, max_value=1_000_000)
    overlap = forms.IntegerField(label=_("Annotators per item (k)"), initial=2, min_value=1, max_value=10)
    lease_minutes = forms.IntegerField(
        label=_("Lease (minutes)"),
        initial=30,
        min_value=1,
        max_value=1440,
        help_text=_("An item left this long returns to the pool."),
    )
    assignees = forms.MultipleChoiceField(
        label=_("Assignees"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Every annotator of the team when none."),
    )
    due_date = forms.DateField(
        label=_("Due date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    instructions = forms.CharField(
        label=_("Instructions"), required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 4})
    )

    def __init__(
        self, *args: Any, teams: list[Any], schemas: list[Any], annotators: list[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.slug, t.slug) for t in teams]
        self.fields["schema"].choices = [(str(s.pk), f"{s.team.slug}/{s.name}") for s in schemas]
        self.fields["assignees"].choices = [(u, u) for u in annotators]

    FILTERS = (
        "app",
        "prompt",
        "prompt_version",
        "model",
        "prompt_version_b",
        "model_b",
        "since",
        "until",
        "negative_feedback",
    )

    def filters(self) -> dict[str, Any]:
        return {
            k: self.cleaned_data[k] for k in self.FILTERS if self.cleaned_data.get(k) not in (None, "", False)
        }


class ExportForm(forms.Form):
    kind = forms.ChoiceField(label=_("Format"), choices=DatasetKind.choices)
    name = forms.SlugField(
        label=_("Dataset name"),
        required=False,
        max_length=100,
        help_text=_("Default: the queue's name and the format. Same name: a new version."),
    )


def values_from_post(criteria: list[dict[str, Any]], data: Any, prefix: str = "") -> dict[str, Any]:
    """The values of an annotation form, typed for the schema (the service validates them)."""
    values: dict[str, Any] = {}
    for c in criteria:
        raw = data.get(f"{prefix}{c['name']}", "")
        if raw in ("", None):
            continue
        if c["kind"] == CriterionKind.THUMBS:
            values[c["name"]] = {"true": True, "false": False}.get(raw, raw)
        elif c["kind"] == CriterionKind.SCALE:
            try:
                values[c["name"]] = int(raw)
            except ValueError:
                values[c["name"]] = raw
        else:
            values[c["name"]] = raw
    return values


def criterion_choices(criterion: dict[str, Any]) -> list[tuple[str, str]]:
    """(value, label) of each option of a criterion, in the order the number keys pick them."""
    kind = criterion["kind"]
    if kind == CriterionKind.THUMBS:
        return [("true", str(_("Thumbs up"))), ("false", str(_("Thumbs down")))]
    if kind == CriterionKind.SCALE:
        return [(str(n), str(n)) for n in range(criterion["min"], criterion["max"] + 1)]
    if kind == CriterionKind.LABELS:
        return [(label, label) for label in criterion["labels"]]
    if kind == CriterionKind.PREFERENCE:
        return [("A", str(_("Answer A"))), ("B", str(_("Answer B")))]
    return []
