import importlib

import pytest
from django.apps import apps as django_apps

from apps.costs.models import Price

seed_migration = importlib.import_module("apps.costs.migrations.0002_seed_vertex_prices")


@pytest.fixture(autouse=True)
def vertex_prices(db):
    """The list prices the data migration seeds. A transactional test elsewhere (the browser tests) flushes
    the tables, migration data included, so these tests put them back rather than depend on test order."""
    if not Price.objects.exists():
        seed_migration.seed(django_apps, None)
