use super::*;

const REFUSE: UnsupportedTools = UnsupportedTools::Refuse;

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).expect("json")
}

fn provider(kind: ProviderKind, responses_api: bool) -> Provider {
    let mut p = Provider::new("p", kind, &["m"]);
    p.responses_api = responses_api;
    p
}

const CHAT_ANSWER: &[u8] = br#"{"id":"c","object":"chat.completion","model":"m",
  "choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"four"}}],
  "usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

#[test]
fn which_targets_speak_responses() {
    assert!(native_target(&provider(ProviderKind::Openai, false)));
    assert!(native_target(&provider(ProviderKind::AzureOpenai, false)));
    assert!(!native_target(&provider(
        ProviderKind::OpenaiCompatible,
        false
    )));
    assert!(native_target(&provider(
        ProviderKind::OpenaiCompatible,
        true
    )));
    assert!(!native_target(&provider(ProviderKind::Anthropic, false)));
    assert!(!native_target(&provider(ProviderKind::Mock, false)));
}

#[tokio::test]
async fn three_turns_expand_from_the_store_and_store_false_keeps_nothing() {
    let store = Arc::new(ResponsesStore::default());
    let p = prepare(
        br#"{"model":"m","input":"2+2?","instructions":"be brief"}"#,
        &store,
        Some("k"),
    )
    .await
    .expect("turn 1");
    assert!(p.pinned.is_none());
    let id1 = p.turn.echo.id.clone();
    assert!(id1.starts_with("resp_") && id1.len() > 40, "{id1}");
    let r1 = json_of(&whole_answer(
        &p.turn,
        200,
        Bytes::from_static(CHAT_ANSWER),
        false,
        "p/m",
    ));
    assert_eq!(r1["id"], id1.as_str());
    assert_eq!(r1["output"][0]["content"][0]["text"], "four");

    let body = format!(r#"{{"model":"m","input":"times 3?","previous_response_id":"{id1}"}}"#);
    let p = prepare(body.as_bytes(), &store, Some("k"))
        .await
        .expect("turn 2");
    let chat = json_of(&p.chat);
    let m = chat["messages"].as_array().expect("messages");
    // No instructions: they are not carried over (as OpenAI does).
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(m[0]["content"][0]["text"], "2+2?");
    assert_eq!(m[1], json!({"role": "assistant", "content": "four"}));
    assert_eq!(m[2]["content"][0]["text"], "times 3?");
    // A native target gets the whole conversation, not an id it never saw.
    let native = json_of(&p.native);
    assert!(native.get("previous_response_id").is_none());
    assert_eq!(native["input"].as_array().map(Vec::len), Some(3));
    let r2 = json_of(&whole_answer(
        &p.turn,
        200,
        Bytes::from_static(CHAT_ANSWER),
        false,
        "p/m",
    ));
    assert_eq!(r2["previous_response_id"], id1.as_str());
    let id2 = r2["id"].as_str().expect("id").to_owned();

    let body =
        format!(r#"{{"model":"m","input":"ok","previous_response_id":"{id2}","store":false}}"#);
    let p = prepare(body.as_bytes(), &store, Some("k"))
        .await
        .expect("turn 3");
    assert_eq!(
        json_of(&p.chat)["messages"].as_array().map(Vec::len),
        Some(5)
    );
    let before = store.len();
    let r3 = json_of(&whole_answer(
        &p.turn,
        200,
        Bytes::from_static(CHAT_ANSWER),
        false,
        "p/m",
    ));
    assert_eq!(store.len(), before, "store: false keeps nothing");
    assert_eq!(r3["store"], false);

    // Another key does not see the conversation: to the gateway the id is unknown, so it
    // goes as sent, uncached; a chat-only target answers OpenAI's 404, a target that speaks
    // the Responses API gets the id (it may hold it).
    let p = prepare(body.as_bytes(), &store, Some("other"))
        .await
        .expect("goes as sent");
    assert!(!p.cacheable && p.pinned.is_none());
    assert_eq!(json_of(&p.native)["previous_response_id"], id2.as_str());
    let chat_only = provider(ProviderKind::OpenaiCompatible, false);
    let (status, e) = refusal(&chat_only, "m", &p.native, REFUSE).expect("404");
    assert_eq!(status, 404);
    assert_eq!(json_of(&e)["error"]["code"], "previous_response_not_found");
    let openai = provider(ProviderKind::Openai, false);
    assert!(refusal(&openai, "m", &p.native, REFUSE).is_none());
    // A conversation the gateway holds is expanded: nothing to refuse.
    let p = prepare(body.as_bytes(), &store, Some("k"))
        .await
        .expect("held");
    assert!(refusal(&chat_only, "m", &p.native, REFUSE).is_none());

    // GET and DELETE.
    let got = json_of(
        &held(&store, &http::Method::GET, &id1, Some("k"))
            .await
            .expect("held"),
    );
    assert_eq!(got, r1);
    assert!(held(&store, &http::Method::GET, &id1, None).await.is_err());
    assert!(
        held(&store, &http::Method::DELETE, &id1, Some("k"))
            .await
            .is_ok()
    );
    let e = held(&store, &http::Method::GET, &id1, Some("k"))
        .await
        .expect_err("deleted");
    assert_eq!(e.status, 404);
}

#[tokio::test]
async fn native_answers_pin_the_follow_up_to_their_target() {
    let store = Arc::new(ResponsesStore::default());
    let p = prepare(br#"{"model":"m","input":"hi"}"#, &store, None)
        .await
        .expect("ok");
    let native = Bytes::from_static(br#"{"id":"resp_up1","object":"response","output":[]}"#);
    let out = whole_answer(&p.turn, 200, native.clone(), true, "up/gpt-4o");
    assert_eq!(out, native, "relayed as is");
    let p = prepare(
        br#"{"model":"m","input":"more","previous_response_id":"resp_up1"}"#,
        &store,
        None,
    )
    .await
    .expect("ok");
    assert_eq!(p.pinned.as_deref(), Some("up/gpt-4o"));
    // The provider keeps it: the gateway neither shows nor deletes it.
    for m in [http::Method::GET, http::Method::DELETE] {
        let e = held(&store, &m, "resp_up1", None)
            .await
            .expect_err("kept upstream");
        assert!(e.message.contains("`up/gpt-4o`"), "{}", e.message);
    }
    assert!(store.get("resp_up1", None).is_some());
    assert!(json_of(&p.native)["previous_response_id"] == "resp_up1");

    // Streamed: the id comes with response.created.
    let p = prepare(br#"{"model":"m","input":"hi","stream":true}"#, &store, None)
        .await
        .expect("ok");
    let mut ev = NativeEvents::new(&p.turn, "up/gpt-4o".into());
    let out = ev.push(
        b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\
          \"response\":{\"id\":\"resp_up2\",\"status\":\"in_progress\"}}\n\n",
    );
    assert!(out.is_empty());
    assert_eq!(
        store.get("resp_up2", None),
        Some(Held::Native {
            target: "up/gpt-4o".into()
        })
    );
    let failed = String::from_utf8(ev.failed("cut")).expect("utf8");
    assert!(failed.contains("event: response.failed"), "{failed}");
    assert!(failed.contains("\"sequence_number\":1"), "{failed}");
    assert!(failed.contains("resp_up2"), "{failed}");
    let out = ev.push(
        b"data: {\"type\":\"response.completed\",\"sequence_number\":5,\"response\":\
          {\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}}\n\n",
    );
    let out = String::from_utf8(out).expect("utf8");
    assert!(
        out.contains("\"prompt_tokens\":7") && out.ends_with("data: [DONE]\n\n"),
        "{out}"
    );
    assert_eq!(
        native_usage(br#"{"usage":{"input_tokens":7,"output_tokens":3}}"#),
        Some(Usage {
            input: 7,
            output: 3,
            cached: 0
        })
    );
}

#[test]
fn chat_only_targets_refuse_builtin_tools_by_name() {
    let body = br#"{"model":"m","input":"x","tools":[{"type":"web_search"}]}"#;
    let anthropic = provider(ProviderKind::Anthropic, false);
    let e = json_of(
        &refusal(&anthropic, "claude", body, REFUSE)
            .expect("refused")
            .1,
    );
    let msg = e["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("`web_search`") && msg.contains("`p/claude`"),
        "{msg}"
    );
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(refusal(&provider(ProviderKind::Openai, false), "m", body, REFUSE).is_none());
    let plain = br#"{"model":"m","input":"x","tools":[{"type":"function","name":"f"}]}"#;
    assert!(refusal(&anthropic, "claude", plain, REFUSE).is_none());
    let item = br#"{"model":"m","input":[{"type":"computer_call_output","call_id":"c"}]}"#;
    assert!(refusal(&anthropic, "claude", item, REFUSE).is_some());
    // Omitted instead: the function tools are offered, items still checked.
    let omit = UnsupportedTools::Omit;
    assert!(refusal(&anthropic, "claude", body, omit).is_none());
    assert!(refusal(&anthropic, "claude", item, omit).is_some());
    // Function tools grouped in a namespace are function tools; a custom one is not.
    let ns = br#"{"model":"m","input":"x","tools":[{"type":"namespace","name":"agents",
        "tools":[{"type":"function","name":"spawn"}]}]}"#;
    assert!(refusal(&anthropic, "claude", ns, REFUSE).is_none());
    let custom = br#"{"model":"m","input":"x","tools":[{"type":"namespace","name":"agents",
        "tools":[{"type":"custom","name":"patch"}]}]}"#;
    let e = json_of(
        &refusal(&anthropic, "claude", custom, REFUSE)
            .expect("refused")
            .1,
    );
    let msg = e["error"]["message"].as_str().expect("message");
    assert!(msg.contains("`patch`") && msg.contains("`agents`"), "{msg}");
}

#[tokio::test]
async fn bad_bodies_are_400s() {
    let store = Arc::new(ResponsesStore::default());
    for body in [
        &b""[..],
        b"[1]",
        b"{not json",
        br#"{"model":"m","stream":"yes"}"#,
        br#"{"model":"m","previous_response_id":3}"#,
        br#"{"model":"m","input":{"a":1}}"#,
        br#"{"input":"no model"}"#,
    ] {
        let e = prepare(body, &store, None).await.expect_err("refused");
        assert_eq!(e.status, 400, "{}", String::from_utf8_lossy(body));
    }
    // Unknown top-level fields are not refused.
    assert!(
        prepare(
            br#"{"model":"m","input":"x","brand_new":{"a":1}}"#,
            &store,
            None
        )
        .await
        .is_ok()
    );
}
