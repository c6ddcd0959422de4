"""The official OpenAI Python SDK, unchanged, against switchyard-proxy.

Routes (see tests/tests/python_sdk.rs): `gpt-4o` and `text-embedding-3-small` go to mock A;
`doomed` to two mocks scripted here to answer 503; `cut-stream` to a mock scripted here to cut
its stream. Mocks answer 16 one-word tokens; prompt tokens are ceil(characters / 4).
"""

import math
import time

import openai
import pytest

try:
    import httpx2 as httpx  # what openai 3.x is built on
except ImportError:  # pragma: no cover - older SDKs
    import httpx

MESSAGES = [{"role": "user", "content": "Say hello to the gateway."}]
PROMPT_TOKENS = math.ceil(len(MESSAGES[0]["content"]) / 4)
COMPLETION_TOKENS = 16


def chat(client, **kwargs):
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **kwargs)


# --- chat, non-streaming -------------------------------------------------------------


def test_chat_completion_content_usage_and_headers(client, mock_a):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.status_code == 200
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert len(choice.message.content.split()) == COMPLETION_TOKENS
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    assert completion.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS

    headers = raw.headers
    assert "chat" in headers.get("x-switchyard-route", ""), dict(headers)
    assert "mock-a" in headers.get("x-switchyard-provider", ""), dict(headers)
    assert "gpt-4o" in headers.get("x-switchyard-model", ""), dict(headers)
    assert headers.get("x-switchyard-attempts") == "1", dict(headers)

    sent = mock_a.requests()
    assert len(sent) == 1
    assert sent[0]["path"] == "/v1/chat/completions"
    assert sent[0]["body"]["model"] == "gpt-4o"


def test_unknown_request_fields_pass_through(client, mock_a):
    completion = chat(
        client,
        max_tokens=4,
        extra_body={"switchyard_passthrough": {"kept": [1, 2]}},
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 4
    body = mock_a.requests()[-1]["body"]
    assert body["switchyard_passthrough"] == {"kept": [1, 2]}
    assert body["max_tokens"] == 4


# --- chat, streaming -----------------------------------------------------------------


def test_stream_matches_the_non_streamed_answer(client, mock_a):
    expected = chat(client).choices[0].message.content
    chunks = list(chat(client, stream=True))

    assert len(chunks) >= COMPLETION_TOKENS
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert all(c.usage is None for c in chunks)


def test_stream_include_usage_ends_with_a_usage_chunk(client, mock_a):
    chunks = list(chat(client, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == COMPLETION_TOKENS
    assert last.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_chunks_arrive_as_they_are_generated(client, mock_a):
    # 20 tokens/s upstream: 16 tokens take 0.75 s; a buffering proxy would deliver all at once.
    mock_a.script({"behaviour": {"tokens_per_second": 20}})
    try:
        arrivals = [time.monotonic() for _ in chat(client, stream=True)]
    finally:
        mock_a.reset()
    assert len(arrivals) >= COMPLETION_TOKENS
    assert arrivals[-1] - arrivals[0] >= 0.3, arrivals


# --- embeddings and models -----------------------------------------------------------


def test_embeddings(client, mock_a):
    # The SDK asks for base64 by default and decodes it.
    result = client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 1536 for d in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 4

    floats = client.embeddings.create(
        model="text-embedding-3-small", input="hello", dimensions=8, encoding_format="float"
    )
    assert len(floats.data[0].embedding) == 8
    norm = math.sqrt(sum(x * x for x in floats.data[0].embedding))
    assert abs(norm - 1.0) < 1e-3


def test_models_lists_what_the_policies_expose(client):
    models = client.models.list()
    ids = {m.id for m in models}
    assert {"gpt-4o", "text-embedding-3-small", "doomed", "cut-stream"} <= ids, ids
    assert all(m.object == "model" for m in models)


# --- errors --------------------------------------------------------------------------


def assert_openai_error_body(response):
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"], error
    assert "type" in error and "code" in error, error


def test_malformed_json_is_400(client, base_url):
    raw = httpx.post(
        base_url + "/chat/completions",
        content=b'{"model": "gpt-4o", "messages": [',
        headers={"content-type": "application/json", "authorization": "Bearer sk-test"},
        timeout=30,
    )
    assert raw.status_code == 400, raw.text
    assert_openai_error_body(raw)

    with pytest.raises(openai.BadRequestError) as caught:
        client.post(
            "/chat/completions",
            cast_to=object,
            content=b"{not json",
            options={"headers": {"content-type": "application/json"}},
        )
    assert caught.value.status_code == 400


def test_missing_model_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", cast_to=object, body={"messages": MESSAGES})
    assert caught.value.status_code == 400
    assert_openai_error_body(caught.value.response)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert caught.value.status_code == 404
    assert_openai_error_body(caught.value.response)


def test_oversized_body_is_413(client, max_body_bytes):
    huge = [{"role": "user", "content": "x" * (2 * max_body_bytes)}]
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=huge)
    assert caught.value.status_code == 413
    assert_openai_error_body(caught.value.response)


def test_every_candidate_failing_is_a_5xx_after_trying_each(client, bad_mocks):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="doomed", messages=MESSAGES)
    assert caught.value.status_code in (502, 503), caught.value
    assert isinstance(caught.value, openai.InternalServerError)
    assert_openai_error_body(caught.value.response)
    for mock in bad_mocks:
        assert len(mock.requests()) >= 1, f"{mock.url} was never tried"


def test_every_candidate_failing_a_stream_is_a_5xx_before_it_starts(client, bad_mocks):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="doomed", messages=MESSAGES, stream=True)
    assert caught.value.status_code in (502, 503), caught.value


def test_a_stream_cut_upstream_never_finishes_cleanly(client, cut_mock):
    # The upstream sends its role chunk and two tokens, then drops the connection.
    cut_mock.script({"faults": [{"kind": "cut_stream", "after_chunks": 3}]})
    chunks = []
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in client.chat.completions.create(model="cut-stream", messages=MESSAGES, stream=True):
            chunks.append(chunk)
    assert not any(c.choices and c.choices[0].finish_reason for c in chunks), chunks
    assert len(cut_mock.requests()) == 1
