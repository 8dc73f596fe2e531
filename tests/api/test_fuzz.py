"""Whatever arrives, the API answers with a clear problem (or success), never a 500."""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.fixed_dictionaries({"csr": st.text(max_size=300), "profile": st.text(max_size=70)}).map(
        lambda v: json.dumps(v).encode()
    ),
)
segments = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40
).map(lambda s: quote(s, safe=""))
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(response: object) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, response.text  # type: ignore[attr-defined]
    if status >= 400:
        assert response.headers["content-type"].startswith(  # type: ignore[attr-defined]
            "application/problem+json"
        )


@SETTINGS
@given(body=bodies)
def test_issue_with_arbitrary_bodies(
    client: TestClient, admin_headers: dict[str, str], body: bytes
) -> None:
    headers = {**admin_headers, "Content-Type": "application/json"}
    _check(client.post("/admin/v1/certificates", content=body, headers=headers))


@SETTINGS
@given(
    serial=segments,
    action=st.sampled_from(["revoke", "hold", "release", "renew", "history"]),
    body=bodies,
)
def test_status_changes_with_arbitrary_serials(
    client: TestClient, admin_headers: dict[str, str], serial: str, action: str, body: bytes
) -> None:
    headers = {**admin_headers, "Content-Type": "application/json"}
    url = f"/admin/v1/certificates/{serial}/{action}"
    if action == "history":
        _check(client.get(url, headers=headers))
    else:
        _check(client.post(url, content=body, headers=headers))


@SETTINGS
@given(body=st.binary(max_size=300), path=segments)
def test_ocsp_and_pki_never_fail(client: TestClient, body: bytes, path: str) -> None:
    response = client.post(
        "/pki/ocsp", content=body, headers={"Content-Type": "application/ocsp-request"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    _check(client.get(f"/pki/ocsp/{path}"))
    _check(client.get(f"/pki/crl/{path}.crl"))
    _check(client.get(f"/pki/ca/{path}.crt"))


def test_control_characters_in_urls_are_refused(client: TestClient) -> None:
    for path in ("/pki/ca/%00.crt", "/pki/crl/a%0Ab.crl", "/admin/v1/certificates/%00"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert response.json()["code"] == "invalid-input"
