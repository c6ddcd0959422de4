//! Policy text → compiler sources: evaluation order, and positions that map back to the YAML.

use switchyard_crds::{compile, load_str, sources};
use switchyard_dsl::{SourceKind, render_all};

fn route_policy(name: &str, namespace: Option<&str>, priority: Option<i32>) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    let prio = priority
        .map(|p| format!("  priority: {p}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: RoutePolicy\nmetadata:\n  name: {name}\n{ns}spec:\n{prio}  policy: |\n    route {name} {{\n      use p/m\n    }}\n"
    )
}

#[test]
fn routes_by_priority_then_name_then_budgets() {
    let budget = "apiVersion: switchyard.dev/v1alpha1\nkind: Budget\nmetadata:\n  name: b\nspec:\n  policy: 'budget b { for all limit 5 requests per minute }'\n";
    let text = [
        budget.to_string(),
        route_policy("zeta", None, None),
        route_policy("alpha", Some("team"), None),
        route_policy("beta", None, Some(-1)),
        route_policy("gamma", Some("a"), Some(10)),
        route_policy("alpha", None, None),
    ]
    .join("---\n");
    let config = load_str("all.yaml", &text).expect("loads");
    let order: Vec<(String, SourceKind)> = sources(&config)
        .into_iter()
        .map(|s| (s.origin, s.kind))
        .collect();
    let expected = [
        ("a/gamma", SourceKind::Routes),
        ("alpha", SourceKind::Routes),
        ("zeta", SourceKind::Routes),
        ("team/alpha", SourceKind::Routes),
        ("beta", SourceKind::Routes),
        ("b", SourceKind::Budgets),
    ];
    let expected: Vec<(String, SourceKind)> = expected
        .into_iter()
        .map(|(o, k)| (o.to_string(), k))
        .collect();
    assert_eq!(order, expected);
}

const POLICY_FILE: &str = "\
# Two objects; the policy of the second is indented by six columns.
apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: mock
spec:
  type: mock
  models:
    - name: small
      pricing: { inputPerMillion: 1, outputPerMillion: 2 }
  mock: { latency: 100ms }
---
apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata:
  name: main
  namespace: prod
spec:
  policy: |+
      # comment line
      route first {
        when model == \"x\"

        use opnai/small
      }

  priority: 3
";

/// Every word of the policy maps to where that word is in the file.
#[test]
fn block_scalar_positions_map_to_file_lines_and_columns() {
    let config = load_str("policy.yaml", POLICY_FILE).expect("loads");
    let sources = sources(&config);
    assert_eq!(sources.len(), 1);
    let source = &sources[0];
    assert_eq!(
        (source.file.as_str(), source.origin.as_str()),
        ("policy.yaml", "prod/main")
    );
    assert_eq!((source.line_offset, source.column_offset), (19, 6));
    let file_lines: Vec<&str> = POLICY_FILE.lines().collect();
    for word in [
        "# comment",
        "route",
        "first",
        "when",
        "\"x\"",
        "opnai",
        "small",
        "}",
    ] {
        let offset = source.text.find(word).expect("word in policy") as u32;
        let (line, col) = source.line_col(offset);
        let in_file = &file_lines[line as usize - 1][col as usize - 1..];
        assert!(
            in_file.starts_with(word),
            "{word} mapped to {line}:{col}: {in_file:?}"
        );
    }
    assert_eq!(
        source.line_col(source.text.find("opnai").expect("there") as u32),
        (24, 13)
    );
}

#[test]
fn compile_reports_policy_errors_at_file_positions() {
    let config = load_str("policy.yaml", POLICY_FILE).expect("loads");
    let compiled = compile(&config).expect("catalogue is valid");
    assert!(compiled.has_errors());
    assert!(compiled.snapshot.is_none());
    let rendered = render_all(&compiled.diagnostics, &sources(&config));
    assert!(rendered.contains("unknown provider `opnai`"), "{rendered}");
    assert!(rendered.contains("--> policy.yaml:24:13"), "{rendered}");
}

#[test]
fn compile_builds_a_snapshot_from_valid_objects() {
    let text = POLICY_FILE.replace("opnai", "mock");
    let config = load_str("policy.yaml", &text).expect("loads");
    let compiled = compile(&config).expect("catalogue is valid");
    let rendered = render_all(&compiled.diagnostics, &sources(&config));
    let snapshot = compiled.snapshot.expect(&rendered);
    assert_eq!(snapshot.providers.len(), 1);
    assert_eq!(snapshot.routes.len(), 1);
    assert_eq!(snapshot.routes[0].origin, "prod/main");
}

#[test]
fn compile_returns_catalogue_errors_without_compiling() {
    let text = POLICY_FILE.replace("  mock: { latency: 100ms }\n", "");
    let config = load_str("policy.yaml", &text).expect("loads");
    let errors = compile(&config).expect_err("mock needs a mock block");
    assert_eq!(
        errors.to_string(),
        "policy.yaml:7:3: a provider of type `mock` needs `spec.mock`\n  = help: add e.g. `mock: { latency: 400ms, ttft: 100ms, tokensPerSecond: 50 }`"
    );
}

#[test]
fn the_examples_compile() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("examples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let config = switchyard_crds::load_paths(&[&dir]).expect("example loads");
        let compiled = compile(&config).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let rendered = render_all(&compiled.diagnostics, &sources(&config));
        assert!(!compiled.has_errors(), "{}:\n{rendered}", dir.display());
    }
}

#[test]
fn detached_objects_have_positions_relative_to_the_policy() {
    use switchyard_crds::{Config, Loaded, RoutePolicy, RoutePolicySpec};
    let spec = RoutePolicySpec {
        policy: "route a {\n  use p/m\n}\n".into(),
        priority: None,
        mode: None,
    };
    let mut object = RoutePolicy::new("a", spec);
    object.metadata.namespace = Some("ns".into());
    let config = Config {
        route_policies: vec![Loaded::detached(object, "ns/a")],
        ..Config::default()
    };
    let sources = sources(&config);
    assert_eq!((sources[0].line_offset, sources[0].column_offset), (0, 0));
    assert_eq!(sources[0].origin, "ns/a");
    assert_eq!(sources[0].line_col(14), (2, 5));
}

#[test]
fn test_documents_and_shadow_policies_never_serve() {
    let text = r#"
apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata: { name: live }
spec:
  policy: |
    route chat { when model == "a" use p/m }
---
apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicy
metadata: { name: candidate }
spec:
  mode: Shadow
  policy: |
    route next { when model == "b" use p/m }
---
apiVersion: switchyard.dev/v1alpha1
kind: RoutePolicyTest
metadata: { name: t }
spec:
  cases:
    - name: a
      request: { model: a }
      expect: { route: chat }
"#;
    let config = switchyard_crds::load_str("mixed.yaml", text).expect("loads");
    assert_eq!(config.tests.len(), 1);
    assert_eq!(config.tests[0].object.spec.cases[0].name, "a");
    let origins =
        |s: Vec<switchyard_dsl::Source>| s.into_iter().map(|s| s.origin).collect::<Vec<_>>();
    assert_eq!(origins(sources(&config)), ["live"]);
    let shadow = switchyard_crds::shadow_sources(&config).expect("a shadow policy");
    assert_eq!(origins(shadow), ["candidate", "live"]);
    let (line, column) = config.tests[0]
        .origin
        .position_of("spec.cases[0].expect.route");
    assert_eq!((line, column), (24, Some(24)));
}
