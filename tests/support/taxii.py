"""Reading the TAXII 2.1 API as a member in tests: the media type, the objects of the shared
collection."""

from federation.taxii.selectors import ALL_COLLECTION

TAXII = "application/taxii+json;version=2.1"
ROOT = "/taxii2/shared/"
OBJECTS = f"{ROOT}collections/{ALL_COLLECTION}/objects/"


def get(party, url, params=None, **headers):
    headers.setdefault("HTTP_ACCEPT", TAXII)
    response = party.client.get(url, params or {}, **headers)
    assert response["Content-Type"] == TAXII, response.content
    return response


def objects(party, url=OBJECTS, **params) -> list[dict]:
    response = get(party, url, params)
    assert response.status_code == 200, response.json()
    return response.json().get("objects", [])
