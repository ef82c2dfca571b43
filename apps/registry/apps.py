from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"

    def ready(self) -> None:
        from apps.registry import services

        services.register_subjects()
