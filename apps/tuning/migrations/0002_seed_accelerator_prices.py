"""Approximate hourly prices of one accelerator on Vertex AI custom training (USD, us-central1, 2025), so
that tuning requests get a cost estimate out of the box. They are a starting point, not a quote:
administrators check the current price list and enter their region's prices (a new effective-dated
price) on the Prices page."""

from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import migrations

PER_HOUR = {  # Vertex AI accelerator type: USD per accelerator-hour (approximate)
    "NVIDIA_TESLA_T4": "0.40",
    "NVIDIA_L4": "0.64",
    "NVIDIA_TESLA_A100": "3.37",
    "NVIDIA_A100_80GB": "4.52",
    "NVIDIA_H100_80GB": "11.27",
}
SOURCE = (
    "Approximate Vertex AI custom-training price per accelerator-hour, us-central1 (2025): check and edit"
)


def seed(apps, schema_editor):
    if settings.COSTS_CURRENCY != "USD":
        return
    Price = apps.get_model("costs", "Price")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for accelerator, hourly in PER_HOUR.items():
        Price.objects.get_or_create(
            kind="accelerator_hour",
            key=accelerator,
            effective_from=start,
            defaults={"currency": "USD", "hourly": Decimal(hourly), "source": SOURCE},
        )


class Migration(migrations.Migration):
    dependencies = [("tuning", "0001_initial"), ("costs", "0002_seed_vertex_prices")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
