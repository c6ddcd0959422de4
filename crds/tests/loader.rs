//! Loading files and folders: what is found, in which order, and errors at exact lines.

use std::path::Path;

use switchyard_crds::{LoadErrorKind, load_paths, load_paths_partial};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const PROVIDERS: &str = "\
# Two providers in one file.
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: mock
spec:
  type: mock
  models:
    - name: small
      pricing: { inputPerMillion: 0.15, outputPerMillion: 0.6 }
  mock: { latency: 400ms, ttft: 100ms }
---
# The second one.

apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: openai
  namespace: llm
spec:
  type: openai
  credentials:
    secretRef: { name: keys, key: openai }
  models:
  - name: gpt-4o
    pricing: { inputPerMillion: 2.5, outputPerMillion: 10 }
";

const ROUTES: &str = "\
apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata:
  name: main
spec:
  priority: 5
  policy: |
    route all {
      use mock/small
    }
";

const BUDGETS: &str = "\
---
apiVersion: switchyard.dev/v1alpha1
kind: Budget
metadata:
  name: spend
spec:
  policy: |
    budget all {
      for all
      limit $5 per day
    }
";

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: keys
  namespace: llm
data:
  openai: c2stZGF0YQ==
  other: b3RoZXI=
stringData:
  openai: sk-string
";

fn good_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "b/providers.yaml", PROVIDERS);
    write(d, "a/routes.yml", ROUTES);
    write(d, "budgets.yaml", BUDGETS);
    write(d, "secret.yaml", SECRET);
    write(d, "notes.txt", "not yaml: [");
    write(d, ".hidden/broken.yaml", "kind: Nope\n");
    write(d, "..2026_01_01/routes.yaml", ROUTES); // a ConfigMap mount's versioned folder
    dir
}

#[test]
fn loads_a_folder_recursively_in_sorted_order() {
    let dir = good_folder();
    let config = load_paths(&[dir.path()]).expect("loads");
    let root = dir.path().display().to_string();

    assert_eq!(config.providers.len(), 2);
    let mock = &config.providers[0];
    assert_eq!(mock.name(), "mock");
    assert_eq!(mock.origin.file, format!("{root}/b/providers.yaml"));
    assert_eq!(mock.origin.line, 2, "first line with content");
    let openai = &config.providers[1];
    assert_eq!(openai.qualified_name(), "llm/openai");
    assert_eq!((openai.origin.text_offset, openai.origin.line), (12, 15));

    assert_eq!(config.route_policies.len(), 1);
    assert_eq!(
        config.route_policies[0].origin.file,
        format!("{root}/a/routes.yml")
    );
    assert_eq!(config.budgets.len(), 1);
    assert_eq!(config.budgets[0].origin.line, 2, "after the leading ---");
    assert_eq!(config.secrets.len(), 1);
    assert_eq!(
        config.secret_value(Some("llm"), "keys", "openai"),
        Some(b"sk-string".to_vec())
    );
    assert_eq!(
        config.secret_value(Some("llm"), "keys", "other"),
        Some(b"other".to_vec())
    );
    assert_eq!(config.secret_value(None, "keys", "other"), None);
}

#[test]
fn an_explicit_file_is_read_whatever_its_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "routes.policy", ROUTES);
    let config = load_paths(&[dir.path().join("routes.policy")]).expect("loads");
    assert_eq!(config.route_policies.len(), 1);
}

/// Errors as printed, with the temp folder's path removed.
fn errors_in(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    let errors = load_paths(&[dir.path()]).expect_err("has errors");
    let prefix = format!("{}/", dir.path().display());
    errors
        .iter()
        .map(|e| e.to_string().replace(&prefix, ""))
        .collect()
}

const BAD: &str = "\
apiVersion: switchyard.dev/v1alpha1
kind: LLMProviderr
metadata:
  name: x
---
apiVersion: switchyard.dev/v1
kind: RoutePolicy
metadata:
  name: r
spec:
  policy: ''
---
apiVersion: switchyard.dev/v1alpha1
kind: Budget
metadata:
  namespace: team
spec:
  policy: 'budget b {}'
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: p
spec:
  type: opnai
  models: []
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: q
spec:
  type: openai
  baseURL: https://example.com
  models:
    - name: m
      pricing: { inputPerMillion: 1, outputPerMilion: 2 }
---
key: [unclosed
---
- just
- a list
";

#[test]
fn every_error_is_reported_at_its_line() {
    let errors = errors_in(&[("bad.yaml", BAD)]);
    let expected = [
        "bad.yaml:2:7: unknown kind `LLMProviderr` (known: LLMProvider, RoutePolicy, Budget, Secret, RoutePolicyTest)\n  = help: did you mean `LLMProvider`?",
        "bad.yaml:6:13: unknown apiVersion `switchyard.dev/v1` for kind `RoutePolicy`\n  = help: use `apiVersion: switchyard.dev/v1alpha1`",
        "bad.yaml:15:1: missing `metadata.name`\n  = help: every Budget needs a name",
        "bad.yaml:25:9: spec.type: unknown variant `opnai`, expected one of `openai`, `openai-compatible`, `azure-openai`, `anthropic`, `gemini`, `mock`",
        "bad.yaml:34:3: unknown field `baseURL` in `spec`\n  = help: did you mean `baseUrl`?",
        "bad.yaml:37:38: unknown field `outputPerMilion` in `spec.models[0].pricing`\n  = help: did you mean `outputPerMillion`?",
        "bad.yaml:37:16: spec.models[0].pricing: missing field `outputPerMillion`",
        "bad.yaml:39:15: did not find expected ',' or ']', while parsing a flow sequence at line 39 column 6",
        "bad.yaml:41: a document must be a mapping with `apiVersion`, `kind` and `metadata`\n  = help: known kinds: LLMProvider, RoutePolicy, Budget, Secret, RoutePolicyTest",
    ];
    assert_eq!(errors, expected);
}

#[test]
fn missing_fields_and_wrong_types_point_into_the_document() {
    let text = "\
# leading comment
---
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: p
spec:
  type: openai
  models:
    - name: m
      pricing: { inputPerMillion: cheap, outputPerMillion: 2 }
      contextWindow: 1.5
---
apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata:
  name: r
spec:
  priority: 1
";
    let errors = errors_in(&[("f.yaml", text)]);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(
        errors[0],
        "f.yaml:11:35: spec.models[0].pricing.inputPerMillion: invalid type: string \"cheap\", expected a number"
    );
    assert_eq!(errors[1], "f.yaml:19:3: spec: missing field `policy`");
}

#[test]
fn duplicates_are_reported_with_the_first_location() {
    let doc = "apiVersion: switchyard.dev/v1alpha1\nkind: RoutePolicy\nmetadata:\n  name: r\nspec:\n  policy: ''\n";
    let other_ns = doc.replace("  name: r\n", "  name: r\n  namespace: other\n");
    let errors = errors_in(&[
        ("a.yaml", doc),
        ("b.yaml", &format!("{other_ns}---\n{doc}")),
    ]);
    assert_eq!(
        errors,
        [
            "b.yaml:12:9: duplicate RoutePolicy `r`\n  = help: the first is at a.yaml:1; rename one or delete it"
        ]
    );
}

#[test]
fn unreadable_paths_and_partial_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "good.yaml", ROUTES);
    write(
        dir.path(),
        "bad.yaml",
        "kind: Deployment\napiVersion: apps/v1\n",
    );
    let missing = dir.path().join("missing");
    let (config, errors) = load_paths_partial(&[dir.path(), missing.as_path()]);
    assert_eq!(config.route_policies.len(), 1, "good documents still load");
    let kinds: Vec<LoadErrorKind> = errors.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [LoadErrorKind::UnknownKind, LoadErrorKind::Io]);
    assert_eq!(
        errors[1].to_string(),
        format!("{}: no such file or folder", missing.display())
    );
    assert_eq!(errors[0].line, Some(1));
}

#[test]
fn empty_documents_and_comment_only_files_are_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "empty.yaml", "");
    write(
        dir.path(),
        "comments.yaml",
        "# nothing yet\n---\n---\n# still nothing\n",
    );
    let config = load_paths(&[dir.path()]).expect("loads");
    assert!(config.is_empty());
}

/// Each example folder loads on its own (they are separate deployments: several define the
/// same provider names, so they are not loaded together).
#[test]
fn the_examples_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let config =
            load_paths(&[&dir]).unwrap_or_else(|e| panic!("{} does not load:\n{e}", dir.display()));
        assert!(
            !config.providers.is_empty(),
            "{}: no providers",
            dir.display()
        );
        assert!(
            !config.route_policies.is_empty(),
            "{}: no route policies",
            dir.display()
        );
    }
}
