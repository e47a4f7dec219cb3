"""The standalone verifier's hub client over Django's test client, for in-process verifier tests."""

from concordat_client import verifier


class InProcessHub(verifier.HubClient):
    """The verifier's hub client over Django's test client; records every request."""

    def __init__(self, client, rewrite=None) -> None:
        self.client = client
        self.base_url = "/api/v1/log"
        self.requests: list[tuple[str, dict]] = []
        self.rewrite = rewrite

    def get(self, path: str, **params) -> bytes:
        self.requests.append((path, params))
        response = self.client.get(self.base_url + path, params)
        if response.status_code != 200:
            raise verifier.HubError(f"GET {path} answered {response.status_code}")
        if self.rewrite:
            return self.rewrite(path, params, response.content)
        return response.content
