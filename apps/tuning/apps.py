from django.apps import AppConfig


class TuningConfig(AppConfig):
    name = "apps.tuning"
    label = "tuning"

    def ready(self) -> None:
        from apps.tuning import deployments, services

        services.register_subjects()
        deployments.register_subjects()
