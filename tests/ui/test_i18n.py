import re

from django.conf import settings
from django.urls import reverse


def test_spanish_ui(world, catalog, client_as):
    client = client_as(world.gov)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    body = client.get(reverse("catalog:list")).content.decode()
    assert '<html lang="es">' in body
    assert "Catálogo de prompts" in body and "Cerrar sesión" in body and "Revisiones" in body
    version = client.get(reverse("catalog:version", args=["support", "greeting", 2])).content.decode()
    assert "En revisión" in version and "Aprobar" in version


def test_language_switcher(world, client_as):
    client = client_as(world.eng)
    response = client.post(reverse("set_language"), {"language": "es", "next": reverse("accounts:tokens")})
    assert response["Location"] == reverse("accounts:tokens")
    assert "Tokens de API" in client.get(reverse("accounts:tokens")).content.decode()
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "API tokens" in client.get(reverse("accounts:tokens")).content.decode()


def test_spanish_sign_in_page_from_the_browser_language(db, client):
    body = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="es-ES,es;q=0.9").content.decode()
    assert "Inicia sesión en Atalaya" in body


def _translations(entry: str) -> list[str]:
    """The text of each msgstr (or msgstr[n]) of a .po entry, its quoted lines joined."""
    blocks = re.findall(r'^msgstr(?:\[\d+\])? ((?:"(?:[^"\\]|\\.)*"\n?)+)', entry + "\n", flags=re.M)
    return ["".join(re.findall(r'"((?:[^"\\]|\\.)*)"', block)) for block in blocks]


def test_spanish_catalog_is_complete():
    """Every message of our catalog is translated (a new English string must get its Spanish)."""
    path = settings.LOCALE_PATHS[0] / "es" / "LC_MESSAGES" / "django.po"
    entries = [
        e for e in path.read_text(encoding="utf-8").split("\n\n")[1:] if not e.lstrip().startswith("#~")
    ]
    untranslated = [e for e in entries if "#, fuzzy" in e or not all(_translations(e))]
    assert not untranslated, untranslated[:3]
    assert len(entries) > 500  # the parsing found the catalog's entries
