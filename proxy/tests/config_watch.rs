//! The folder watcher: valid edits swap in a new version, broken edits keep the last good one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_proxy::config::{ConfigHandle, load_dir, spawn_watcher};
use switchyard_proxy::metrics::Metrics;

const PROVIDERS: &str = r#"apiVersion: switchyard.dev/v1alpha1
kind: LLMProvider
metadata:
  name: mock-a
spec:
  type: mock
  mock: { latency: 10ms, ttft: 5ms, tokensPerSecond: 100 }
  models:
    - name: small
      pricing: { inputPerMillion: 0.15, outputPerMillion: 0.6 }
    - name: large
      pricing: { inputPerMillion: 2.5, outputPerMillion: 10 }
"#;

fn routes(body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: switchyard.dev/v1alpha1\nkind: RoutePolicy\nmetadata:\n  name: main\nspec:\n  policy: |\n{indented}"
    )
}

const ONE_ROUTE: &str = "route chat {\n  when model == \"gpt-4o\"\n  use mock-a/large\n}\n";
const TWO_ROUTES: &str = "route mini {\n  when model == \"mini\"\n  use mock-a/small\n}\nroute chat {\n  when model == \"gpt-4o\"\n  use mock-a/large\n}\n";
const BROKEN: &str = "route mini {\n  when model == \"mini\"\n  use mock-a/tiny\n}\n";

/// Generous: the watcher polls every 250 ms and debounces 200 ms.
const DEADLINE: Duration = Duration::from_secs(10);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    // Write beside and rename, as editors and `kubectl cp` do, so no half file is read.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

fn reload_errors(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_config_reloads_total{result=\"error\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn edits_swap_bad_edits_keep_the_last_good_config_and_fixes_recover() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    write(d, "providers.yaml", PROVIDERS);
    write(d, "routes.yaml", &routes(ONE_ROUTE));
    let handle = Arc::new(ConfigHandle::new(load_dir(d, 1).expect("initial load")));
    let metrics = Arc::new(Metrics::new());
    spawn_watcher(d.to_path_buf(), handle.clone(), metrics.clone()).expect("watcher starts");

    // A valid change: version 2 with both routes.
    write(d, "routes.yaml", &routes(TWO_ROUTES));
    wait_for("version 2", || handle.current().version == 2);
    let good = handle.current();
    assert_eq!(good.snapshot.routes.len(), 2);
    assert!(metrics.render().contains("switchyard_snapshot_version 2"));

    // A broken policy: rejected, counted, the old snapshot still served.
    write(d, "routes.yaml", &routes(BROKEN));
    wait_for("a rejected reload", || reload_errors(&metrics) >= 1);
    let still = handle.current();
    assert_eq!(still.version, 2);
    assert_eq!(still.snapshot.hash, good.snapshot.hash);

    // Rewriting identical content is not a new version.
    write(d, "providers.yaml", PROVIDERS);

    // The fix: version 3.
    write(d, "routes.yaml", &routes(ONE_ROUTE));
    wait_for("version 3", || handle.current().version == 3);
    assert_eq!(handle.current().snapshot.routes.len(), 1);
    assert!(
        metrics
            .render()
            .contains(r#"switchyard_config_reloads_total{result="ok"} 2"#)
    );
}

#[test]
fn unchanged_content_does_not_bump_the_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    write(d, "providers.yaml", PROVIDERS);
    write(d, "routes.yaml", &routes(ONE_ROUTE));
    let handle = Arc::new(ConfigHandle::new(load_dir(d, 1).expect("initial load")));
    let metrics = Arc::new(Metrics::new());
    spawn_watcher(d.to_path_buf(), handle.clone(), metrics.clone()).expect("watcher starts");
    // A comment outside the policy changes the file but not the compiled snapshot.
    write(
        d,
        "routes.yaml",
        &format!("# edited\n{}", routes(ONE_ROUTE)),
    );
    write(d, "notes.yaml.bak", "ignored");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(handle.current().version, 1);
    assert_eq!(reload_errors(&metrics), 0);
}

#[cfg(unix)]
#[test]
fn a_configmap_style_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let stage = |name: &str, routes_body: &str| {
        std::fs::create_dir(d.join(name)).expect("mkdir");
        std::fs::write(d.join(name).join("providers.yaml"), PROVIDERS).expect("write");
        std::fs::write(d.join(name).join("routes.yaml"), routes(routes_body)).expect("write");
    };
    stage("..2026_01", ONE_ROUTE);
    symlink("..2026_01", d.join("..data")).expect("link");
    symlink("..data/providers.yaml", d.join("providers.yaml")).expect("link");
    symlink("..data/routes.yaml", d.join("routes.yaml")).expect("link");
    let handle = Arc::new(ConfigHandle::new(load_dir(d, 1).expect("initial load")));
    assert_eq!(handle.current().snapshot.routes.len(), 1);
    spawn_watcher(d.to_path_buf(), handle.clone(), Arc::new(Metrics::new()))
        .expect("watcher starts");

    // What the kubelet does: a new timestamped folder, then an atomic swap of `..data`.
    stage("..2026_02", TWO_ROUTES);
    symlink("..2026_02", d.join("..data_tmp")).expect("link");
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).expect("swap");
    std::fs::remove_dir_all(d.join("..2026_01")).expect("cleanup");
    wait_for("version 2", || handle.current().version == 2);
    assert_eq!(handle.current().snapshot.routes.len(), 2);
}
