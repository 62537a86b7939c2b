"""The OpenAPI document describes the answers the app gives (web.openapi): errors as
problem+json (OperationOutcome under /fhir), bearer security where a token is needed, a 405's
Allow with every method of the path."""

from __future__ import annotations

from tests.web.conftest import Api


async def test_every_error_is_documented_as_the_app_sends_it(api: Api) -> None:
    doc = (await api.http.get("/openapi.json")).json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    media = (
                        "application/fhir+json"
                        if path.startswith("/fhir/")
                        else "application/problem+json"
                    )
                    assert list(answer["content"]) == [media], (method, path, status)
            protected = path.startswith(("/api/", "/fhir/")) and path != "/fhir/r4/metadata"
            assert ("security" in op) == protected, (method, path)
            if protected:  # and it is true: without a token, 401
                assert "401" in op["responses"], (method, path)


async def test_a_405_allows_every_method_of_the_path(api: Api) -> None:
    r = await api.http.request("OPTIONS", "/api/v1/invoices")
    assert (r.status_code, r.headers["allow"]) == (405, "POST, GET")
    assert r.headers["content-type"] == "application/problem+json"
    r = await api.http.delete("/api/v1/invoices/00000000-0000-0000-0000-000000000000")
    assert (r.status_code, r.headers["allow"]) == (405, "GET")
