import re


def test_api_docs_are_served_without_a_cdn(world, client):
    client.force_login(world.eng)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    # Every script, stylesheet and image comes from this site (not a CDN). Tokens in the page are random
    # text, so look at the addresses, not for the word.
    addresses = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html)
    assert addresses and not [a for a in addresses if re.match(r"(?:https?:)?//", a)], addresses
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/prompts/{name}/resolve" in schema.json()["paths"]
