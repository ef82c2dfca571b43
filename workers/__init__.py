"""Celery tasks, one module per domain. Thin: they take ids and call one service."""

from workers import audit, workflows

__all__ = ["audit", "workflows"]
