"""The committed api_spec/openapi.json is what the code generates (run `make spec`)."""

import json

from guideapp.config import PROJECT_ROOT


def test_committed_spec_matches_the_code(app):
    generated = app.extensions["guideapp"]["api"].spec.to_dict()
    committed = json.loads((PROJECT_ROOT / "api_spec" / "openapi.json").read_text())
    assert json.loads(json.dumps(generated)) == committed, (
        "api_spec/openapi.json is stale: run `make spec` and commit it"
    )


def test_spec_and_docs_are_served(client):
    spec = client.get("/openapi.json")
    assert spec.status_code == 200 and "/api/v1/auth/login" in spec.get_json()["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_login_is_documented_as_public_and_the_rest_needs_a_token(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    assert spec["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/me"]["get"]
