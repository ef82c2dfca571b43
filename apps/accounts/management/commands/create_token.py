from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.accounts.models import Team, User
from apps.accounts.roles import Scope
from apps.accounts.services import token_create
from apps.common.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create an API token for a user in a team and print it (it is shown once, stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            choices=Scope.values,
            dest="scopes",
            help="repeat for several scopes",
        )
        parser.add_argument("--name", default="cli")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args, **options):
        user = User.objects.filter(username=options["user"]).first()
        team = Team.objects.filter(slug=options["team"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        if team is None:
            raise CommandError(f"No team {options['team']!r}.")
        expires = (
            (timezone.now() + timedelta(days=options["expires_days"])) if options["expires_days"] else None
        )
        try:
            _, plaintext = token_create(
                actor=user,
                user=user,
                team=team,
                name=options["name"],
                scopes=options["scopes"],
                expires_at=expires,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(plaintext)
