from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts.models import Team
from apps.costs.services import usage_recompute, usage_rollup


def _when(value: str) -> datetime:
    parsed = parse_datetime(value) or (parse_datetime(f"{value}T00:00:00") if len(value) == 10 else None)
    if parsed is None:
        raise CommandError(f"Not a date or time: {value!r} (use 2026-11-01 or 2026-11-01T10:00:00Z).")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = (
        "Rebuild usage rollups: the pending hours (what beat does every minute), or every hour of a range "
        "with --since/--until (after a price correction, say). Rebuilding replaces, so it is safe to repeat."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="start of the range (date or ISO time)")
        parser.add_argument("--until", help="end of the range, exclusive (default: now)")
        parser.add_argument("--team", help="team slug (default: every team)")

    def handle(self, *args, **options):
        if options["since"] is None:
            self.stdout.write(f"{usage_rollup()} pending hours rebuilt.")
            return
        since = _when(options["since"])
        until = _when(options["until"]) if options["until"] else timezone.now()
        if since >= until:
            raise CommandError("--since must be before --until.")
        team = None
        if options["team"]:
            team = Team.objects.filter(slug=options["team"]).first()
            if team is None:
                raise CommandError(f"No team {options['team']!r}.")
        self.stdout.write(f"{usage_recompute(since=since, until=until, team=team)} hours rebuilt.")
