from django import forms
from django.utils.translation import gettext_lazy as _

from apps.workflows.models import Decision


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(label=_("Decision"), choices=Decision.choices, widget=forms.RadioSelect)
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=5000,
        help_text=_("Say what should change when you request changes or reject."),
        widget=forms.Textarea(attrs={"rows": 4}),
    )
