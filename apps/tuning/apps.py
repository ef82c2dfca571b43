from django.apps import AppConfig


class TuningConfig(AppConfig):
    name = "apps.tuning"
    label = "tuning"

    def ready(self) -> None:
        from apps.tuning import services

        services.register_subjects()
