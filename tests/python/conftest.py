"""Fixtures for the SDK tests: where the proxy and its mock upstreams are.

`cargo test -p switchyard-tests --test python_sdk` starts everything and sets these:

SWITCHYARD_URL            the proxy's OpenAI base URL, http://127.0.0.1:PORT/v1 (the Anthropic
                          SDK takes the same URL without /v1)
SWITCHYARD_MOCKS          test_providers.py: JSON {name: url} of the mocks behind its routes
SWITCHYARD_MOCK_A         the mock behind the `chat` and `embeddings` routes (http://127.0.0.1:PORT)
SWITCHYARD_BAD_MOCKS      comma-separated mocks behind the `doomed` route (scripted to fail here)
SWITCHYARD_CUT_MOCK       the mock behind the `cut-stream` route (scripted to cut streams here)
SWITCHYARD_MAX_BODY_BYTES the proxy's --max-body-bytes
"""

import json
import os
import urllib.request

import openai
import pytest


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run these tests through "
            "`cargo test -p switchyard-tests --test python_sdk`, which starts the proxy and mocks"
        )
    return value


class Mock:
    """Control of one switchyard-mock over its /_mock API (plain HTTP, no proxy)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def script(self, script: dict):
        return self._call("POST", "/_mock/script", script)

    def reset(self):
        return self._call("POST", "/_mock/reset", {})

    def requests(self) -> list:
        return self._call("GET", "/_mock/requests")


@pytest.fixture(scope="session")
def base_url() -> str:
    return _env("SWITCHYARD_URL")


@pytest.fixture(scope="session")
def client(base_url: str) -> openai.OpenAI:
    # No SDK retries: every status the proxy sends must reach the test as it was.
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=30)


@pytest.fixture
def mock_a() -> Mock:
    mock = Mock(_env("SWITCHYARD_MOCK_A"))
    mock.reset()
    return mock


@pytest.fixture
def bad_mocks():
    mocks = [Mock(url) for url in _env("SWITCHYARD_BAD_MOCKS").split(",")]
    for mock in mocks:
        mock.reset()
        mock.script({"default": {"kind": "status", "status": 503, "message": "scripted outage"}})
    yield mocks
    for mock in mocks:
        mock.reset()


@pytest.fixture
def cut_mock():
    mock = Mock(_env("SWITCHYARD_CUT_MOCK"))
    mock.reset()
    yield mock
    mock.reset()


@pytest.fixture(scope="session")
def proxy_root(base_url: str) -> str:
    """The proxy without /v1: the Anthropic SDK adds /v1/messages itself."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


@pytest.fixture(scope="session")
def anthropic_client(proxy_root: str):
    import anthropic

    # No SDK retries, as for the OpenAI client.
    return anthropic.Anthropic(base_url=proxy_root, api_key="sk-test", max_retries=0, timeout=30)


@pytest.fixture
def mocks() -> dict:
    """Every mock of test_providers.py by name, reset before and after the test."""
    named = {name: Mock(url) for name, url in json.loads(_env("SWITCHYARD_MOCKS")).items()}
    for mock in named.values():
        mock.reset()
    yield named
    for mock in named.values():
        mock.reset()


@pytest.fixture(scope="session")
def max_body_bytes() -> int:
    return int(_env("SWITCHYARD_MAX_BODY_BYTES"))
