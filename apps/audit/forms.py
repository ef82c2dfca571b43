from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.audit.actions import ACTIONS

_GROUPS = {
    "accounts": _("Accounts"),
    "catalog": _("Catalog"),
    "workflows": _("Reviews"),
    "audit": _("Audit"),
}


def action_choices() -> list[Any]:
    groups: dict[str, list[tuple[str, Any]]] = {}
    for action, label in ACTIONS.items():
        prefix = action.split(".", 1)[0]
        groups.setdefault(prefix, [(f"{prefix}.", _("All of this group"))]).append((action, label))
    return [("", _("All actions"))] + [
        (_GROUPS.get(prefix, prefix), items) for prefix, items in groups.items()
    ]


class AuditFilterForm(forms.Form):
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("Target or action"), "autocomplete": "off"}
        ),
    )
    team = forms.ChoiceField(label=_("Team"), required=False)
    action = forms.ChoiceField(label=_("Action"), required=False)
    actor = forms.CharField(
        label=_("Who"),
        required=False,
        max_length=150,
        widget=forms.TextInput(
            attrs={"placeholder": _("Username"), "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, teams: list[Team], **kwargs):
        super().__init__(*args, **kwargs)
        self.teams = {t.slug: t for t in teams}
        self.fields["team"].choices = [("", _("All teams")), *((t.slug, t.slug) for t in teams)]
        self.fields["action"].choices = action_choices()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", _("The end date is before the start date."))
        return cleaned

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for audit_event_list(); dates are whole days in the current time zone."""
        data = self.cleaned_data if self.is_valid() else {}
        team = self.teams.get(data.get("team") or "")
        zone = timezone.get_current_timezone()
        since, until = data.get("since"), data.get("until")
        return {
            "team_id": team.pk if team else None,
            "action": data.get("action") or "",
            "actor": (data.get("actor") or "").strip(),
            "search": (data.get("q") or "").strip(),
            "since": datetime.combine(since, time.min, tzinfo=zone) if since else None,
            "until": datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone) if until else None,
        }
