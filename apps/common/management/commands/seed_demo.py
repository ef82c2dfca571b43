from django.conf import settings
from django.core.management.base import BaseCommand

from apps.common.demo import demo_seed
from console.env import env


class Command(BaseCommand):
    help = "Create the demo organisation (teams, one user per role, prompts, a token). Safe to run twice."

    def handle(self, *args, **options):
        password = env.str("ATALAYA_DEMO_PASSWORD", default="demo")
        result = demo_seed(password=password)
        self.stdout.write(
            self.style.SUCCESS("Demo data created." if result.created else "Demo data already present.")
        )
        self.stdout.write(
            f"\nSign in at {settings.ATALAYA_BASE_URL}/ with (password: $ATALAYA_DEMO_PASSWORD, default 'demo'):"
        )
        for username, _, roles in result.users:
            self.stdout.write(f"  {username:<7} {', '.join(roles)}")
        if result.token:
            self.stdout.write("\nAPI token for the demo application (user eng, team support; shown once):")
            self.stdout.write(f"  {result.token}")
            self.stdout.write(
                "  curl -H 'Authorization: Bearer <token>' "
                "'"
                f"{settings.ATALAYA_BASE_URL}/api/v1/prompts/support-reply/resolve?label=production'"
            )
