"""Public list prices of a few Vertex AI models (USD, text, prompts up to 200k tokens), as published in
2025. They are a starting point: administrators edit them (a new effective-dated price) in the console."""

from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import migrations

PER_MILLION = {  # model: (input, output) USD per 1M tokens
    "gemini-2.5-pro": ("1.25", "10.00"),
    "gemini-2.5-flash": ("0.30", "2.50"),
    "gemini-2.5-flash-lite": ("0.10", "0.40"),
    "gemini-2.0-flash": ("0.15", "0.60"),
    "gemini-2.0-flash-lite": ("0.075", "0.30"),
}
SOURCE = "Vertex AI public list price (2025), editable: check the current price list"


def seed(apps, schema_editor):
    if settings.COSTS_CURRENCY != "USD":
        return
    Price = apps.get_model("costs", "Price")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for model, (inp, out) in PER_MILLION.items():
        Price.objects.get_or_create(
            kind="tokens",
            key=model,
            effective_from=start,
            defaults={
                "currency": "USD",
                "input_per_1k": Decimal(inp) / 1000,
                "output_per_1k": Decimal(out) / 1000,
                "source": SOURCE,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("costs", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
