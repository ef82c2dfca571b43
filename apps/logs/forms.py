"""Forms of the log pages: the explorer's filters and a team's log policy."""

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.cloud.pii import INFO_TYPES, RedactionMode
from apps.logs.selectors import LogFilters

# The statuses an application may send (apps.logs.schemas.LogEventIn.status).
STATUS_CHOICES = [
    ("ok", _("OK")),
    ("error", _("Error")),
    ("timeout", _("Timed out")),
    ("blocked", _("Blocked")),
    ("cancelled", _("Cancelled")),
]
STATUS_TONES = {"ok": "success", "error": "danger", "blocked": "danger", "timeout": "warning"}

REDACTION_CHOICES = [
    (RedactionMode.REPLACE.value, _("Replace with the infoType, e.g. [EMAIL_ADDRESS]")),
    (RedactionMode.MASK.value, _("Mask with asterisks, e.g. ****************")),
    (
        RedactionMode.TOKEN.value,
        _("Keyed token, e.g. [EMAIL_ADDRESS:5f1c9a2e0b7d]: the same value always gives the same token"),
    ),
]
REDACTION_LABELS = {
    RedactionMode.REPLACE.value: _("Replace"),
    RedactionMode.MASK.value: _("Mask"),
    RedactionMode.TOKEN.value: _("Token"),
}


def _suggested(field: forms.Field, datalist: str, placeholder: Any) -> None:
    field.widget.attrs.update(
        {"list": datalist, "placeholder": placeholder, "autocomplete": "off", "spellcheck": "false"}
    )


class LogFilterForm(forms.Form):
    """The explorer's filters. Without `text` (product owners) there is no search of the text."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": _("Redacted text, e.g. [EMAIL_ADDRESS]"),
                "autocomplete": "off",
            }
        ),
    )
    team = forms.ChoiceField(label=_("Team"), required=False)
    app = forms.CharField(label=_("App"), required=False, max_length=100)
    prompt = forms.CharField(label=_("Prompt"), required=False, max_length=100)
    version = forms.IntegerField(
        label=_("Version"),
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        widget=forms.NumberInput(attrs={"placeholder": _("Any"), "inputmode": "numeric"}),
    )
    model = forms.CharField(label=_("Model"), required=False, max_length=200)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All statuses")), *STATUS_CHOICES]
    )
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    pii = forms.ChoiceField(
        label=_("PII"),
        required=False,
        choices=[("", _("With or without")), ("yes", _("With PII")), ("no", _("Without PII"))],
    )
    info_type = forms.ChoiceField(label=_("InfoType"), required=False)

    def __init__(
        self, *args, teams: list[Team], info_types: Sequence[str] = (), text: bool = True, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        if not text:
            del self.fields["q"]
        self.teams = {t.slug: t for t in teams}
        self.fields["team"].choices = [("", _("All teams")), *((t.slug, t.slug) for t in teams)]
        known = sorted(set(INFO_TYPES) | set(info_types))
        self.fields["info_type"].choices = [("", _("Any infoType")), *((t, t) for t in known)]
        _suggested(self.fields["app"], "log-apps", _("Any app"))
        _suggested(self.fields["prompt"], "log-prompts", _("Any prompt"))
        _suggested(self.fields["model"], "log-models", _("Any model"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", _("The end date is before the start date."))
        return cleaned

    def filters(self) -> LogFilters:
        """The valid filters (an invalid one is shown with its error and left out); dates are whole
        days in the current time zone."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        team = self.teams.get(data.get("team") or "")
        zone = timezone.get_current_timezone()
        since, until = data.get("since"), data.get("until")
        pii = data.get("pii") or ""
        return LogFilters(
            team_id=team.pk if team else None,
            app=(data.get("app") or "").strip(),
            prompt=(data.get("prompt") or "").strip(),
            prompt_version=data.get("version"),
            model=(data.get("model") or "").strip(),
            status=data.get("status") or "",
            since=datetime.combine(since, time.min, tzinfo=zone) if since else None,
            until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone) if until else None,
            has_pii={"yes": True, "no": False}.get(pii),
            info_type=data.get("info_type") or "",
            search=(data.get("q") or "").strip(),
        )


class TeamLogPolicyForm(forms.Form):
    redaction_mode = forms.ChoiceField(
        label=_("Redaction"),
        choices=REDACTION_CHOICES,
        widget=forms.RadioSelect,
        help_text=_("Applies to events scanned from now on; stored events keep their redaction."),
    )
    retention_days = forms.IntegerField(
        label=_("Keep logs for (days)"),
        min_value=1,
        max_value=3650,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
        help_text=_("Between 1 and 3650. Older stored events are deleted automatically, every few hours."),
    )
