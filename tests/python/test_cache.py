"""The response cache through the official OpenAI Python SDK, unchanged.

One route (`gpt-4o`, see tests/tests/python_cache.rs) says `cache for 10m`; its mock counts
the upstream calls. Each test uses its own prompt, so entries of other tests never hit.
"""

import os

import pytest

from conftest import Mock


@pytest.fixture
def upstream() -> Mock:
    mock = Mock(os.environ["SWITCHYARD_CACHE_MOCK"])
    mock.reset()
    return mock


def messages(prompt: str):
    return [{"role": "user", "content": prompt}]


def create(client, prompt: str, **kwargs):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages(prompt), temperature=0, **kwargs
    )


def streamed_text(raw) -> str:
    text = []
    for chunk in raw.parse():
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
    return "".join(text)


def test_non_streamed_miss_then_hit(client, upstream):
    first = create(client, "cache me, not streamed")
    assert first.headers["x-switchyard-cache"] == "miss"
    second = create(client, "cache me, not streamed")
    assert second.headers["x-switchyard-cache"] == "hit"
    assert second.headers["x-switchyard-route"] == "cached"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage.completion_tokens == first.parse().usage.completion_tokens
    assert len(upstream.requests()) == 1


def test_streamed_miss_then_hit(client, upstream):
    options = {"stream": True, "stream_options": {"include_usage": True}}
    first = create(client, "cache me, streamed", **options)
    assert first.headers["x-switchyard-cache"] == "miss"
    text = streamed_text(first)
    assert text
    second = create(client, "cache me, streamed", **options)
    assert second.headers["x-switchyard-cache"] == "hit"
    usage = None
    replayed = []
    for chunk in second.parse():
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                replayed.append(choice.delta.content)
    assert "".join(replayed) == text
    assert usage is not None and usage.completion_tokens > 0
    # The streamed answer also serves a non-streaming client.
    whole = create(client, "cache me, streamed")
    assert whole.headers["x-switchyard-cache"] == "hit"
    assert whole.parse().choices[0].message.content == text
    assert len(upstream.requests()) == 1


def test_no_store_bypasses_and_sampling_is_not_cached(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=messages("do not keep this"),
        temperature=0,
        extra_headers={"cache-control": "no-store"},
    )
    assert raw.headers["x-switchyard-cache"] == "bypass"
    warm = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages("sampled"), temperature=0.8
    )
    assert warm.headers["x-switchyard-cache"] == "bypass"
    assert create(client, "do not keep this").headers["x-switchyard-cache"] == "miss"
    assert len(upstream.requests()) == 3
