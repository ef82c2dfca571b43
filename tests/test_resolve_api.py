from tests.factories import make_approved, make_prompt, make_token, put_on_label


def test_resolve_with_token_etag_and_304(world, api_as):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, version, "production", world.gov)
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    response = client.get("/api/v1/prompts/greeting/resolve?label=production")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 1
    assert response["ETag"] == version.etag
    again = client.get("/api/v1/prompts/greeting/resolve?label=production", HTTP_IF_NONE_MATCH=version.etag)
    assert again.status_code == 304
    assert again.content == b""
