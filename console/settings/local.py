"""The embedded default: one laptop, no servers (SQLite, filesystem broker)."""

from console.env import env

from .base import *  # noqa: F403
from .base import BROKER_DIR, VAR_DIR

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="atalaya-local-development-only-not-a-secret")

for folder in (
    VAR_DIR,
    BROKER_DIR / "queue",
    BROKER_DIR / "control",
    VAR_DIR / "mail",
    VAR_DIR / "staticfiles",
):
    folder.mkdir(parents=True, exist_ok=True)
