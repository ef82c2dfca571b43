from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.costs.models import PriceKind
from apps.costs.services import price_set
from apps.registry.models import Provider, TuningMethod
from apps.registry.services import adapter_create, base_model_register


@pytest.fixture
def l4_price(db):
    return price_set(
        actor=None,
        key="NVIDIA_L4",
        kind=PriceKind.ACCELERATOR_HOUR,
        hourly=Decimal("0.70"),
        effective_from=timezone.now() - timedelta(days=1),
    )


@pytest.fixture
def adapter(world):
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
    )
    return adapter_create(actor=world.eng, base_model=model, name="support-tone")


@pytest.fixture
def gemini_adapter(world):
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.VERTEX,
        model_id="gemini-2.5-flash",
        context_window=1_048_576,
    )
    return adapter_create(
        actor=world.eng, base_model=model, name="gemini-tone", method=TuningMethod.VERTEX_SUPERVISED
    )
