"""Forms of the deployment pages. They check shapes; the services check everything else."""

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.tuning.models import DeploymentStrategy


class EndpointForm(forms.Form):
    team = forms.ModelChoiceField(queryset=None, label=_("Team"), empty_label=None)
    name = forms.CharField(
        max_length=100,
        label=_("Name"),
        help_text=_("Lowercase letters, digits, '-', '_' and '.'; unique in the team."),
    )

    def __init__(self, *args: Any, teams: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams


class DeploymentForm(forms.Form):
    endpoint = forms.ModelChoiceField(queryset=None, label=_("Endpoint"), empty_label=None)
    adapter_version = forms.ModelChoiceField(queryset=None, label=_("Adapter version"), empty_label=None)
    strategy = forms.ChoiceField(choices=DeploymentStrategy.choices, label=_("Strategy"))
    traffic_percent = forms.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        label=_("Traffic share (%)"),
        help_text=_("Canary: 1 to 50 %. A/B split: 1 to 99 %. Replace always takes 100 %."),
    )
    machine_type = forms.CharField(
        max_length=64, required=False, label=_("Machine type"), help_text=_("e.g. g2-standard-12")
    )
    accelerator_type = forms.CharField(
        max_length=64, required=False, label=_("Accelerator"), help_text=_("e.g. NVIDIA_L4")
    )
    accelerator_count = forms.IntegerField(
        min_value=0, max_value=8, required=False, initial=0, label=_("Accelerators")
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        label=_("Justification"),
        help_text=_("For the reviewers: why this version, why now."),
    )

    def __init__(self, *args: Any, endpoints: Any, versions: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].queryset = endpoints
        self.fields["endpoint"].label_from_instance = lambda e: f"{e.team.slug} · {e.name}"
        self.fields["adapter_version"].queryset = versions
        self.fields["adapter_version"].label_from_instance = lambda v: (
            f"{v.adapter} v{v.number}"
            + (f" ({', '.join(a.name for a in v.aliases.all())})" if v.aliases.all() else "")
        )

    def clean_accelerator_count(self) -> int:
        return self.cleaned_data.get("accelerator_count") or 0
