"""E-mail settings from EMAIL_URL: the settings a production process computes from the variable, and a
message sent with them through Django's SMTP backend to an SMTP server on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.ops.smtp_fake import FakeSmtpServer

ROOT = Path(__file__).resolve().parents[2]
NAMES = [
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_FILE_PATH",
]


def run_django(code: str, tmp_path: Path, **env: str) -> str:
    """`code` after django.setup() with the local settings and only these variables (plus a var dir)."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "console.settings.local",
        "ATALAYA_VAR_DIR": str(tmp_path / "var"),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup()\n{code}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def email_settings(tmp_path: Path, **env: str) -> dict:
    code = (
        "import json; from django.conf import settings\n"
        f"print(json.dumps({{name: str(getattr(settings, name)) for name in {NAMES!r}}}))"
    )
    return json.loads(run_django(code, tmp_path, **env))


def test_the_default_writes_files_under_var_mail(tmp_path):
    for env in ({}, {"EMAIL_URL": ""}):
        settings = email_settings(tmp_path, **env)
        assert settings["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
        assert settings["EMAIL_FILE_PATH"] == str(tmp_path / "var" / "mail")


def test_smtp_with_starttls_and_credentials(tmp_path):
    settings = email_settings(
        tmp_path, EMAIL_URL="smtp+tls://alerts%40example.com:p%40ss%2Fw0rd@smtp.example.com:587"
    )
    assert settings == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": "587",
        "EMAIL_HOST_USER": "alerts@example.com",
        "EMAIL_HOST_PASSWORD": "p@ss/w0rd",
        "EMAIL_USE_TLS": "True",
        "EMAIL_USE_SSL": "False",
        "EMAIL_FILE_PATH": str(tmp_path / "var" / "mail"),
    }


def test_smtp_with_implicit_tls_defaults_to_port_465(tmp_path):
    settings = email_settings(tmp_path, EMAIL_URL="smtp+ssl://user:secret@mail.example.com")
    assert (settings["EMAIL_PORT"], settings["EMAIL_USE_SSL"], settings["EMAIL_USE_TLS"]) == (
        "465",
        "True",
        "False",
    )


def test_a_message_goes_through_the_smtp_server_the_url_names(tmp_path):
    with FakeSmtpServer() as server:
        run_django(
            "from django.core.mail import send_mail\n"
            "send_mail('Budget alert', 'Spend reached 80 %.', 'atalaya@example.com', ['gov@example.com'])",
            tmp_path,
            EMAIL_URL=f"smtp://alerts%40example.com:p%40ss@127.0.0.1:{server.port}",
        )
    assert server.received.logins == [("alerts@example.com", "p@ss")]
    assert server.received.senders == ["atalaya@example.com"]
    assert server.received.recipients == ["gov@example.com"]
    assert "Subject: Budget alert" in server.received.messages[0]
    assert "Spend reached 80 %." in server.received.messages[0]


def test_email_backend_still_overrides_the_backend(tmp_path):
    settings = email_settings(
        tmp_path,
        EMAIL_URL="smtp://smtp.example.com:25",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
    )
    assert settings["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert settings["EMAIL_HOST"] == "smtp.example.com"
