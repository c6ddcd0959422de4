//! Hot reload: poll the config folder, debounce, recompile, swap when the result differs.
//!
//! Polling a cheap fingerprint (paths, sizes, mtimes, inodes of the files the loader reads)
//! was chosen over filesystem events because it behaves the same everywhere a config folder
//! lives: a Kubernetes ConfigMap volume (files are symlinks through `..data`, replaced by an
//! atomic symlink swap that per-file inotify watches do not see), overlay and network
//! filesystems, editors that write a temporary file and rename it, and a folder that is
//! deleted and recreated. It needs no inotify watch budget and no extra dependency; the cost
//! is a few `stat` calls per tick. A content hash every few seconds catches same-size edits
//! on filesystems with coarse mtimes.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Read as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use switchyard_crds::load::limits::MAX_FILE_BYTES;

use super::{ActiveConfig, ConfigError, ConfigHandle, load_dir};
use crate::metrics::Metrics;

/// How often the folder's fingerprint is taken.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long the folder must stay unchanged before it is reloaded (editors and `kubectl cp`
/// write in several steps).
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest wait for a folder that keeps changing; it is loaded as it is then.
const MAX_SETTLE: Duration = Duration::from_secs(2);
/// Every this many ticks the files' contents are hashed too.
const CONTENT_CHECK_TICKS: u32 = 20;

/// Starts the watcher thread for `dir`. It reloads on any change in the folder and swaps
/// `handle` only when the compiled snapshot hash, the resolved provider keys or the client keys
/// changed. It keeps the last good configuration when the folder does not compile or would
/// leave no routes where there were some (logging why at warn level and counting
/// `switchyard_config_reloads_total{result="error"}`). The thread ends
/// when it holds the last reference to `handle`.
pub fn spawn_watcher(
    dir: PathBuf,
    handle: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    std::fs::metadata(&dir)?;
    metrics.set_snapshot_version(handle.current().version);
    let watcher = Watcher {
        seen: fingerprint(&dir),
        content: content_hash(&dir),
        failing: false,
        dir,
        handle,
        metrics,
    };
    std::thread::Builder::new()
        .name("config-watch".to_string())
        .spawn(move || watcher.run())?;
    Ok(())
}

struct Watcher {
    dir: PathBuf,
    handle: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    /// Fingerprint of the folder when it was last loaded.
    seen: u64,
    /// Content hash of the folder when it was last loaded.
    content: u64,
    /// The last reload was rejected.
    failing: bool,
}

impl Watcher {
    fn run(mut self) {
        tracing::info!(dir = %self.dir.display(), "watching the config folder");
        // The initial load happened before the first fingerprint: catch edits in between.
        self.reload();
        let mut tick = 0u32;
        loop {
            std::thread::sleep(POLL_INTERVAL);
            if Arc::strong_count(&self.handle) == 1 {
                return;
            }
            tick = tick.wrapping_add(1);
            let now = fingerprint(&self.dir);
            let changed = if now != self.seen {
                true
            } else if tick.is_multiple_of(CONTENT_CHECK_TICKS) {
                content_hash(&self.dir) != self.content
            } else {
                false
            };
            if changed {
                self.seen = settle(&self.dir, now);
                self.content = content_hash(&self.dir);
                self.reload();
            }
        }
    }

    fn reload(&mut self) {
        let current = self.handle.current();
        let started = Instant::now();
        // A compiler bug must not end hot reload for the life of the process.
        let loaded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            load_dir(&self.dir, current.version + 1)
        }))
        .unwrap_or(Err(ConfigError::Panicked))
        .and_then(|next| keeps_routes(&current, next));
        match loaded {
            Ok(next) if same(&current, &next) => {
                if self.failing {
                    tracing::info!(
                        dir = %self.dir.display(),
                        version = current.version,
                        "config folder is valid again; it compiles to the snapshot being served"
                    );
                } else {
                    tracing::debug!(dir = %self.dir.display(), "config folder changed; snapshot unchanged");
                }
                self.failing = false;
            }
            Ok(next) => {
                tracing::info!(
                    dir = %self.dir.display(),
                    version = next.version,
                    hash = %next.snapshot.hash,
                    routes = next.snapshot.routes.len(),
                    providers = next.snapshot.providers.len(),
                    client_keys = next.keys.len(),
                    compile_ms = started.elapsed().as_millis() as u64,
                    "config reloaded"
                );
                self.metrics.set_snapshot_version(next.version);
                self.metrics.config_reload(true);
                self.handle.swap(next);
                self.failing = false;
            }
            Err(e) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    serving_version = current.version,
                    serving_hash = %current.snapshot.hash,
                    diagnostics = %e,
                    "config reload rejected; keeping the last good config"
                );
                self.metrics.config_reload(false);
                self.failing = true;
            }
        }
    }
}

/// Refuses a configuration with no routes in place of one that has some (see
/// [`ConfigError::NoRoutes`]).
fn keeps_routes(current: &ActiveConfig, next: ActiveConfig) -> Result<ActiveConfig, ConfigError> {
    let serving = current.snapshot.routes.len();
    if serving > 0 && next.snapshot.routes.is_empty() {
        return Err(ConfigError::NoRoutes { serving });
    }
    Ok(next)
}

/// Whether `next` would serve exactly what `current` serves: the same compiled snapshot,
/// provider keys and client keys (an edit of a client-keys Secret alone must take effect).
fn same(current: &ActiveConfig, next: &ActiveConfig) -> bool {
    current.snapshot.hash == next.snapshot.hash
        && current.credentials == next.credentials
        && current.shadow == next.shadow
        && current.keys == next.keys
}

/// Waits until the fingerprint holds still for [`DEBOUNCE`] (at most [`MAX_SETTLE`]) and
/// returns it.
fn settle(dir: &Path, mut last: u64) -> u64 {
    let deadline = Instant::now() + MAX_SETTLE;
    loop {
        std::thread::sleep(DEBOUNCE);
        let now = fingerprint(dir);
        if now == last || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// Hash of the metadata of every file the loader would read, plus the `..data` link target of
/// a mounted ConfigMap. Unreadable entries hash their error kind, so a folder that vanishes or
/// comes back counts as a change.
fn fingerprint(dir: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    if let Ok(target) = std::fs::read_link(dir.join("..data")) {
        target.hash(&mut h);
    }
    walk(dir, &mut |path, meta| {
        path.hash(&mut h);
        match meta {
            Ok(meta) => {
                meta.len().hash(&mut h);
                meta.modified().ok().map(since_epoch).hash(&mut h);
                file_id(meta).hash(&mut h);
            }
            Err(kind) => kind.hash(&mut h),
        }
    });
    h.finish()
}

/// Hash of the contents of every file the loader would read, each read only up to the
/// loader's size limit (a larger file is refused by the loader; its size is in the
/// fingerprint).
fn content_hash(dir: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    walk(dir, &mut |path, meta| {
        path.hash(&mut h);
        if meta.is_ok() {
            let mut bytes = Vec::new();
            let read = std::fs::File::open(path)
                .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
            match read {
                Ok(_) => bytes.hash(&mut h),
                Err(e) => e.kind().hash(&mut h),
            }
        }
    });
    h.finish()
}

type Visit<'a> = dyn FnMut(&Path, Result<&std::fs::Metadata, std::io::ErrorKind>) + 'a;

/// Visits files the way `switchyard_crds::load_paths` does: recursively, sorted, skipping
/// names that start with `.`, only `*.yaml` / `*.yml`, only regular files after following
/// symlinks (a FIFO would block the watcher, a link to `/dev/zero` never ends).
fn walk(dir: &Path, visit: &mut Visit<'_>) {
    walk_from(dir, visit, &mut HashSet::new());
}

/// [`walk`], reading each real folder once (`seen` holds canonical paths), as the loader does:
/// a symlink loop would otherwise be walked until path resolution fails, exponentially often.
fn walk_from(dir: &Path, visit: &mut Visit<'_>, seen: &mut HashSet<PathBuf>) {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !seen.insert(real) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return visit(dir, Err(e.kind())),
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        let hidden = child
            .file_name()
            .is_none_or(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        match std::fs::metadata(&child) {
            Ok(meta) if meta.is_dir() => walk_from(&child, visit, seen),
            Ok(meta) if meta.is_file() && is_yaml(&child) => visit(&child, Ok(&meta)),
            Ok(_) => {}
            Err(e) => visit(&child, Err(e.kind())),
        }
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn since_epoch(t: SystemTime) -> Option<Duration> {
    t.duration_since(SystemTime::UNIX_EPOCH).ok()
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (0, 0, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_edits_new_files_and_hidden_names_not() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.yaml"), "a: 1\n")?;
        let first = fingerprint(dir.path());
        assert_eq!(first, fingerprint(dir.path()));
        std::fs::write(dir.path().join(".hidden.yaml"), "x")?;
        std::fs::write(dir.path().join("notes.txt"), "x")?;
        assert_eq!(first, fingerprint(dir.path()));
        std::fs::write(dir.path().join("a.yaml"), "a: 22\n")?;
        let second = fingerprint(dir.path());
        assert_ne!(first, second);
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("sub/b.yml"), "b: 1\n")?;
        assert_ne!(second, fingerprint(dir.path()));
        Ok(())
    }

    #[test]
    fn content_hash_sees_same_size_edits() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.yaml"), "a: 1\n")?;
        let first = content_hash(dir.path());
        std::fs::write(dir.path().join("a.yaml"), "a: 2\n")?;
        assert_ne!(first, content_hash(dir.path()));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn configmap_style_symlink_swap_changes_the_fingerprint() -> std::io::Result<()> {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir(d.join("..v1"))?;
        std::fs::write(d.join("..v1/a.yaml"), "a: 1\n")?;
        symlink("..v1", d.join("..data"))?;
        symlink("..data/a.yaml", d.join("a.yaml"))?;
        let first = fingerprint(d);
        std::fs::create_dir(d.join("..v2"))?;
        std::fs::write(d.join("..v2/a.yaml"), "a: 1\n")?;
        symlink("..v2", d.join("..data_tmp"))?;
        std::fs::rename(d.join("..data_tmp"), d.join("..data"))?;
        assert_ne!(first, fingerprint(d));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_not_visited_and_symlinks_to_files_are() -> std::io::Result<()> {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), "a: 1\n")?;
        symlink("/dev/zero", d.join("zero.yaml"))?;
        let status = std::process::Command::new("mkfifo")
            .arg(d.join("fifo.yaml"))
            .status()?;
        assert!(status.success());
        std::fs::create_dir(d.join("..v1"))?;
        std::fs::write(d.join("..v1/b.yaml"), "b: 1\n")?;
        symlink("..v1/b.yaml", d.join("b.yaml"))?;
        let mut seen = Vec::new();
        walk(d, &mut |path, _| {
            seen.push(path.file_name().map(|n| n.to_string_lossy().into_owned()))
        });
        assert_eq!(seen, [Some("a.yaml".into()), Some("b.yaml".into())]);
        // Neither hash blocks on the FIFO nor reads /dev/zero.
        assert_eq!(content_hash(d), content_hash(d));
        assert_eq!(fingerprint(d), fingerprint(d));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_walked_once() -> std::io::Result<()> {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), "a: 1\n")?;
        for name in ["loop1", "loop2", "loop3"] {
            symlink(".", d.join(name))?;
        }
        let mut seen = 0;
        walk(d, &mut |_, _| seen += 1);
        assert_eq!(seen, 1);
        Ok(())
    }

    #[test]
    fn keys_alone_make_a_different_config_and_emptied_routes_are_refused() {
        let current = ActiveConfig {
            version: 1,
            ..ActiveConfig::empty()
        };
        let mut next = current.clone();
        assert!(same(&current, &next));
        next.keys.insert(
            crate::auth::KeyHash::of("sk-new"),
            crate::auth::KeyEntry {
                id: "new".into(),
                team: None,
                user: None,
                allow_ips: Vec::new(),
                expires_at: None,
            },
        );
        assert!(!same(&current, &next));
        // No routes before: nothing to lose.
        assert!(keeps_routes(&current, next).is_ok());

        let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        let serving = load_dir(&quickstart, 1).expect("the quickstart loads");
        let routes = serving.snapshot.routes.len();
        assert!(routes > 0);
        let mut emptied = serving.clone();
        emptied.snapshot.routes.clear();
        match keeps_routes(&serving, emptied) {
            Err(ConfigError::NoRoutes { serving }) => assert_eq!(serving, routes),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_missing_folder_has_a_stable_fingerprint() {
        let gone = Path::new("/nonexistent/switchyard/config");
        assert_eq!(fingerprint(gone), fingerprint(gone));
    }
}
