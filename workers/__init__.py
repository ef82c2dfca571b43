"""Celery tasks, one module per domain. Thin: they take ids and call one service."""

from workers import audit, costs, deployments, evaluation, logs, registry, tuning, workflows

__all__ = ["audit", "costs", "deployments", "evaluation", "logs", "registry", "tuning", "workflows"]
