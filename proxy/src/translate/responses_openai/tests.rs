use super::*;
use crate::translate::sse::Parser;

fn echo(req: &Value) -> Echo {
    Echo::new("resp_abc".into(), 1_700_000_000, req)
}

/// The events of an SSE byte string: (name, data).
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut p = Parser::default();
    p.push(bytes)
        .into_iter()
        .map(|e| {
            (
                e.event.unwrap_or_default(),
                serde_json::from_str(&e.data).expect("json data"),
            )
        })
        .collect()
}

#[test]
fn input_as_text_or_items_with_instructions_tools_and_options() {
    let req = json!({
        "model": "m", "instructions": "be brief", "input": "hi",
        "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9,
        "reasoning": {"effort": "low", "summary": "auto"},
        "metadata": {"a": "b"}, "store": false, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k", "parallel_tool_calls": false, "stream": true,
        "tools": [{"type": "function", "name": "get", "description": "d",
                   "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get"},
        "text": {"format": {"type": "json_schema", "name": "out", "strict": true,
                            "schema": {"type": "object"}}},
    });
    let items = input_items(&req["input"]).expect("items");
    let c = request(&req, &items).expect("translates");
    assert_eq!(c.untranslatable, None);
    let b = &c.body;
    assert_eq!(b["model"], "m");
    assert_eq!(
        b["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(b["messages"][1]["role"], "user");
    assert_eq!(b["messages"][1]["content"][0]["text"], "hi");
    assert_eq!(b["max_tokens"], 50);
    assert_eq!(b["temperature"], 0.2);
    assert_eq!(b["top_p"], 0.9);
    assert_eq!(b["reasoning_effort"], "low");
    assert_eq!(b["parallel_tool_calls"], false);
    assert_eq!(b["tools"][0]["function"]["name"], "get");
    assert_eq!(b["tools"][0]["function"]["strict"], true);
    assert_eq!(b["tool_choice"]["function"]["name"], "get");
    assert_eq!(b["response_format"]["type"], "json_schema");
    assert_eq!(b["response_format"]["json_schema"]["name"], "out");
    assert_eq!(b["stream_options"]["include_usage"], true);
    for absent in [
        "metadata",
        "store",
        "include",
        "prompt_cache_key",
        "reasoning",
        "text",
        "input",
    ] {
        assert!(
            b.get(absent).is_none(),
            "{absent} leaked into the chat body"
        );
    }
}

#[test]
fn function_call_round_trip_items_become_tool_messages() {
    let req = json!({"model": "m", "input": [
        {"role": "developer", "content": "sys"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "weather?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "get", "arguments": "{\"q\":1}"},
        {"type": "function_call", "call_id": "c2", "name": "get", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "done", "annotations": []}]},
    ]});
    let items = input_items(&req["input"]).expect("items");
    let m = request(&req, &items).expect("ok").body["messages"].clone();
    assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,AA"
    );
    assert_eq!(m[1]["content"][1]["image_url"]["detail"], "low");
    assert_eq!(m[2]["role"], "assistant");
    assert_eq!(
        m[2]["tool_calls"].as_array().map(Vec::len),
        Some(2),
        "one turn"
    );
    assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    );
    assert_eq!(m[4]["content"], "rain");
    assert_eq!(m[5], json!({"role": "assistant", "content": "done"}));
    assert_eq!(m.as_array().map(Vec::len), Some(6));
}

#[test]
fn builtin_tools_and_foreign_items_are_named_not_dropped() {
    let req = json!({"model": "m", "input": "x", "tools": [
        {"type": "function", "name": "f", "parameters": {}},
        {"type": "web_search_preview"}]});
    let c = request(&req, &input_items(&req["input"]).expect("items")).expect("ok");
    assert_eq!(
        c.untranslatable.as_deref(),
        Some("the built-in tool `web_search_preview`")
    );
    assert_eq!(c.body["tools"].as_array().map(Vec::len), Some(1));
    let items = vec![json!({"type": "file_search_call", "id": "x"})];
    assert_eq!(
        untranslatable(&Value::Null, &items).as_deref(),
        Some("input items of type `file_search_call`")
    );
}

#[test]
fn malformed_requests_are_refused() {
    let bad = |req: Value| {
        let items = input_items(&req["input"])?;
        request(&req, &items).map(|_| ())
    };
    assert!(bad(json!({"input": "x"})).is_err(), "no model");
    assert!(bad(json!({"model": "m", "input": 3})).is_err());
    assert!(bad(json!({"model": "m", "input": [{"role": "tool", "content": "x"}]})).is_err());
    assert!(bad(json!({"model": "m", "input": [{"type": "function_call"}]})).is_err());
    assert!(bad(json!({"model": "m", "input": [{"content": "no role or type"}]})).is_err());
    assert!(bad(json!({"model": "m", "instructions": 3})).is_err());
    assert!(bad(json!({"model": "m", "input": [{"role": "user", "content": 3}]})).is_err());
}

#[test]
fn parts_without_a_chat_equivalent_are_named_for_chat_only_targets() {
    // A native target may take them: the request is not refused, the part is named.
    for (part, named) in [
        (
            json!({"type": "input_file", "file_id": "f"}),
            "content parts of type `input_file`",
        ),
        (
            json!({"type": "input_image", "file_id": "f"}),
            "images given by `file_id`",
        ),
    ] {
        let req = json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "see"}, part]}]});
        let c = request(&req, &input_items(&req["input"]).expect("items")).expect("ok");
        assert_eq!(c.untranslatable.as_deref(), Some(named));
        assert_eq!(
            c.body["messages"][0]["content"].as_array().map(Vec::len),
            Some(1)
        );
    }
}

#[test]
fn chat_answer_becomes_a_response_object() {
    let req = json!({"model": "m", "input": "hi", "instructions": "x", "store": false,
                     "metadata": {"k": "v"}});
    let chat = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "up",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "let me look", "reasoning_content": "hmm",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "get", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 2}},
    });
    let r = response(&chat, &echo(&req), "up");
    assert_eq!(r["id"], "resp_abc");
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "up");
    assert_eq!(r["instructions"], "x");
    assert_eq!(r["store"], false);
    assert_eq!(r["metadata"]["k"], "v");
    assert_eq!(r["tool_choice"], "auto");
    assert_eq!(r["parallel_tool_calls"], true);
    let out = r["output"].as_array().expect("output");
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(out[0]["summary"][0]["text"], "hmm");
    assert_eq!(out[1]["type"], "message");
    assert_eq!(out[1]["content"][0]["type"], "output_text");
    assert_eq!(out[1]["content"][0]["text"], "let me look");
    assert_eq!(out[2]["type"], "function_call");
    assert_eq!(out[2]["call_id"], "call_1");
    assert_eq!(out[2]["arguments"], "{\"a\":1}");
    assert_ne!(out[1]["id"], out[2]["id"]);
    assert_eq!(r["usage"]["input_tokens"], 10);
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(r["usage"]["output_tokens"], 5);
    assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 2);
    assert_eq!(r["usage"]["total_tokens"], 15);

    let cut = json!({"choices": [{"finish_reason": "length",
                                  "message": {"role": "assistant", "content": "abc"}}]});
    let r = response(&cut, &echo(&req), "up");
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert!(r["usage"].is_null());
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({"id": "c", "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

#[test]
fn text_stream_becomes_responses_events_in_sequence() {
    let mut s = Stream::new(echo(&json!({"model": "m"})), "up");
    let mut out = Vec::new();
    let body = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(json!({}), Some("stop")),
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
            .to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    // Split anywhere: events must not depend on how the bytes arrive.
    for piece in body.as_bytes().chunks(7) {
        out.extend(s.push(piece));
    }
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, v)) in ev.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as u64, "{name}");
        assert_eq!(&v["type"], name);
    }
    assert_eq!(ev[0].1["response"]["status"], "in_progress");
    assert_eq!(ev[6].1["text"], "Hello");
    let done = &ev[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["input_tokens"], 3);
    assert_eq!(done["usage"]["output_tokens"], 2);
    assert_eq!(s.completed.as_ref(), Some(done));
    assert!(s.ended);
    assert!(
        s.push(b"data: [DONE]\n\n").is_empty(),
        "nothing after the end"
    );
}

#[test]
fn tool_call_stream_and_failures() {
    let mut s = Stream::new(echo(&json!({"model": "m"})), "up");
    let body = [
        chunk(json!({"content": "ok"}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                    "function": {"name": "get", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let ev = events(&s.push(body.as_bytes()));
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"response.function_call_arguments.delta"));
    let done = ev
        .iter()
        .find(|(n, _)| n == "response.function_call_arguments.done")
        .expect("arguments done");
    assert_eq!(done.1["arguments"], "{\"a\":1}");
    // The text item is finished before the call starts.
    let text_done = names.iter().position(|n| *n == "response.output_text.done");
    let call_added = names
        .iter()
        .rposition(|n| *n == "response.output_item.added");
    assert!(text_done < call_added, "{names:?}");
    let r = &ev.last().expect("events").1["response"];
    assert_eq!(r["output"][1]["type"], "function_call");
    assert_eq!(r["output"][1]["call_id"], "call_9");
    assert_eq!(r["output"][1]["name"], "get");

    // Broken off after it started: response.failed, never response.completed.
    let mut s = Stream::new(echo(&json!({"model": "m"})), "up");
    let first = s.push(chunk(json!({"content": "par"}), None).as_bytes());
    let failed = s.failed("cut");
    let ev = events(&[first, failed].concat());
    let last = ev.last().expect("events");
    assert_eq!(last.0, "response.failed");
    assert_eq!(last.1["response"]["status"], "failed");
    assert_eq!(last.1["response"]["error"]["message"], "cut");
    assert!(ev.iter().all(|(n, _)| n != "response.completed"));
    assert!(s.failed("again").is_empty(), "one terminal event");

    // An upstream error event in the chat stream ends it the same way.
    let mut s = Stream::new(echo(&json!({"model": "m"})), "up");
    let ev = events(&s.push(b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n"));
    assert_eq!(ev.last().map(|e| e.0.as_str()), Some("response.failed"));
    assert!(s.completed.is_none());

    // finish_reason length: response.incomplete.
    let mut s = Stream::new(echo(&json!({"model": "m"})), "up");
    let body = [
        chunk(json!({"content": "a"}), Some("length")),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    let ev = events(&s.push(body.as_bytes()));
    let last = &ev.last().expect("events");
    assert_eq!(last.0, "response.incomplete");
    assert_eq!(
        last.1["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

#[test]
fn namespaced_function_tools_are_offered_and_their_calls_named() {
    let req = json!({"model": "m", "input": "x", "tools": [
        {"type": "web_search", "external_web_access": false},
        {"type": "namespace", "name": "agents", "description": "d", "tools": [
            {"type": "function", "name": "spawn", "parameters": {"type": "object"}},
            {"type": "custom", "name": "patch"}]},
        {"type": "function", "name": "shell", "parameters": {"type": "object"}}]});
    let c = request(&req, &input_items(&req["input"]).expect("items")).expect("ok");
    let names: Vec<&str> = c.body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["spawn", "shell"]);
    assert_eq!(
        c.untranslatable.as_deref(),
        Some("the built-in tool `web_search`")
    );
    let e = echo(&req);
    let chat = json!({"choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "spawn", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "shell", "arguments": "{}"}}]}}]});
    let r = response(&chat, &e, "up");
    assert_eq!(r["output"][0]["namespace"], "agents");
    assert!(r["output"][1].get("namespace").is_none());
    // The answer lists the tools the model was offered: no built-in, no custom tool.
    assert_eq!(
        r["tools"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r["tools"]
    );
    assert_eq!(r["tools"][0]["tools"].as_array().map(Vec::len), Some(1));
}
