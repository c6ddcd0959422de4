"""Client keys and budgets through the official OpenAI SDK, unchanged.

Run by `cargo test -p switchyard-tests --test python_budgets`, which starts a mock upstream
and the proxy with keys required and the budgets of that test's config.
"""

import os

import openai
import pytest

URL = os.environ.get("SWITCHYARD_URL", "")
if not URL:
    pytest.fail("SWITCHYARD_URL is not set: run through `cargo test --test python_budgets`")

MESSAGES = [{"role": "user", "content": "Tell me about budgets."}]


def client(key: str) -> openai.OpenAI:
    # No SDK retries: they would hide what the proxy answered.
    return openai.OpenAI(base_url=URL, api_key=key, max_retries=0)


def test_an_unknown_key_is_refused_with_401():
    with pytest.raises(openai.AuthenticationError) as refused:
        client("sk-not-a-key").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert refused.value.status_code == 401
    # The key is never echoed back.
    assert "sk-not-a-key" not in str(refused.value.body)


def test_an_exhausted_budget_answers_429_with_retry_after():
    limited = client("sk-sdk-limited-0123456789")
    for _ in range(2):
        limited.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    with pytest.raises(openai.RateLimitError) as refused:
        limited.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    error = refused.value
    assert error.status_code == 429
    assert error.code == "insufficient_quota"
    retry_after = int(error.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    # Another key is not affected.
    client("sk-sdk-free-0123456789").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=5
    )


def test_an_exhausted_budget_can_downgrade_and_says_so():
    downgraded = client("sk-sdk-downgraded-0123456789")
    first = downgraded.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=5
    )
    assert first.headers["x-switchyard-model"] == "gpt-4o"
    assert "x-switchyard-downgraded" not in first.headers
    second = downgraded.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=5
    )
    assert second.headers["x-switchyard-model"] == "gpt-4o-mini"
    assert "downgrade-after-one" in second.headers["x-switchyard-downgraded"]
    assert second.parse().choices[0].message.content


def test_a_stream_past_its_budget_is_cut_with_an_error_never_a_clean_finish():
    stream = client("sk-sdk-streamer-0123456789").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    received = 0
    finished = False
    with pytest.raises(openai.APIError) as cut:
        for chunk in stream:
            received += 1
            if chunk.choices and chunk.choices[0].finish_reason:
                finished = True
    assert not finished
    assert received > 0, "the cut comes after some tokens, not before the stream starts"
    assert received < 2000
    assert "quota" in str(cut.value).lower() or "budget" in str(cut.value).lower()
