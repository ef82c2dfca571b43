"""Forms of the registry pages. They check shapes; the services check everything else."""

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from apps.registry.models import Adapter, Provider, TuningMethod


class BaseModelForm(forms.Form):
    team = forms.ModelChoiceField(queryset=None, label=_("Team"), empty_label=None)
    provider = forms.ChoiceField(choices=Provider.choices, label=_("Provider"))
    model_id = forms.CharField(
        max_length=200,
        label=_("Model id"),
        help_text=_("The provider's identifier, e.g. gemini-2.5-flash or google/gemma-3-1b-it."),
    )
    display_name = forms.CharField(max_length=200, required=False, label=_("Display name"))
    context_window = forms.IntegerField(
        min_value=1, max_value=100_000_000, label=_("Context window"), help_text=_("In tokens.")
    )
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=4000, label=_("Notes")
    )

    def __init__(self, *args: Any, teams: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams


class AdapterForm(forms.Form):
    base_model = forms.ModelChoiceField(queryset=None, label=_("Base model"), empty_label=None)
    name = forms.CharField(
        max_length=100,
        label=_("Name"),
        help_text=_("Lowercase letters, digits, '-', '_' and '.'; unique in the team."),
    )
    method = forms.ChoiceField(choices=TuningMethod.choices, label=_("Method"))
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000, label=_("Description")
    )

    def __init__(self, *args: Any, base_models: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_model"].queryset = base_models
        self.fields["base_model"].label_from_instance = lambda m: f"{m.team.slug} · {m}"


def _json_object(value: str, what: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            _("%(what)s: not valid JSON (%(error)s).") % {"what": what, "error": exc.msg}
        ) from None
    if not isinstance(parsed, dict):
        raise ValidationError(_('%(what)s: write a JSON object, e.g. {"rank": 8}.') % {"what": what})
    return parsed


class AdapterVersionForm(forms.Form):
    artifact_uri = forms.CharField(
        max_length=1000, label=_("Artifact URI"), help_text=_("Where the weights are: gs://…, s3://…, hf://…")
    )
    metrics = forms.CharField(
        required=False,
        label=_("Metrics"),
        help_text=_('JSON, e.g. {"train_loss": 0.41, "validation_loss": 0.52}'),
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    hyperparameters = forms.CharField(
        required=False,
        label=_("Hyperparameters"),
        help_text=_('JSON, e.g. {"rank": 8, "alpha": 16}'),
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    dataset_uri = forms.CharField(max_length=1000, required=False, label=_("Training dataset"))
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=4000, label=_("Notes")
    )

    def clean_metrics(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["metrics"], str(_("Metrics")))

    def clean_hyperparameters(self) -> dict[str, Any]:
        return _json_object(self.cleaned_data["hyperparameters"], str(_("Hyperparameters")))


class AliasMoveForm(forms.Form):
    alias = forms.CharField(
        max_length=40,
        label=_("Alias"),
        initial="champion",
        help_text=_("champion, challenger, or a name of your own."),
    )
    version = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label=_("Version"))
    reason = forms.CharField(
        max_length=500, required=False, label=_("Reason"), help_text=_("For the reviewers.")
    )

    def __init__(self, *args: Any, adapter: Adapter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        numbers = list(adapter.versions.order_by("-number").values_list("number", flat=True))
        self.fields["version"].choices = [("", _("— take the alias off —")), *((n, f"v{n}") for n in numbers)]
