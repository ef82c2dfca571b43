"""The tuning request form. Shapes only; apps.tuning.services checks everything else."""

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _


class TuningRequestForm(forms.Form):
    adapter = forms.ModelChoiceField(queryset=None, label=_("Adapter"), empty_label=None)
    train_dataset_uri = forms.CharField(
        max_length=1000,
        label=_("Training dataset"),
        help_text=_(
            "JSONL chat data: a dataset exported from annotations (atalaya://datasets/…, suggested as you type), "
            "gs://…, bq://…, or a file on this machine for the local runner."
        ),
        widget=forms.TextInput(attrs={"list": "tuning-datasets"}),
    )
    validation_dataset_uri = forms.CharField(
        max_length=1000,
        required=False,
        label=_("Validation dataset"),
        widget=forms.TextInput(attrs={"list": "tuning-datasets"}),
    )
    rank = forms.IntegerField(min_value=1, max_value=512, initial=8, required=False, label=_("LoRA rank"))
    alpha = forms.FloatField(min_value=0.0001, initial=16, required=False, label=_("LoRA alpha"))
    dropout = forms.FloatField(min_value=0, max_value=0.99, initial=0.05, required=False, label=_("Dropout"))
    epochs = forms.IntegerField(min_value=1, max_value=100, initial=3, required=False, label=_("Epochs"))
    learning_rate = forms.FloatField(
        min_value=1e-8, max_value=1, initial=0.0002, required=False, label=_("Learning rate")
    )
    machine_type = forms.CharField(
        max_length=64, required=False, label=_("Machine type"), help_text=_("e.g. g2-standard-12")
    )
    accelerator_type = forms.CharField(
        max_length=64, required=False, label=_("Accelerator"), help_text=_("e.g. NVIDIA_L4")
    )
    accelerator_count = forms.IntegerField(min_value=0, max_value=16, initial=0, label=_("Accelerators"))
    estimated_hours = forms.DecimalField(
        min_value=Decimal("0.01"),
        max_value=Decimal("10000"),
        decimal_places=2,
        initial=Decimal("1"),
        label=_("Estimated hours"),
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=4000, label=_("Justification")
    )

    HYPERPARAMETERS = ("rank", "alpha", "dropout", "epochs", "learning_rate")

    def __init__(self, *args: Any, adapters: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["adapter"].queryset = adapters
        self.fields["adapter"].label_from_instance = lambda a: (
            f"{a} · {a.base_model.model_id} · {a.get_method_display()}"
        )

    def service_arguments(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        hyperparameters = {k: data.pop(k) for k in self.HYPERPARAMETERS if data.get(k) is not None}
        for key in self.HYPERPARAMETERS:
            data.pop(key, None)
        if data["adapter"].method != "lora":
            hyperparameters = {k: v for k, v in hyperparameters.items() if k == "epochs"}
        return {**data, "hyperparameters": hyperparameters}
