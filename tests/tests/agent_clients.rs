//! Real agent clients from npm, unchanged, against the proxy with mock targets, run
//! non-interactively: Claude Code (`claude -p`) over `/v1/messages` and the Codex CLI
//! (`codex exec`) over `/v1/responses`. The versions are pinned in `tests/agents/package.json`;
//! `scripts/agents` (run by `scripts/test`) installs them. Without node or the installed
//! clients these tests fail with the command to run, never skip.
//!
//! The mocks answer every request with text (`{"kind":"tool_call","calls":0}` as the default
//! fault) except for one scripted tool call, so each run is exactly: prompt → tool call → the
//! client runs the tool → tool result → text answer. The mocks' own random tool calls would
//! send an agent into an endless loop.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::config::ANTHROPIC;
use switchyard_tests::process::ProxyOptions;
use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess};

/// The model Claude Code is asked for: a current one it knows, so it sends its newest
/// request shape (a mid-conversation system message, `output_config`) and does not warn.
const CLAUDE_MODEL: &str = "claude-sonnet-5-5";
/// `ANTHROPIC_SMALL_FAST_MODEL`: routed too, for whatever background request it makes.
const CLAUDE_FAST_MODEL: &str = "claude-haiku-5-5";
/// The model Codex is asked for.
const CODEX_MODEL: &str = "gpt-5-codex";
/// The only key the proxy accepts.
const CLIENT_KEY: &str = "sk-agents-client-0123456789";
/// The environment variable holding the Anthropic mock's provider key.
const UPSTREAM_KEY_ENV: &str = "AGENTS_UPSTREAM_KEY";
/// Each client run is killed after this long (they take seconds).
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// The mocks' default fault: text, even where a tool call would come.
const TEXT_ONLY: &str = r#"{"kind":"tool_call","calls":0}"#;
/// What the file the scripted tool call reads holds; the tool result must carry it back.
const NOTE: &str = "switchyard-agent-note-7f3a";

fn agents_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("agents")
}

/// The installed client `name` (`claude`, `codex`); panics with the install command when
/// node or the client is missing.
fn client(name: &str) -> PathBuf {
    let install = "scripts/agents   (npm ci in tests/agents; scripts/test runs it)";
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed ({}): the agent client tests need Node.js 20 or newer",
            out.status
        ),
        Err(e) => panic!(
            "the agent client tests need Node.js 20 or newer (`node` does not run: {e}); \
             install it, then run\n  {install}"
        ),
    }
    let bin = agents_dir().join("node_modules/.bin").join(name);
    assert!(
        bin.exists(),
        "{} is not installed; run\n  {install}",
        bin.display()
    );
    bin
}

/// How a client run ended.
struct Run {
    /// `None` when it was killed at [`RUN_LIMIT`].
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "status {:?} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `command` with output to files, killed (SIGKILL, by its own pid) at [`RUN_LIMIT`]. It
/// gets a process group of its own, so nothing it signals there reaches the test.
fn run(mut command: Command) -> Run {
    let out = tempfile::tempdir().expect("a temp dir for the output");
    let file = |name: &str| std::fs::File::create(out.path().join(name)).expect("output file");
    command
        .stdin(Stdio::null())
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .process_group(0);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
    Run {
        status,
        stdout: read("stdout"),
        stderr: read("stderr"),
        took: started.elapsed(),
    }
}

/// A command with only `PATH` from this environment, so no real API key, base URL or proxy
/// setting of the machine reaches the client, and its own temp and runtime folder under
/// `home`: Claude Code keeps peer-messaging sockets in `$XDG_RUNTIME_DIR` (else the temp
/// folder) `/cc-socks`, and must never meet other Claude Code sessions on the machine there.
fn isolated(program: &Path, home: &Path, workdir: &Path) -> Command {
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).expect("the client's temp folder");
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMPDIR", &tmp)
        .env("XDG_RUNTIME_DIR", &tmp)
        .env("CLAUDE_CODE_TMPDIR", &tmp)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .current_dir(workdir);
    command
}

/// A folder for a client's home and one for its working directory (with the note file the
/// scripted tool call reads); both removed on drop.
struct Scratch {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let scratch = Scratch {
            home: tempfile::Builder::new()
                .prefix("switchyard-agent-home-")
                .tempdir()
                .expect("home dir"),
            work: tempfile::Builder::new()
                .prefix("switchyard-agent-work-")
                .tempdir()
                .expect("work dir"),
        };
        std::fs::write(scratch.note(), format!("{NOTE}\n")).expect("write the note");
        scratch
    }

    fn note(&self) -> PathBuf {
        self.work.path().join("note.txt")
    }
}

/// The proxy with `providers` and one route per model, accepting only [`CLIENT_KEY`].
fn proxy(config: &ConfigDir, routes: &[(&str, &str)]) -> ProxyProcess {
    let policy: String = routes
        .iter()
        .enumerate()
        .map(|(i, (model, target))| {
            format!("route r{i} {{\n  when model == \"{model}\"\n  use {target}\n}}\n")
        })
        .collect();
    config.write_policy(&policy);
    config.write_file(
        "client-keys.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: client-keys\n  labels:\n    \
             switchyard.dev/client-keys: \"true\"\nstringData:\n  agents: |\n    key: {CLIENT_KEY}\n    team: agents\n"
        ),
    );
    ProxyProcess::spawn_with(
        config.path(),
        &ProxyOptions {
            args: Vec::new(),
            env: vec![
                ("SWITCHYARD_ALLOW_ANONYMOUS".into(), "false".into()),
                // Codex offers `web_search` on every request: a chat-completions target can
                // only serve it with built-in tools left out (the default refuses them).
                (
                    "SWITCHYARD_RESPONSES_UNSUPPORTED_TOOLS".into(),
                    "omit".into(),
                ),
                (UPSTREAM_KEY_ENV.into(), "sk-upstream-agents".into()),
            ],
        },
    )
}

/// A mock that answers with text unless scripted otherwise.
fn text_mock(name: &str, require_auth: bool) -> MockProcess {
    let mut args = vec!["--name", name, "--default-fault", TEXT_ONLY];
    if require_auth {
        args.push("--require-auth");
    }
    MockProcess::spawn(&args)
}

/// Queues one tool call on `path`: Claude Code's `Read` of the note file.
fn script_read(mock: &MockProcess, path: &str, scratch: &Scratch) {
    mock.script(&json!({"faults": [{
        "kind": "tool_call",
        "path": path,
        "name": "Read",
        "arguments": {"file_path": scratch.note()},
        "text": "Let me read the note.",
    }]}));
}

/// `claude -p PROMPT --model CLAUDE_MODEL` against the proxy.
fn claude_code(proxy: &ProxyProcess, scratch: &Scratch, prompt: &str) -> Run {
    let mut command = isolated(&client("claude"), scratch.home.path(), scratch.work.path());
    command
        .env("ANTHROPIC_BASE_URL", proxy.url())
        .env("ANTHROPIC_API_KEY", CLIENT_KEY)
        .env("ANTHROPIC_SMALL_FAST_MODEL", CLAUDE_FAST_MODEL)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .args(["-p", prompt, "--model", CLAUDE_MODEL]);
    run(command)
}

/// The API requests the mock logged on `path`.
fn logged(mock: &MockProcess, path: &str) -> Vec<Value> {
    mock.requests()
        .into_iter()
        .filter(|r| r["path"] == path)
        .collect()
}

/// All text in a JSON value (strings anywhere inside), joined.
fn all_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(all_text).collect::<Vec<_>>().join("\n"),
        Value::Object(o) => o.values().map(all_text).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The answer the mock gives `body` on `path`, asked again directly and not streamed: its
/// text is a function of the seed and the transcript, so it is what the client was sent.
fn mock_answer(mock: &MockProcess, path: &str, body: &Value) -> String {
    let mut body = body.clone();
    body["stream"] = Value::Bool(false);
    if let Some(o) = body.as_object_mut() {
        o.remove("stream_options");
    }
    // Credentials of both formats: the mock may require them.
    let headers = [
        ("content-type", "application/json"),
        ("x-mock-fault", TEXT_ONLY),
        ("x-api-key", "sk-replay"),
        ("anthropic-version", "2023-06-01"),
        ("authorization", "Bearer sk-replay"),
    ];
    let answer = switchyard_tests::http::request(
        mock.addr(),
        "POST",
        path,
        &headers,
        body.to_string().as_bytes(),
    )
    .and_then(|r| r.json())
    .expect("the mock answers the replay");
    // Messages `content`, chat `choices[0].message.content`, Responses `output[].content[]`.
    let text = match path {
        "/v1/messages" => answer["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .collect::<String>(),
        "/v1/chat/completions" => answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        _ => answer["output"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["content"].as_array())
            .flatten()
            .filter_map(|part| part["text"].as_str())
            .collect::<String>(),
    };
    assert!(!text.is_empty(), "the replay got no text: {answer}");
    text
}

#[test]
fn claude_code_through_an_anthropic_target() {
    client("claude");
    let mock = text_mock("claude", true);
    let mut config = ConfigDir::new();
    config.add_typed_provider(
        "claude",
        ANTHROPIC,
        &mock.url(),
        &[CLAUDE_MODEL, CLAUDE_FAST_MODEL],
        Some(UPSTREAM_KEY_ENV),
    );
    let proxy = proxy(
        &config,
        &[
            (CLAUDE_MODEL, "claude/claude-sonnet-5-5"),
            (CLAUDE_FAST_MODEL, "claude/claude-haiku-5-5"),
        ],
    );
    let scratch = Scratch::new();
    script_read(&mock, "/v1/messages", &scratch);

    let run = claude_code(&proxy, &scratch, "Read note.txt and tell me what it says.");
    let context = || format!("{}\n--- proxy log ---\n{}", run.describe(), proxy.log());
    assert!(run.status.is_some_and(|s| s.success()), "{}", context());

    let main: Vec<Value> = logged(&mock, "/v1/messages")
        .into_iter()
        .filter(|r| r["body"]["model"] == CLAUDE_MODEL)
        .collect();
    assert_eq!(
        main.len(),
        2,
        "prompt and tool result: {main:#?}\n{}",
        context()
    );
    let first = &main[0];
    // The proxy sent the provider's key (the mock requires it), not the client's.
    assert_eq!(first["headers"]["x-api-key"], "[redacted]");
    assert_eq!(first["headers"]["anthropic-version"], "2023-06-01");
    // The betas that let Anthropic accept the beta fields in the body went along.
    let betas = first["headers"]["anthropic-beta"]
        .as_str()
        .unwrap_or_default();
    assert!(
        betas.contains("context-management-") && first["body"]["context_management"].is_object(),
        "anthropic-beta {betas:?} for {:#}",
        first["body"]
    );
    // Claude Code's real request shape reached the target as it was sent.
    let body = &first["body"];
    assert_eq!(body["stream"], true, "{body}");
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tools.contains(&"Read") && tools.contains(&"Bash"),
        "{tools:?}"
    );
    let system = body["system"].as_array().expect("system blocks");
    assert!(
        system
            .iter()
            .any(|b| b["cache_control"]["type"] == "ephemeral"),
        "no cache_control in {system:?}"
    );
    assert!(all_text(&body["messages"]).contains("Read note.txt"));
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["user", "system"], "{body}");

    // The scripted call ran: the second request hands back the note's content.
    let messages = main[1]["body"]["messages"].as_array().expect("messages");
    let result = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_array())
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"))
        .unwrap_or_else(|| panic!("no tool_result in {messages:#?}"));
    assert!(all_text(&result["content"]).contains(NOTE), "{result}");
    assert_ne!(result["is_error"], true, "{result}");

    let answer = mock_answer(&mock, "/v1/messages", &main[1]["body"]);
    assert_eq!(run.stdout.trim(), answer.trim(), "{}", context());
}

#[test]
fn claude_code_through_an_openai_compatible_target() {
    client("claude");
    let mock = text_mock("oai", false);
    let mut config = ConfigDir::new();
    config.add_provider("oai", &mock.base_url(), &["gpt-4o", "gpt-4o-mini"]);
    let proxy = proxy(
        &config,
        &[
            (CLAUDE_MODEL, "oai/gpt-4o"),
            (CLAUDE_FAST_MODEL, "oai/gpt-4o-mini"),
        ],
    );
    let scratch = Scratch::new();
    script_read(&mock, "/v1/chat/completions", &scratch);

    let run = claude_code(&proxy, &scratch, "Read note.txt and tell me what it says.");
    let context = || format!("{}\n--- proxy log ---\n{}", run.describe(), proxy.log());
    assert!(run.status.is_some_and(|s| s.success()), "{}", context());

    let main: Vec<Value> = logged(&mock, "/v1/chat/completions")
        .into_iter()
        .filter(|r| r["body"]["model"] == "gpt-4o")
        .collect();
    assert_eq!(
        main.len(),
        2,
        "prompt and tool result: {main:#?}\n{}",
        context()
    );
    let body = &main[0]["body"];
    // Translated: streamed with usage, function tools, the system blocks as the first
    // message, Claude Code's mid-conversation system message kept in place.
    assert_eq!(body["stream"], true, "{body}");
    assert_eq!(body["stream_options"]["include_usage"], true, "{body}");
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter(|t| t["type"] == "function")
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(
        tools.contains(&"Read") && tools.contains(&"Bash"),
        "{tools:?}"
    );
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles.first(), Some(&"system"), "{roles:?}");
    assert!(
        roles.iter().skip(1).any(|r| *r == "system"),
        "the mid-conversation system message is gone: {roles:?}"
    );
    assert!(!body.to_string().contains("cache_control"), "{body}");

    let messages = main[1]["body"]["messages"].as_array().expect("messages");
    let call = messages
        .iter()
        .find_map(|m| m["tool_calls"].as_array())
        .and_then(|calls| calls.first())
        .unwrap_or_else(|| panic!("no assistant tool call in {messages:#?}"));
    assert_eq!(call["function"]["name"], "Read");
    let result = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool result in {messages:#?}"));
    assert_eq!(result["tool_call_id"], call["id"]);
    assert!(all_text(&result["content"]).contains(NOTE), "{result}");

    let answer = mock_answer(&mock, "/v1/chat/completions", &main[1]["body"]);
    assert_eq!(run.stdout.trim(), answer.trim(), "{}", context());
}

/// `codex exec --skip-git-repo-check PROMPT` with a `config.toml` in `CODEX_HOME` whose
/// provider is the proxy over the Responses API.
fn codex(proxy: &ProxyProcess, scratch: &Scratch, prompt: &str) -> Run {
    let codex_home = scratch.home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).expect("CODEX_HOME");
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"{CODEX_MODEL}\"\nmodel_provider = \"switchyard\"\n\n\
             [model_providers.switchyard]\nname = \"Switchyard\"\nbase_url = \"{}\"\n\
             env_key = \"SWITCHYARD_API_KEY\"\nwire_api = \"responses\"\n",
            proxy.base_url()
        ),
    )
    .expect("write config.toml");
    let mut command = isolated(&client("codex"), scratch.home.path(), scratch.work.path());
    command
        .env("CODEX_HOME", &codex_home)
        .env("SWITCHYARD_API_KEY", CLIENT_KEY)
        .args(["exec", "--skip-git-repo-check", prompt]);
    run(command)
}

/// Codex with one scripted call of its shell tool (printing the note) against a mock served
/// as `oai/gpt-5-codex`: `native` declares the provider's Responses API support (the request
/// passes through), otherwise the proxy translates it to chat completions.
fn codex_case(native: bool) {
    client("codex");
    let mock = text_mock("oai", false);
    let config = ConfigDir::new();
    config.write_file(
        switchyard_tests::config::PROVIDERS_FILE,
        &format!(
            "apiVersion: switchyard.dev/v1alpha1\nkind: LLMProvider\nmetadata:\n  name: oai\n\
             spec:\n  type: openai-compatible\n  baseUrl: {}\n  responsesApi: {native}\n  \
             models:\n    - name: {CODEX_MODEL}\n      pricing: {{ inputPerMillion: 1, outputPerMillion: 2 }}\n",
            mock.base_url()
        ),
    );
    let proxy = proxy(&config, &[(CODEX_MODEL, "oai/gpt-5-codex")]);
    let scratch = Scratch::new();
    let note = scratch.note();
    mock.script(&json!({"faults": [{
        "kind": "tool_call",
        "name": "exec_command",
        "arguments": {"cmd": format!("cat {}", note.display())},
    }]}));

    let run = codex(&proxy, &scratch, "Print the contents of note.txt.");
    let context = || format!("{}\n--- proxy log ---\n{}", run.describe(), proxy.log());
    assert!(run.status.is_some_and(|s| s.success()), "{}", context());

    let path = if native {
        "/v1/responses"
    } else {
        "/v1/chat/completions"
    };
    let requests: Vec<Value> = logged(&mock, path)
        .into_iter()
        .filter(|r| r["body"]["model"] == CODEX_MODEL)
        .collect();
    assert!(
        requests.len() >= 2,
        "prompt and tool output: {requests:#?}\n{}",
        context()
    );
    assert!(all_text(&requests[0]["body"]).contains("Print the contents of note.txt."));
    assert_eq!(requests[0]["body"]["stream"], true);
    // The shell tool ran and its output came back.
    assert!(
        all_text(&requests[1]["body"]).contains(NOTE),
        "no tool output in {:#}\n{}",
        requests[1]["body"],
        context()
    );
    let last = requests.last().expect("a request");
    let answer = mock_answer(&mock, path, &last["body"]);
    assert!(run.stdout.contains(answer.trim()), "{}", context());
}

#[test]
fn codex_cli_through_a_native_responses_target() {
    codex_case(true);
}

/// Codex always sends a `namespace` tool (its sub-agent functions) and `web_search`; a
/// chat-completions target gets the former flattened into functions and the latter left out
/// (`--responses-unsupported-tools omit`, set for every proxy here; the default refuses it,
/// and then Codex cannot use such a target at all).
#[test]
fn codex_cli_through_a_chat_completions_target() {
    codex_case(false);
}
