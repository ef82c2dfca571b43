import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Team
from apps.evaluation.runs import RecordError, recorded_responses_import


class Command(BaseCommand):
    help = (
        "Load recorded responses for the replay provider from a JSONL file: one object a line with "
        "`model`, `messages` ([{role, content}], as rendered), `parameters`, `text`, and optionally "
        "`tokens_in`, `tokens_out`, `latency_ms`. The key is computed as the replay provider computes it; "
        "a recording of the same request is replaced. All or nothing: a bad line names itself."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the JSONL file ('-' for standard input)")
        parser.add_argument("--team", required=True, help="the team's slug: recordings are per team")

    def handle(self, *args, **options):
        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"No team {options['team']!r}.")
        path = options["path"]
        try:
            text = self.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        rows, lines = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise CommandError(f"line {number}: not JSON ({exc})") from None
            lines.append(number)
        try:
            count = recorded_responses_import(
                team=team, rows=rows, lines=lines, source=f"import {Path(path).name}"
            )
        except RecordError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{count} recorded responses stored for {team.slug}.")
