"""The official OpenAI Python SDK's Responses API, unchanged, against switchyard-proxy (routes in
tests/tests/python_responses.rs):

model         route        upstream
gpt-4o        translated   chat (openai-compatible, chat completions only): translated
native        native       native-a / native-b split 50/50 (openai-compatible, responsesApi)
claude-mock   claude       claude (anthropic): translated twice (Responses -> chat -> Messages)
cut-stream    cut          cut (chat only), scripted here to cut its stream
cut-native    cut-native   cut-native (responsesApi), scripted here to cut its stream

Mocks answer 16 one-word tokens; a request that offers tools gets a deterministic call of the
first tool unless it hands back a tool result.
"""

import json
import os

import openai
import pytest

try:
    import httpx2 as httpx  # what openai 3.x is built on
except ImportError:  # pragma: no cover - older SDKs
    import httpx

COMPLETION_TOKENS = 16
PROMPT = "Say hello to the gateway."

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}

# Every model of a route that answers, and the mock(s) behind it.
ANSWERING = {"gpt-4o": ["chat"], "native": ["native-a", "native-b"], "claude-mock": ["claude"]}


def sent(mocks, names):
    """Every request the mocks named received, oldest first per mock."""
    return [r for name in names for r in mocks[name].requests()]


# --- create, whole and streamed ---------------------------------------------------------------


@pytest.mark.parametrize("model", list(ANSWERING))
def test_create_returns_a_response_object(client, mocks, model):
    raw = client.responses.with_raw_response.create(
        model=model, input=PROMPT, instructions="Be brief.", max_output_tokens=200
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-switchyard-route"), dict(raw.headers)
    r = raw.parse()
    assert r.object == "response"
    assert r.id.startswith("resp_")
    assert r.status == "completed"
    assert len(r.output_text.split()) == COMPLETION_TOKENS, r.output_text
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens == COMPLETION_TOKENS
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.instructions == "Be brief."

    (request,) = sent(mocks, ANSWERING[model])
    if model == "gpt-4o":
        assert request["path"] == "/v1/chat/completions"
        assert request["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
        assert request["body"]["max_tokens"] == 200
    elif model == "native":
        assert request["path"] == "/v1/responses"
        assert request["body"]["input"] == PROMPT
        assert request["body"]["instructions"] == "Be brief."
    else:
        assert request["path"] == "/v1/messages"
        system = request["body"]["system"]
        assert system == "Be brief." or system == [{"type": "text", "text": "Be brief."}], system


@pytest.mark.parametrize("model", list(ANSWERING))
def test_stream_events_in_the_responses_shape(client, mocks, model):
    events = list(client.responses.create(model=model, input=PROMPT, stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    for expected in [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]:
        assert expected in types, types
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert len(text.split()) == COMPLETION_TOKENS, text
    done = events[-1].response
    assert done.status == "completed"
    assert done.output_text == text
    assert done.usage.output_tokens == COMPLETION_TOKENS
    assert done.id == events[0].response.id


# --- function calling ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(ANSWERING))
def test_function_call_round_trip(client, mocks, model):
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.responses.create(model=model, input=[question], tools=[WEATHER_TOOL])
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id
    assert json.loads(call.arguments)["unit"] == "celsius"

    # Hand the call and its output back in full (no stored state needed).
    answer = client.responses.create(
        model=model,
        input=[question, *[o.model_dump(exclude_none=True) for o in first.output],
               {"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"}],
        tools=[WEATHER_TOOL],
        store=False,
    )
    assert answer.status == "completed"
    assert len(answer.output_text.split()) == COMPLETION_TOKENS
    assert not [o for o in answer.output if o.type == "function_call"]

    if model == "gpt-4o":
        body = mocks["chat"].requests()[-1]["body"]
        assert body["tools"][0]["function"]["name"] == "get_weather"
        assert body["messages"][-1] == {
            "role": "tool", "tool_call_id": call.call_id, "content": "18 C, sunny"
        }
        assert body["messages"][-2]["tool_calls"][0]["id"] == call.call_id


def test_streamed_function_call(client, mocks):
    events = list(
        client.responses.create(model="gpt-4o", input="Weather in Paris?", tools=[WEATHER_TOOL],
                                stream=True)
    )
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types, types
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1
    assert json.loads(done[0].arguments)["unit"] == "celsius"
    final = events[-1].response
    call = [o for o in final.output if o.type == "function_call"][0]
    assert call.arguments == done[0].arguments
    assert call.name == "get_weather"


# --- structured output and Codex-style fields ----------------------------------------------------


def test_structured_output_becomes_response_format(client, mocks):
    schema = {"type": "object", "properties": {"greeting": {"type": "string"}},
              "required": ["greeting"], "additionalProperties": False}
    r = client.responses.create(
        model="gpt-4o",
        input=PROMPT,
        text={"format": {"type": "json_schema", "name": "greeting", "schema": schema, "strict": True}},
    )
    assert r.status == "completed"
    assert r.text.format.type == "json_schema"
    body = mocks["chat"].requests()[-1]["body"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "greeting", "schema": schema, "strict": True},
    }


def test_codex_request_shape_is_accepted(client, mocks):
    # What the Codex CLI sends: instructions, input items, store false, include, reasoning,
    # parallel_tool_calls, prompt_cache_key, and fields this gateway has never heard of.
    events = list(
        client.responses.create(
            model="gpt-4o",
            instructions="You are a coding agent.",
            input=[{"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": "list files"}]}],
            tools=[WEATHER_TOOL],
            tool_choice="auto",
            parallel_tool_calls=False,
            store=False,
            stream=True,
            include=["reasoning.encrypted_content"],
            reasoning={"effort": "medium", "summary": "auto"},
            prompt_cache_key="session-1",
            extra_body={"client_metadata": {"x": 1}},
        )
    )
    assert events[-1].type == "response.completed"
    body = mocks["chat"].requests()[-1]["body"]
    assert body["reasoning_effort"] == "medium"
    assert body["parallel_tool_calls"] is False
    assert "store" not in body and "include" not in body


# --- previous_response_id -------------------------------------------------------------------------


def test_three_turns_on_a_translated_target(client, mocks):
    first = client.responses.create(model="gpt-4o", input="Turn one.")
    second = client.responses.create(model="gpt-4o", input="Turn two.", previous_response_id=first.id)
    third = client.responses.create(
        model="gpt-4o", input="Turn three.", previous_response_id=second.id, stream=True
    )
    events = list(third)
    assert events[-1].type == "response.completed"
    assert events[-1].response.previous_response_id == second.id

    bodies = [r["body"] for r in mocks["chat"].requests()]
    assert [len(b["messages"]) for b in bodies] == [1, 3, 5]
    last = bodies[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "user"]
    assert last[1]["content"] == first.output_text
    assert last[3]["content"] == second.output_text

    # The gateway holds them: GET and DELETE, then the id is gone.
    held = client.responses.retrieve(second.id)
    assert held.id == second.id and held.output_text == second.output_text
    assert held.previous_response_id == first.id
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-4o", input="again", previous_response_id=first.id)
    assert caught.value.body["code"] == "previous_response_not_found"


def test_store_false_keeps_nothing(client, mocks):
    r = client.responses.create(model="gpt-4o", input="Forget me.", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="more", previous_response_id=r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_three_turns_on_a_native_target_stay_with_it(client, mocks):
    # The route splits 50/50 between two Responses servers that each know only their own
    # ids: every turn works only if follow-ups are pinned to the one that answered.
    for _ in range(3):
        r = client.responses.create(model="native", input="Turn one.")
        ids = [r.id]
        for text in ["Turn two.", "Turn three."]:
            r = client.responses.create(model="native", input=text, previous_response_id=r.id)
            assert r.status == "completed"
            ids.append(r.id)
        stream = list(client.responses.create(
            model="native", input="Turn four.", previous_response_id=r.id, stream=True))
        assert stream[-1].type == "response.completed"

    requests = sent(mocks, ["native-a", "native-b"])
    assert len(requests) == 12
    assert all(r["path"] == "/v1/responses" for r in requests)
    follow_ups = [r for r in requests if "previous_response_id" in r["body"]]
    assert len(follow_ups) == 9
    # Each conversation lived on one server: every follow-up names an id that server issued.
    for name in ["native-a", "native-b"]:
        issued = {r["body"]["previous_response_id"] for r in mocks[name].requests()
                  if "previous_response_id" in r["body"]}
        other = "native-b" if name == "native-a" else "native-a"
        assert not issued & {r["body"].get("previous_response_id") for r in mocks[other].requests()}


def test_a_response_a_native_target_keeps_is_retrieved_cancelled_and_deleted_there(client, mocks):
    r = client.responses.create(model="native", input="Keep this.")
    [answered] = [name for name in ["native-a", "native-b"] if mocks[name].requests()]

    held = client.responses.retrieve(r.id)
    assert held.id == r.id and held.output_text == r.output_text
    # Nothing runs in the background: the target's own 400, relayed.
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.cancel(r.id)
    assert "background" in caught.value.message
    client.responses.delete(r.id)
    # The target forgot it: its 404, relayed.
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)

    paths = [(q["method"], q["path"]) for q in mocks[answered].requests()]
    assert paths == [
        ("POST", "/v1/responses"),
        ("GET", f"/v1/responses/{r.id}"),
        ("POST", f"/v1/responses/{r.id}/cancel"),
        ("DELETE", f"/v1/responses/{r.id}"),
        ("GET", f"/v1/responses/{r.id}"),
    ]
    other = "native-b" if answered == "native-a" else "native-a"
    assert mocks[other].requests() == []


def test_cancel_of_a_response_the_gateway_keeps_or_never_saw(client):
    r = client.responses.create(model="gpt-4o", input="Done already.")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.cancel(r.id)
    assert "background" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_never_made")


def test_an_id_the_gateway_never_saw_reaches_a_native_target(client, mocks):
    # Made at the provider without the gateway (or on another proxy replica): the follow-up
    # goes as sent, and the target that speaks the Responses API continues it.
    direct = mocks["cut-native"]._call("POST", "/v1/responses", {"model": "gpt-4o", "input": "hi"})
    r = client.responses.create(model="cut-native", input="more", previous_response_id=direct["id"])
    assert r.status == "completed"
    assert mocks["cut-native"].requests()[-1]["body"]["previous_response_id"] == direct["id"]
    # A chat-only target cannot continue it: OpenAI's 404, and nothing is sent.
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-4o", input="more", previous_response_id=direct["id"])
    assert caught.value.body["code"] == "previous_response_not_found"
    assert mocks["chat"].requests() == []


def test_native_pass_through_keeps_unknown_fields(client, mocks):
    client.responses.create(
        model="native", input=PROMPT, extra_body={"switchyard_passthrough": {"kept": [1, 2]}}
    )
    (request,) = sent(mocks, ["native-a", "native-b"])
    assert request["body"]["switchyard_passthrough"] == {"kept": [1, 2]}
    assert request["body"]["model"] == "gpt-4o"


# --- the response cache ------------------------------------------------------------------------------


def test_cache_hit_is_a_new_response_that_can_be_continued(client, mocks):
    miss = client.responses.with_raw_response.create(model="cached", input="Cache me.", temperature=0)
    hit = client.responses.with_raw_response.create(
        model="cached", input="Cache me.", temperature=0, stream=True
    )
    assert miss.headers.get("x-switchyard-cache") == "miss", dict(miss.headers)
    assert hit.headers.get("x-switchyard-cache") == "hit", dict(hit.headers)
    first = miss.parse()
    events = list(hit.parse())
    assert events[-1].type == "response.completed"
    replayed = events[-1].response
    assert replayed.output_text == first.output_text
    assert replayed.id != first.id
    # A chat request whose translation is the same is keyed apart.
    chat = client.chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": [{"type": "text", "text": "Cache me."}]}],
        temperature=0,
    )
    assert chat.headers.get("x-switchyard-cache") == "miss"

    # The replayed answer is kept like any other.
    follow = client.responses.create(
        model="cached", input="And more.", previous_response_id=replayed.id, temperature=0
    )
    assert follow.status == "completed"
    bodies = [r["body"] for r in mocks["chat"].requests()]
    assert [len(b["messages"]) for b in bodies] == [1, 1, 3]
    assert bodies[-1]["messages"][1]["content"] == first.output_text


# --- refusals and broken streams -------------------------------------------------------------------


@pytest.mark.parametrize("model,target", [("gpt-4o", "chat/gpt-4o"), ("claude-mock", "claude/claude-mock")])
def test_builtin_tool_on_a_translated_target_is_a_400_naming_both(client, mocks, model, target):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=model, input="search", tools=[{"type": "web_search"}])
    message = caught.value.body["message"]
    assert "`web_search`" in message and f"`{target}`" in message, message
    assert sent(mocks, ANSWERING[model]) == []


# Tools as the Codex CLI 0.169 offers them: function tools, a namespace of function tools,
# and the built-in `web_search`.
CODEX_TOOLS = [
    {"type": "function", "name": "shell", "description": "Run a command", "strict": False,
     "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                    "required": ["command"], "additionalProperties": False}},
    {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
        {"type": "function", "name": "close_agent", "strict": False,
         "parameters": {"type": "object", "properties": {"target": {"type": "string"}},
                        "required": ["target"], "additionalProperties": False}}]},
    {"type": "web_search", "external_web_access": False},
]


def test_codex_tools_on_a_chat_only_target_with_omit(mocks):
    client = openai.OpenAI(base_url=os.environ["SWITCHYARD_OMITTING_URL"], api_key="sk-test",
                           max_retries=0, timeout=30)
    events = list(client.responses.create(
        model="gpt-4o", input="list files", tools=CODEX_TOOLS, tool_choice="auto",
        parallel_tool_calls=True, store=False, stream=True, reasoning={"summary": "auto"},
        include=["reasoning.encrypted_content"], prompt_cache_key="s",
    ))
    assert events[-1].type == "response.completed", [e.type for e in events]
    final = events[-1].response
    # The answer names the tools the model was offered: the function tools only.
    assert [t.type for t in final.tools] == ["function", "namespace"], final.tools
    body = mocks["chat"].requests()[-1]["body"]
    assert [t["function"]["name"] for t in body["tools"]] == ["shell", "close_agent"]
    # The default proxy refuses the same request by name.
    default = openai.OpenAI(base_url=os.environ["SWITCHYARD_URL"], api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        default.responses.create(model="gpt-4o", input="list files", tools=CODEX_TOOLS)
    assert "`web_search`" in caught.value.body["message"]


def test_namespaced_function_calls_keep_their_namespace(client, mocks):
    r = client.responses.create(
        model="gpt-4o", input="close it", tools=CODEX_TOOLS[1:2], tool_choice="required"
    )
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "close_agent"
    assert call.namespace == "multi_agent_v1"


def test_builtin_tool_passes_to_a_native_target(client, mocks):
    r = client.responses.create(model="native", input="search", tools=[{"type": "web_search"}])
    assert r.status == "completed"
    (request,) = sent(mocks, ["native-a", "native-b"])
    assert request["body"]["tools"] == [{"type": "web_search"}]


@pytest.mark.parametrize("model,after", [("cut-stream", 3), ("cut-native", 6)])
def test_a_cut_stream_ends_with_response_failed(client, mocks, model, after):
    # Translated: the role chunk and two words; native: created, in_progress, item and part
    # added, two deltas. Then the upstream drops the connection.
    name = "cut" if model == "cut-stream" else "cut-native"
    mocks[name].script({"faults": [{"kind": "cut_stream", "after_chunks": after}]})
    events = []
    with pytest.raises((openai.APIError, httpx.HTTPError)) if False else _no_raise():
        for e in client.responses.create(model=model, input=PROMPT, stream=True):
            events.append(e)
    types = [e.type for e in events]
    assert types[0] == "response.created", types
    assert types[-1] == "response.failed", types
    assert "response.completed" not in types
    assert events[-1].response.status == "failed"
    assert "interrupted" in events[-1].response.error.message
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len("".join(deltas).split()) == 2, deltas
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers), numbers


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_unknown_previous_response_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-4o", input="x", previous_response_id="resp_unknown")
    assert caught.value.body["code"] == "previous_response_not_found"


def test_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="x")
