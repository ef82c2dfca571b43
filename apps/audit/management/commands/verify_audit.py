import sys

from django.core.management.base import BaseCommand

from apps.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain. Exits 1 and names the first broken event if it was tampered with."

    def handle(self, *args, **options):
        result = audit_chain_verify()
        if result.ok:
            self.stdout.write(
                self.style.SUCCESS(f"Audit chain intact: {result.events_checked} events verified.")
            )
            return
        self.stderr.write(
            self.style.ERROR(
                f"Audit chain BROKEN at event #{result.first_broken_sequence}: {result.reason} "
                f"({result.events_checked} events verified before it)."
            )
        )
        sys.exit(1)
