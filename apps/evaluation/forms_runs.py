from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.catalog.models import Prompt
from apps.evaluation.golden_sets import golden_sets_applicable
from apps.evaluation.models import EvaluationProvider


class RunStartForm(forms.Form):
    golden_set = forms.ModelChoiceField(
        queryset=None, label=_("Golden set"), required=False, empty_label=_("The prompt's own")
    )
    provider = forms.ChoiceField(label=_("Provider"), choices=EvaluationProvider.choices)
    model = forms.CharField(
        label=_("Model"),
        required=False,
        max_length=200,
        help_text=_("Empty: the version's model. A run on another model does not count for the gate."),
    )

    def __init__(self, *args: Any, prompt: Prompt, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["golden_set"].queryset = golden_sets_applicable(prompt=prompt).order_by("name")  # type: ignore[attr-defined]
