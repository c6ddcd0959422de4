"""The official Anthropic and OpenAI Python SDKs, unchanged, against switchyard-proxy with
upstreams of every wire format (see tests/tests/python_sdk.rs for the routes):

model                 route                   upstream (mock name, type)
via-openai            via-openai              oai, openai-compatible
claude-mock           claude                  claude, anthropic
gemini-2.0-flash      gemini                  gem, gemini
cross-failover        cross-failover          flaky (openai, scripted 503) -> claude
classified-failover   classified-failover     busy (anthropic) -> gem on overloaded/rate_limited
gemini-failover       gemini-failover         gem-busy (gemini) -> claude on overloaded/rate_limited

Mocks answer 16 one-word tokens; prompt tokens are ceil(characters / 4); a request that offers
tools gets a deterministic call of the first tool unless it hands back a tool result.
"""

import json
import math
import time

import anthropic
import openai

import pytest

try:
    import httpx2 as httpx  # what openai 3.x is built on
except ImportError:  # pragma: no cover - older SDKs
    import httpx

PROMPT = "Say hello to the gateway."
PROMPT_TOKENS = math.ceil(len(PROMPT) / 4)
COMPLETION_TOKENS = 16

# Each model name and the mock that serves it.
TARGETS = {
    "via-openai": "oai",
    "claude-mock": "claude",
    "gemini-2.0-flash": "gem",
}

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER_SCHEMA}
]
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    }
]


def upstream_paths(mock) -> list:
    return [entry["path"] for entry in mock.requests()]


def assert_served_by(mocks, name: str, count: int = 1):
    """`name` got `count` API requests and no other mock got any."""
    for other, mock in mocks.items():
        sent = mock.requests()
        if other == name:
            assert len(sent) == count, (name, sent)
        else:
            assert sent == [], (other, sent)


def assert_upstream_wire(mock_name: str, entry: dict):
    """The request reached the mock in its own wire format, with its own credentials."""
    if mock_name == "claude":
        assert entry["path"] == "/v1/messages", entry
        assert entry["headers"].get("x-api-key") == "[redacted]", entry["headers"]
        assert entry["headers"].get("anthropic-version"), entry["headers"]
        assert isinstance(entry["body"]["max_tokens"], int)
    elif mock_name == "gem":
        assert entry["path"].startswith("/v1beta/models/gemini-2.0-flash:"), entry
        assert entry["body"]["contents"], entry
    else:
        assert entry["path"] == "/v1/chat/completions", entry
        assert entry["body"]["model"] == "gpt-4o"


# --- the Anthropic SDK on /v1/messages --------------------------------------------------

ANTHROPIC_MODELS = list(TARGETS)


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_message(anthropic_client, mocks, model):
    raw = anthropic_client.messages.with_raw_response.create(
        model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    )
    assert raw.status_code == 200
    message = raw.parse()
    assert isinstance(message, anthropic.types.Message)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id
    assert message.stop_reason == "end_turn"
    assert len(message.content) == 1
    assert message.content[0].type == "text"
    assert len(message.content[0].text.split()) == COMPLETION_TOKENS
    assert message.usage.input_tokens == PROMPT_TOKENS
    assert message.usage.output_tokens == COMPLETION_TOKENS

    name = TARGETS[model]
    assert_served_by(mocks, name)
    assert_upstream_wire(name, mocks[name].requests()[0])


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_stream(anthropic_client, mocks, model):
    with anthropic_client.messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == COMPLETION_TOKENS, text
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == COMPLETION_TOKENS
    assert final.usage.input_tokens == PROMPT_TOKENS
    assert_served_by(mocks, TARGETS[model])


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_raw_event_sequence(anthropic_client, mocks, model):
    events = list(
        anthropic_client.messages.create(
            model=model,
            max_tokens=256,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
        )
    )
    types = [e.type for e in events]
    assert types[0] == "message_start", types
    assert types[-1] == "message_stop", types
    assert types[-2] == "message_delta", types
    assert "content_block_start" in types and "content_block_stop" in types, types
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert deltas and all(d.delta.type == "text_delta" for d in deltas)
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == COMPLETION_TOKENS


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_tool_use_and_result(anthropic_client, mocks, model):
    question = {"role": "user", "content": "What is the weather in Paris?"}
    message = anthropic_client.messages.create(
        model=model, max_tokens=256, messages=[question], tools=ANTHROPIC_TOOLS
    )
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 1, message.content
    use = uses[0]
    assert use.name == "get_weather"
    assert use.id
    assert use.input["unit"] == "celsius"
    assert isinstance(use.input["city"], str) and use.input["city"]

    name = TARGETS[model]
    sent = mocks[name].requests()[0]["body"]
    if name == "oai":
        assert sent["tools"][0]["function"]["name"] == "get_weather"
    elif name == "gem":
        declarations = sent["tools"][0]["functionDeclarations"]
        assert declarations[0]["name"] == "get_weather"
    else:
        assert sent["tools"][0]["name"] == "get_weather"

    answer = anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C, sunny"}],
            },
        ],
        tools=ANTHROPIC_TOOLS,
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text"
    assert len(answer.content[0].text.split()) == COMPLETION_TOKENS


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_streamed_tool_use(anthropic_client, mocks, model):
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "any"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = [b for b in final.content if b.type == "tool_use"][0]
    assert use.name == "get_weather"
    assert use.input["unit"] == "celsius"
    json_deltas = [
        e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json_deltas, [e.type for e in events]


def test_anthropic_sdk_cache_usage_passes_through(anthropic_client, mocks):
    # The mock counts blocks up to the first cache_control as read from the cache, and those
    # after it up to the last as written: 400 chars = 100 tokens read, 200 = 50 written.
    message = anthropic_client.messages.create(
        model="claude-mock",
        max_tokens=256,
        system=[
            {"type": "text", "text": "x" * 400, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "y" * 200, "cache_control": {"type": "ephemeral"}},
        ],
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.cache_creation_input_tokens == 50
    assert message.usage.input_tokens == PROMPT_TOKENS
    sent = mocks["claude"].requests()[0]["body"]
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}, sent


@pytest.mark.parametrize("model", ["via-openai", "claude-mock", "gemini-2.0-flash"])
def test_anthropic_sdk_bad_request_has_anthropic_shape(anthropic_client, mocks, model):
    mocks[TARGETS[model]].script({"default": {"kind": "status", "status": 400, "message": "bad field"}})
    with pytest.raises(anthropic.BadRequestError) as raised:
        anthropic_client.messages.create(
            model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
        )
    assert raised.value.status_code == 400
    body = raised.value.body
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    assert body["error"]["type"] == "invalid_request_error", body
    assert body["error"]["message"], body


@pytest.mark.parametrize("model", ["via-openai", "claude-mock", "gemini-2.0-flash"])
def test_anthropic_sdk_upstream_rate_limit_has_anthropic_shape(anthropic_client, mocks, model):
    # 429 is a failover trigger; with no other candidate the proxy may pass it on or answer
    # that all candidates failed. Either way the body is Anthropic's.
    mocks[TARGETS[model]].script({"default": {"kind": "rate_limit", "retry_after": 1}})
    with pytest.raises(anthropic.APIStatusError) as raised:
        anthropic_client.messages.create(
            model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
        )
    assert raised.value.status_code in (429, 503, 529), raised.value
    body = raised.value.body
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    assert body["error"]["type"] in ("rate_limit_error", "overloaded_error", "api_error"), body


# --- the OpenAI SDK on /v1/chat/completions, Anthropic and Gemini upstreams --------------

# The same OpenAI SDK calls against every upstream type.
OPENAI_MODELS = ["via-openai", "claude-mock", "gemini-2.0-flash"]


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_chat(client, mocks, model):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": PROMPT}]
    )
    assert raw.status_code == 200
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert len(choice.message.content.split()) == COMPLETION_TOKENS
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    assert completion.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    name = TARGETS[model]
    assert name in raw.headers.get("x-switchyard-provider", ""), dict(raw.headers)
    assert_served_by(mocks, name)
    assert_upstream_wire(name, mocks[name].requests()[0])


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_stream_with_usage(client, mocks, model):
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == COMPLETION_TOKENS, text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert usage, "a usage chunk at the end"
    assert usage[-1].prompt_tokens == PROMPT_TOKENS
    assert usage[-1].completion_tokens == COMPLETION_TOKENS
    assert_served_by(mocks, TARGETS[model])


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_tool_call_and_result(client, mocks, model):
    question = {"role": "user", "content": "What is the weather in Paris?"}
    completion = client.chat.completions.create(model=model, messages=[question], tools=OPENAI_TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments["unit"] == "celsius"

    name = TARGETS[model]
    sent = mocks[name].requests()[0]["body"]
    if name == "gem":
        assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    elif name == "oai":
        assert sent["tools"] == OPENAI_TOOLS, sent
    else:
        assert sent["tools"][0]["name"] == "get_weather"
        assert sent["tools"][0]["input_schema"]["required"] == ["city", "unit"]

    answer = client.chat.completions.create(
        model=model,
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"},
        ],
        tools=OPENAI_TOOLS,
    )
    assert answer.choices[0].finish_reason == "stop"
    assert len(answer.choices[0].message.content.split()) == COMPLETION_TOKENS


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_streamed_tool_call(client, mocks, model):
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=OPENAI_TOOLS,
            tool_choice="required",
            stream=True,
        )
    )
    name, arguments, ids = "", "", set()
    for chunk in chunks:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            assert delta.index == 0
            if delta.id:
                ids.add(delta.id)
            if delta.function and delta.function.name:
                name += delta.function.name
            if delta.function and delta.function.arguments:
                arguments += delta.function.arguments
    assert name == "get_weather"
    assert len(ids) == 1
    assert json.loads(arguments)["unit"] == "celsius"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


# --- failover across providers ------------------------------------------------------------


def test_failover_from_openai_503_to_anthropic(client, mocks):
    mocks["flaky"].script({"default": {"kind": "status", "status": 503, "message": "scripted outage"}})
    raw = client.chat.completions.with_raw_response.create(
        model="cross-failover", messages=[{"role": "user", "content": PROMPT}]
    )
    assert raw.status_code == 200
    completion = raw.parse()
    # A well-formed OpenAI response, though Anthropic answered.
    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.choices[0].message.role == "assistant"
    assert len(completion.choices[0].message.content.split()) == COMPLETION_TOKENS
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == PROMPT_TOKENS
    assert completion.usage.completion_tokens == COMPLETION_TOKENS
    assert "claude" in raw.headers.get("x-switchyard-provider", ""), dict(raw.headers)
    assert raw.headers.get("x-switchyard-attempts") == "2", dict(raw.headers)
    assert upstream_paths(mocks["flaky"]) == ["/v1/chat/completions"]
    assert upstream_paths(mocks["claude"]) == ["/v1/messages"]


def test_failover_from_openai_503_to_anthropic_streamed(client, mocks):
    mocks["flaky"].script({"default": {"kind": "status", "status": 503}})
    chunks = list(
        client.chat.completions.create(
            model="cross-failover",
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == COMPLETION_TOKENS, text
    assert upstream_paths(mocks["claude"]) == ["/v1/messages"]


def test_failover_with_the_anthropic_sdk(anthropic_client, mocks):
    mocks["flaky"].script({"default": {"kind": "status", "status": 503}})
    message = anthropic_client.messages.create(
        model="cross-failover", max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    )
    assert message.type == "message"
    assert len(message.content[0].text.split()) == COMPLETION_TOKENS
    assert upstream_paths(mocks["claude"]) == ["/v1/messages"]


def test_classified_overload_fails_over_to_gemini(client, mocks):
    mocks["busy"].script({"default": {"kind": "status", "status": 529}})
    completion = client.chat.completions.create(
        model="classified-failover", messages=[{"role": "user", "content": PROMPT}]
    )
    assert len(completion.choices[0].message.content.split()) == COMPLETION_TOKENS
    assert upstream_paths(mocks["busy"]) == ["/v1/messages"]
    assert len(mocks["gem"].requests()) == 1


def test_classified_bad_request_does_not_fail_over(client, mocks):
    mocks["busy"].script({"default": {"kind": "status", "status": 400, "message": "bad tool schema"}})
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="classified-failover", messages=[{"role": "user", "content": PROMPT}]
        )
    assert raised.value.status_code == 400
    # Returned in the shape of the API the client called: OpenAI's.
    body = raised.value.body
    assert isinstance(body, dict) and body.get("message"), body
    assert mocks["gem"].requests() == []


# --- errors inside streams ------------------------------------------------------------------


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_sees_an_upstream_error_event_mid_stream(client, mocks, model):
    # Anthropic: message_start, content_block_start, ping and 2 words, then `event: error`;
    # OpenAI: the role chunk and 2 words; Gemini: 2 words; then a `data: {"error": ...}` line.
    after = {"claude": 5, "oai": 3, "gem": 2}[TARGETS[model]]
    mocks[TARGETS[model]].script({"faults": [{"kind": "stream_error", "after_chunks": after}]})
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
            assert not (chunk.choices and chunk.choices[0].finish_reason == "stop"), "no clean end"
    assert len("".join(received).split()) == 2, received


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_sees_an_upstream_error_mid_stream(anthropic_client, mocks, model):
    # OpenAI: the role chunk and 2 words, then a `data: {"error": ...}` line; Gemini: 2 words;
    # Anthropic: message_start, content_block_start, ping, 2 words, then `event: error`.
    after = {"claude": 5, "oai": 3, "gem": 2}[TARGETS[model]]
    mocks[TARGETS[model]].script({"faults": [{"kind": "stream_error", "after_chunks": after}]})
    types = []
    with pytest.raises(anthropic.APIError):
        with anthropic_client.messages.stream(
            model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
        ) as stream:
            for event in stream:
                types.append(event.type)
    assert "message_start" in types, types
    assert "message_stop" not in types, types


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_sees_a_cut_upstream_stream_as_an_error(client, mocks, model):
    after = {"claude": 5, "oai": 3, "gem": 2}[TARGETS[model]]
    mocks[TARGETS[model]].script({"faults": [{"kind": "cut_stream", "after_chunks": after}]})
    finishes = []
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            if chunk.choices and chunk.choices[0].finish_reason:
                finishes.append(chunk.choices[0].finish_reason)
    assert "stop" not in finishes, finishes


# --- translation details: system prompt, length cap, finish reasons ------------------------


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_system_prompt_and_max_tokens_reach_the_upstream(anthropic_client, mocks, model):
    message = anthropic_client.messages.create(
        model=model,
        max_tokens=3,
        system="You are terse.",
        messages=[{"role": "user", "content": PROMPT}],
    )
    # Three words, cut by max_tokens, in every provider's terms mapped back to Anthropic's.
    assert message.stop_reason == "max_tokens"
    assert len(message.content[0].text.split()) == 3
    assert message.usage.output_tokens == 3
    assert message.usage.input_tokens == math.ceil((len("You are terse.") + len(PROMPT)) / 4)

    name = TARGETS[model]
    sent = mocks[name].requests()[0]["body"]
    if name == "oai":
        assert sent["messages"][0] == {"role": "system", "content": "You are terse."}, sent
        assert 3 in (sent.get("max_tokens"), sent.get("max_completion_tokens")), sent
    elif name == "gem":
        assert sent["systemInstruction"]["parts"][0]["text"] == "You are terse.", sent
        assert sent["generationConfig"]["maxOutputTokens"] == 3, sent
    else:
        assert sent["system"] == "You are terse.", sent
        assert sent["max_tokens"] == 3, sent


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_length_cap_maps_to_finish_length(client, mocks, model):
    completion = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": PROMPT},
        ],
        max_tokens=3,
    )
    assert completion.choices[0].finish_reason == "length"
    assert len(completion.choices[0].message.content.split()) == 3
    assert completion.usage.completion_tokens == 3
    name = TARGETS[model]
    sent = mocks[name].requests()[0]["body"]
    if name == "gem":
        assert sent["systemInstruction"]["parts"][0]["text"] == "You are terse.", sent
        assert all(c.get("role") != "system" for c in sent["contents"]), sent
    elif name == "oai":
        assert sent["messages"][0] == {"role": "system", "content": "You are terse."}, sent
    else:
        system = sent["system"]
        text = system if isinstance(system, str) else "".join(b["text"] for b in system)
        assert text == "You are terse.", sent
        assert all(m["role"] != "system" for m in sent["messages"]), sent


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_streamed_length_cap(client, mocks, model):
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=3,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 3, text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]


# --- the model list ---------------------------------------------------------------------


def test_models_list_every_route_with_its_provider(client):
    owners = {m.id: m.owned_by for m in client.models.list()}
    assert owners.get("via-openai") == "oai", owners
    assert owners.get("claude-mock") == "claude", owners
    assert owners.get("gemini-2.0-flash") == "gem", owners
    assert owners.get("cross-failover") == "flaky", owners
    assert client.models.retrieve("claude-mock").owned_by == "claude"


# --- stop sequences -----------------------------------------------------------------------


def _third_word(text: str) -> str:
    return " " + text.split(" ")[2]


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_stop_sequences_reach_every_upstream(client, mocks, model):
    messages = [{"role": "user", "content": PROMPT}]
    whole = client.chat.completions.create(model=model, messages=messages).choices[0].message.content
    stop = _third_word(whole)
    completion = client.chat.completions.create(model=model, messages=messages, stop=[stop])
    assert completion.choices[0].message.content == whole[: whole.index(stop)]
    assert completion.choices[0].finish_reason == "stop"
    sent = mocks[TARGETS[model]].requests()[1]["body"]
    if TARGETS[model] == "gem":
        assert sent["generationConfig"]["stopSequences"] == [stop], sent
    elif TARGETS[model] == "claude":
        assert sent["stop_sequences"] == [stop], sent
    else:
        assert sent["stop"] in ([stop], stop), sent


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_stop_sequences(anthropic_client, mocks, model):
    messages = [{"role": "user", "content": PROMPT}]
    whole = anthropic_client.messages.create(model=model, max_tokens=256, messages=messages)
    text = whole.content[0].text
    stop = _third_word(text)
    message = anthropic_client.messages.create(
        model=model, max_tokens=256, messages=messages, stop_sequences=[stop]
    )
    assert message.content[0].text == text[: text.index(stop)]
    # OpenAI and Gemini do not say which sequence stopped them.
    assert message.stop_reason in ("stop_sequence", "end_turn"), message


def test_anthropic_sdk_stop_sequence_passes_through(anthropic_client, mocks):
    messages = [{"role": "user", "content": PROMPT}]
    text = anthropic_client.messages.create(
        model="claude-mock", max_tokens=256, messages=messages
    ).content[0].text
    stop = _third_word(text)
    message = anthropic_client.messages.create(
        model="claude-mock", max_tokens=256, messages=messages, stop_sequences=[stop]
    )
    # The mock answered stop_reason "stop_sequence" with the sequence: Anthropic to Anthropic
    # should keep it.
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == stop


# --- text and a tool call in one answer (multi-block translation) ---------------------------

PREAMBLE = "Let me check the weather."


def _script_text_then_call(mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "tool_call", "text": PREAMBLE}]})


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_text_and_tool_call(client, mocks, model):
    _script_text_then_call(mocks, model)
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather?"}], tools=OPENAI_TOOLS
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == PREAMBLE
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"]
    assert json.loads(choice.message.tool_calls[0].function.arguments)["unit"] == "celsius"


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_streamed_text_and_tool_call(client, mocks, model):
    _script_text_then_call(mocks, model)
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=OPENAI_TOOLS,
            stream=True,
        )
    )
    text, name, arguments, indexes = "", "", "", set()
    for chunk in chunks:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            indexes.add(call.index)
            if call.function and call.function.name:
                name += call.function.name
            if call.function and call.function.arguments:
                arguments += call.function.arguments
    assert text == PREAMBLE
    assert indexes == {0}, "the first tool call is index 0 even after a text block"
    assert name == "get_weather"
    assert json.loads(arguments)["unit"] == "celsius"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_text_and_tool_use(anthropic_client, mocks, model):
    _script_text_then_call(mocks, model)
    message = anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=ANTHROPIC_TOOLS,
    )
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[0].text == PREAMBLE
    assert message.content[1].name == "get_weather"
    assert message.content[1].input["unit"] == "celsius"


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_streamed_text_and_tool_use(anthropic_client, mocks, model):
    _script_text_then_call(mocks, model)
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=ANTHROPIC_TOOLS,
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [(e.index, e.content_block.type) for e in events if e.type == "content_block_start"]
    assert starts == [(0, "text"), (1, "tool_use")], starts
    assert final.content[0].text == PREAMBLE
    assert final.content[1].input["unit"] == "celsius"
    assert final.stop_reason == "tool_use"


# --- tool_choice, sampling parameters and images reach the upstream in its terms -----------

TIME_SCHEMA = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
OPENAI_TWO_TOOLS = OPENAI_TOOLS + [
    {"type": "function", "function": {"name": "get_time", "description": "Time", "parameters": TIME_SCHEMA}}
]
ANTHROPIC_TWO_TOOLS = ANTHROPIC_TOOLS + [
    {"name": "get_time", "description": "Time", "input_schema": TIME_SCHEMA}
]


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_tool_choice_is_honoured(client, mocks, model):
    messages = [{"role": "user", "content": "Time?"}]
    # The mock calls the first tool unless told otherwise: a named choice must arrive.
    named = client.chat.completions.create(
        model=model,
        messages=messages,
        tools=OPENAI_TWO_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert named.choices[0].message.tool_calls[0].function.name == "get_time"
    assert "zone" in json.loads(named.choices[0].message.tool_calls[0].function.arguments)
    none = client.chat.completions.create(
        model=model, messages=messages, tools=OPENAI_TWO_TOOLS, tool_choice="none"
    )
    assert none.choices[0].finish_reason == "stop"
    assert not none.choices[0].message.tool_calls
    assert none.choices[0].message.content


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_tool_choice_is_honoured(anthropic_client, mocks, model):
    messages = [{"role": "user", "content": "Time?"}]
    named = anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        messages=messages,
        tools=ANTHROPIC_TWO_TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
    )
    uses = [b for b in named.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_time"], named.content
    none = anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        messages=messages,
        tools=ANTHROPIC_TWO_TOOLS,
        tool_choice={"type": "none"},
    )
    assert none.stop_reason == "end_turn"
    assert [b.type for b in none.content] == ["text"]


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_sampling_parameters_reach_the_upstream(client, mocks, model):
    client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0.25,
        top_p=0.5,
    )
    sent = mocks[TARGETS[model]].requests()[0]["body"]
    if TARGETS[model] == "gem":
        config = sent["generationConfig"]
        assert config["temperature"] == 0.25 and config["topP"] == 0.5, sent
    else:
        assert sent["temperature"] == 0.25 and sent["top_p"] == 0.5, sent


# A 1x1 transparent PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def _image_of(name: str, sent: dict):
    """The (media type, base64 data) of the image in the last user turn the mock received."""
    if name == "gem":
        parts = sent["contents"][-1]["parts"]
        inline = [p.get("inlineData") or p.get("inline_data") for p in parts if "inlineData" in p or "inline_data" in p]
        assert inline, parts
        return inline[0].get("mimeType") or inline[0].get("mime_type"), inline[0]["data"]
    content = sent["messages"][-1]["content"]
    if name == "claude":
        images = [b for b in content if b["type"] == "image"]
        assert images, content
        source = images[0]["source"]
        assert source["type"] == "base64", source
        return source["media_type"], source["data"]
    images = [p for p in content if p["type"] == "image_url"]
    assert images, content
    url = images[0]["image_url"]["url"]
    head, data = url.split(",", 1)
    return head[len("data:") : -len(";base64")], data


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_image_reaches_the_upstream(client, mocks, model):
    client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    name = TARGETS[model]
    assert _image_of(name, mocks[name].requests()[0]["body"]) == ("image/png", PNG)


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_image_reaches_the_upstream(anthropic_client, mocks, model):
    anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            }
        ],
    )
    name = TARGETS[model]
    assert _image_of(name, mocks[name].requests()[0]["body"]) == ("image/png", PNG)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "rate_limit", "retry_after": 1},  # 429 RESOURCE_EXHAUSTED: rate_limited
        {"kind": "status", "status": 503},  # 503 UNAVAILABLE "overloaded": overloaded
    ],
    ids=["resource-exhausted", "unavailable"],
)
def test_classified_gemini_errors_fail_over_to_anthropic(client, mocks, fault):
    mocks["gem-busy"].script({"default": fault})
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-failover", messages=[{"role": "user", "content": PROMPT}]
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert len(completion.choices[0].message.content.split()) == COMPLETION_TOKENS
    assert "claude" in raw.headers.get("x-switchyard-provider", ""), dict(raw.headers)
    assert len(mocks["gem-busy"].requests()) >= 1
    assert upstream_paths(mocks["claude"]) == ["/v1/messages"]
    if fault["kind"] == "rate_limit":
        # The RetryInfo delay keeps gem-busy aside: the next request does not try it...
        seen = len(mocks["gem-busy"].requests())
        raw = client.chat.completions.with_raw_response.create(
            model="gemini-failover", messages=[{"role": "user", "content": PROMPT}]
        )
        assert len(mocks["gem-busy"].requests()) == seen
        assert "rate limited for" in raw.headers.get("x-switchyard-failover", ""), dict(raw.headers)
        # ...until it has passed.
        time.sleep(1.2)


def test_gemini_invalid_argument_does_not_fail_over(anthropic_client, mocks):
    mocks["gem-busy"].script({"default": {"kind": "status", "status": 400, "message": "bad schema"}})
    with pytest.raises(anthropic.BadRequestError) as raised:
        anthropic_client.messages.create(
            model="gemini-failover", max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
        )
    # Returned in the shape of the API the client called: Anthropic's.
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert mocks["claude"].requests() == []


# --- Anthropic to Anthropic: what only Anthropic has survives the gateway ----------------


def test_anthropic_sdk_thinking_request_passes_through(anthropic_client, mocks):
    anthropic_client.messages.create(
        model="claude-mock",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": PROMPT}],
    )
    sent = mocks["claude"].requests()[0]["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}, sent


def test_anthropic_sdk_thinking_blocks_come_back(anthropic_client, mocks):
    message = anthropic_client.messages.create(
        model="claude-mock",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert [b.type for b in message.content] == ["thinking", "text"], message.content
    assert message.content[0].signature


def test_anthropic_sdk_streamed_thinking_comes_back(anthropic_client, mocks):
    with anthropic_client.messages.stream(
        model="claude-mock",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": PROMPT}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"], final.content
    assert final.content[0].signature


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_sees_a_cut_upstream_stream_as_an_error(anthropic_client, mocks, model):
    after = {"claude": 5, "oai": 3, "gem": 2}[TARGETS[model]]
    mocks[TARGETS[model]].script({"faults": [{"kind": "cut_stream", "after_chunks": after}]})
    types = []
    with pytest.raises((anthropic.APIError, httpx.HTTPError)):
        with anthropic_client.messages.stream(
            model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
        ) as stream:
            for event in stream:
                types.append(event.type)
    assert "message_stop" not in types, types


# --- content-policy refusals keep their meaning across providers -------------------------


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_refusal_is_content_filter(client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "refusal"}]})
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}]
    )
    assert completion.choices[0].finish_reason == "content_filter"
    assert not completion.choices[0].message.content


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_streamed_refusal_is_content_filter(client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "refusal"}]})
    chunks = list(
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        )
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["content_filter"]
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_refusal_is_refusal(anthropic_client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "refusal"}]})
    message = anthropic_client.messages.create(
        model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    )
    assert message.stop_reason == "refusal"
    assert not any(b.type == "text" and b.text for b in message.content)


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_streamed_refusal_is_refusal(anthropic_client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "refusal"}]})
    with anthropic_client.messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "refusal"


# --- parallel tool calls --------------------------------------------------------------------


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_parallel_tool_calls(client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "tool_call", "calls": 2}]})
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather and time?"}], tools=OPENAI_TWO_TOOLS
    )
    calls = completion.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    assert json.loads(calls[1].function.arguments)["zone"]
    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_openai_sdk_streamed_parallel_tool_calls(client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "tool_call", "calls": 2}]})
    chunks = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather and time?"}],
        tools=OPENAI_TWO_TOOLS,
        stream=True,
    )
    names, arguments, ids = {}, {}, {}
    for chunk in chunks:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            if call.id:
                ids[call.index] = call.id
            if call.function and call.function.name:
                names[call.index] = names.get(call.index, "") + call.function.name
            if call.function and call.function.arguments:
                arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    assert names == {0: "get_weather", 1: "get_time"}, names
    assert len(set(ids.values())) == 2, ids
    assert json.loads(arguments[0])["unit"] == "celsius"
    assert json.loads(arguments[1])["zone"]


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_parallel_tool_use(anthropic_client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "tool_call", "calls": 2}]})
    message = anthropic_client.messages.create(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather and time?"}],
        tools=ANTHROPIC_TWO_TOOLS,
    )
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert len({u.id for u in uses}) == 2
    assert uses[1].input["zone"]


@pytest.mark.parametrize("model", ANTHROPIC_MODELS)
def test_anthropic_sdk_streamed_parallel_tool_use(anthropic_client, mocks, model):
    mocks[TARGETS[model]].script({"faults": [{"kind": "tool_call", "calls": 2}]})
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather and time?"}],
        tools=ANTHROPIC_TWO_TOOLS,
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert uses[0].input["unit"] == "celsius"
    assert uses[1].input["zone"]
