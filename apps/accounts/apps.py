from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self) -> None:
        from apps.accounts import signals  # noqa: F401  (connects the sign-in audit receivers)
        from apps.accounts.oidc import oidc_settings_check

        oidc_settings_check()  # a bad OIDC configuration stops the process here, naming the setting
