//! Loading the YAML documents a user would `kubectl apply` from files and folders.
//!
//! Multi-document files are split on `---` lines here (not by the YAML library) so that every
//! document knows the file line it starts on; every error is then reported as
//! `file:line[:column]`, and all of them are collected before giving up.

mod document;
mod error;
mod fields;
pub mod limits;
pub(crate) mod locate;
pub(crate) mod policy;

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;

pub use error::{LoadError, LoadErrorKind, LoadErrors};

use crate::{Budget, LLMProvider, RoutePolicy, RoutePolicyTest};
use locate::{Found, Seg};

/// Everything loaded from a set of files, in load order (files sorted, documents in file order).
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub providers: Vec<Loaded<LLMProvider>>,
    pub route_policies: Vec<Loaded<RoutePolicy>>,
    pub budgets: Vec<Loaded<Budget>>,
    /// `kind: Secret` documents (`apiVersion: v1`) that provider credentials may refer to.
    pub secrets: Vec<Loaded<Secret>>,
    /// `RoutePolicyTest` documents: read so that `switchyard test` finds them beside the
    /// policies, never compiled or served.
    pub tests: Vec<Loaded<RoutePolicyTest>>,
    /// Warnings: entries of a folder that were not read because they are not regular files
    /// (a FIFO, a device, a socket, or a symlink to one).
    pub skipped: Vec<LoadError>,
}

/// One object and the document it came from.
#[derive(Clone, Debug)]
pub struct Loaded<T> {
    pub object: T,
    pub origin: Origin,
}

/// Where a document is: its file, first line, and text (for locating fields in errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The path as given or found while walking a folder, e.g. `examples/quickstart/routes.yaml`.
    pub file: String,
    /// One-based line of the document's first line with content (usually `apiVersion:`).
    pub line: u32,
    /// Zero-based line of `file` where `text` starts (the line after a `---`).
    pub text_offset: u32,
    /// The document's text, without its `---` separator.
    pub text: String,
}

impl Origin {
    /// For an object that did not come from a file (the operator reads objects from the API
    /// server): errors are reported as `name:1: ...`, and policy positions are relative to
    /// `spec.policy` itself (line 1 is its first line).
    pub fn detached(name: impl Into<String>) -> Self {
        Self {
            file: name.into(),
            line: 1,
            text_offset: 0,
            text: String::new(),
        }
    }

    /// One-based (line, column) of the key at `path` (e.g. `spec.models[1].pricing`), or of the
    /// deepest part of it that exists; the document's first line when none does.
    pub(crate) fn key_position(&self, path: &[Seg]) -> (u32, Option<u32>) {
        self.position(path, |f| f.key_col)
    }

    /// One-based (line, column) of the value at a dotted `path` such as
    /// `spec.cases[2].expect.route` (of the deepest part of it that exists), for tools that
    /// report about fields of a loaded document.
    pub fn position_of(&self, path: &str) -> (u32, Option<u32>) {
        let mut segs = Vec::new();
        for part in path.split('.') {
            let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
            if !key.is_empty() {
                segs.push(Seg::key(key));
            }
            while let Some((index, after)) = rest.split_once(']') {
                if let Ok(i) = index.parse() {
                    segs.push(Seg::Index(i));
                }
                rest = after.strip_prefix('[').unwrap_or(after);
            }
        }
        self.value_position(&segs)
    }

    /// Like [`Self::key_position`] but points at the key's value when it is on the same line.
    pub(crate) fn value_position(&self, path: &[Seg]) -> (u32, Option<u32>) {
        self.position(path, |f| f.value_col.unwrap_or(f.key_col))
    }

    fn position(&self, path: &[Seg], col: impl Fn(&Found) -> usize) -> (u32, Option<u32>) {
        match locate::locate(&self.text, path) {
            Some((found, _)) => (
                self.text_offset + found.line as u32 + 1,
                Some(col(&found) as u32 + 1),
            ),
            None => (self.line, None),
        }
    }

    /// An error located at the key `path` in this document.
    pub(crate) fn error_at(
        &self,
        kind: LoadErrorKind,
        path: &[Seg],
        message: impl Into<String>,
    ) -> LoadError {
        let (line, column) = self.key_position(path);
        LoadError::new(kind, &self.file, Some(line), column, message)
    }
}

impl<T> Loaded<T> {
    /// Wraps an object that did not come from a file; see [`Origin::detached`].
    pub fn detached(object: T, name: impl Into<String>) -> Self {
        Self {
            object,
            origin: Origin::detached(name),
        }
    }
}

impl<T: kube::Resource> Loaded<T> {
    /// `metadata.name` (never empty: the loader rejects objects without one).
    pub fn name(&self) -> &str {
        self.object.meta().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object.meta().namespace.as_deref()
    }

    /// `namespace/name`, or `name` when the document has no namespace.
    pub fn qualified_name(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_string(),
        }
    }
}

impl Config {
    /// The value of `key` in the Secret `namespace/name` (`stringData` wins over `data`, as in
    /// Kubernetes). A `None` namespace matches Secret documents without one.
    pub fn secret_value(&self, namespace: Option<&str>, name: &str, key: &str) -> Option<Vec<u8>> {
        let secret = self
            .secrets
            .iter()
            .find(|s| s.name() == name && s.namespace() == namespace)?;
        let s = &secret.object;
        if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.clone().into_bytes());
        }
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
            && self.route_policies.is_empty()
            && self.budgets.is_empty()
            && self.secrets.is_empty()
    }
}

/// Loads every document of the given files and folders. Folders are walked recursively for
/// `*.yaml` and `*.yml` files in sorted order, skipping names that start with `.` (which also
/// skips the `..data` links of a mounted ConfigMap); files named explicitly are read whatever
/// their extension. Symlinks are followed; what is not a regular file in the end is skipped
/// with a warning in [`Config::skipped`] (an error when named explicitly), and so is a folder
/// reached a second time (a symlink loop). A file over
/// [`limits::MAX_FILE_BYTES`], files over [`limits::MAX_TOTAL_BYTES`] together, or a document
/// nested deeper than [`limits::MAX_YAML_DEPTH`] is an error. Returns every problem found, not
/// just the first.
pub fn load_paths(paths: &[impl AsRef<Path>]) -> Result<Config, LoadErrors> {
    into_result(load_paths_partial(paths))
}

/// Like [`load_paths`], but also returns the objects that did load when there are errors
/// (a tool can then report policy diagnostics too). Broken documents are left out.
pub fn load_paths_partial(paths: &[impl AsRef<Path>]) -> (Config, Vec<LoadError>) {
    let mut loader = Loader::default();
    for path in paths {
        loader.add_path(path.as_ref(), true);
    }
    (loader.config, loader.errors)
}

/// Loads the documents of one YAML text; `file` is what errors call it.
pub fn load_str(file: &str, text: &str) -> Result<Config, LoadErrors> {
    let mut loader = Loader::default();
    loader.add_text(file, text);
    into_result((loader.config, loader.errors))
}

fn into_result((config, errors): (Config, Vec<LoadError>)) -> Result<Config, LoadErrors> {
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Identity of an object for duplicate detection: kind, namespace, name.
type ObjectKey = (&'static str, Option<String>, String);

#[derive(Default)]
struct Loader {
    config: Config,
    errors: Vec<LoadError>,
    seen: HashMap<ObjectKey, String>,
    /// Bytes read so far, against [`limits::MAX_TOTAL_BYTES`].
    total: u64,
    /// Canonical paths of the folders read so far.
    folders: std::collections::HashSet<PathBuf>,
}

impl Loader {
    fn add_path(&mut self, path: &Path, explicit: bool) {
        let file = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => return self.io_error(&file, &e),
        };
        if meta.is_dir() {
            // A symlink back to a folder already read (`loop -> .`) would be walked again
            // and again; two of them make the walk exponential.
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            if !self.folders.insert(real) {
                if !explicit {
                    self.config.skipped.push(
                        LoadError::new(
                            LoadErrorKind::Io,
                            &file,
                            None,
                            None,
                            "a folder already read (a symlink loop?); not read again",
                        )
                        .with_help("remove the symlink"),
                    );
                }
                return;
            }
            let mut children: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => return self.io_error(&file, &e),
            };
            children.sort();
            for child in children {
                let name = child.file_name().map(|n| n.to_string_lossy().into_owned());
                if name.is_none_or(|n| n.starts_with('.')) {
                    continue;
                }
                self.add_path(&child, false);
            }
        } else if !meta.is_file() {
            let what = special_kind(&meta);
            let error = LoadError::new(
                LoadErrorKind::Io,
                &file,
                None,
                None,
                format!("not a regular file ({what}); not read"),
            )
            .with_help("a config folder holds YAML files (or symlinks to them); remove it");
            if explicit {
                self.errors.push(error);
            } else if is_yaml(path) {
                self.config.skipped.push(error);
            }
        } else if explicit || is_yaml(path) {
            match self.read(path, &meta) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => self.add_text(&file, &text),
                    Err(_) => self.errors.push(LoadError::new(
                        LoadErrorKind::Io,
                        &file,
                        None,
                        None,
                        "the file is not UTF-8 text",
                    )),
                },
                Err(ReadError::Io(e)) => self.io_error(&file, &e),
                Err(ReadError::TooLarge(message)) => self.errors.push(
                    LoadError::new(LoadErrorKind::Io, &file, None, None, message).with_help(
                        "split it into several files, or keep large data out of the config folder",
                    ),
                ),
            }
        }
    }

    /// Reads a regular file, at most [`limits::MAX_FILE_BYTES`] of it and within what is left
    /// of [`limits::MAX_TOTAL_BYTES`], even if it grows while being read.
    fn read(&mut self, path: &Path, meta: &std::fs::Metadata) -> Result<Vec<u8>, ReadError> {
        let left = limits::MAX_TOTAL_BYTES.saturating_sub(self.total);
        let cap = limits::MAX_FILE_BYTES.min(left);
        let too_large = |size: u64| {
            if size > limits::MAX_FILE_BYTES {
                format!(
                    "the file is larger than {} MiB",
                    limits::MAX_FILE_BYTES >> 20
                )
            } else {
                format!(
                    "the files read together are larger than {} MiB",
                    limits::MAX_TOTAL_BYTES >> 20
                )
            }
        };
        if meta.len() > cap {
            return Err(ReadError::TooLarge(too_large(meta.len())));
        }
        let file = std::fs::File::open(path).map_err(ReadError::Io)?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() as u64 > cap {
            return Err(ReadError::TooLarge(too_large(bytes.len() as u64)));
        }
        self.total += bytes.len() as u64;
        Ok(bytes)
    }

    fn io_error(&mut self, file: &str, e: &std::io::Error) {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or folder".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => format!("cannot read: {e}"),
        };
        self.errors
            .push(LoadError::new(LoadErrorKind::Io, file, None, None, message));
    }

    fn add_text(&mut self, file: &str, text: &str) {
        if text.len() as u64 > limits::MAX_FILE_BYTES {
            return self.errors.push(
                LoadError::new(
                    LoadErrorKind::Io,
                    file,
                    None,
                    None,
                    format!(
                        "the text is larger than {} MiB",
                        limits::MAX_FILE_BYTES >> 20
                    ),
                )
                .with_help("split it into several files"),
            );
        }
        for doc in split_documents(text) {
            document::load(self, file, doc);
        }
    }

    /// Records the object unless one with the same kind, namespace and name was seen.
    fn claim(
        &mut self,
        kind: &'static str,
        origin: &Origin,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let key = (kind, namespace.map(str::to_string), name.to_string());
        let here = format!("{}:{}", origin.file, origin.line);
        if let Some(first) = self.seen.get(&key) {
            let shown = namespace.map_or(name.to_string(), |ns| format!("{ns}/{name}"));
            let (line, column) = origin.value_position(&[Seg::key("metadata"), Seg::key("name")]);
            self.errors.push(
                LoadError::new(
                    LoadErrorKind::Duplicate,
                    &origin.file,
                    Some(line),
                    column,
                    format!("duplicate {kind} `{shown}`"),
                )
                .with_help(format!("the first is at {first}; rename one or delete it")),
            );
            return false;
        }
        self.seen.insert(key, here);
        true
    }
}

/// Why a file was not read.
enum ReadError {
    Io(std::io::Error),
    TooLarge(String),
}

/// What a non-regular file is, for the warning.
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "a special file"
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// One document of a multi-document file, before parsing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawDoc {
    pub text: String,
    /// Zero-based file line where `text` starts.
    pub offset: u32,
}

/// Splits on lines that start a new document (`---`, optionally followed by a space and a
/// comment) or end one (`...`). Empty documents are kept; the caller skips them.
pub(crate) fn split_documents(text: &str) -> Vec<RawDoc> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let marker =
            bare == "---" || bare == "..." || bare.starts_with("--- ") || bare.starts_with("---\t");
        if marker {
            docs.push(RawDoc {
                text: std::mem::take(&mut current),
                offset,
            });
            offset = i as u32 + 1;
        } else {
            current.push_str(line);
        }
    }
    docs.push(RawDoc {
        text: current,
        offset,
    });
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_separator_lines_and_keeps_offsets() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- # two\n\nc: 3\n...\n");
        let got: Vec<(&str, u32)> = docs.iter().map(|d| (d.text.as_str(), d.offset)).collect();
        assert_eq!(
            got,
            [("a: 1\n", 0), ("b: 2\n", 2), ("\nc: 3\n", 4), ("", 7)]
        );
    }

    const SECRET: &str =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: v\n";

    #[cfg(unix)]
    #[test]
    fn special_files_and_symlink_loops_are_skipped_with_warnings() -> std::io::Result<()> {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), SECRET)?;
        symlink("/dev/zero", d.join("zero.yaml"))?;
        let made = std::process::Command::new("mkfifo")
            .arg(d.join("fifo.yaml"))
            .status()?;
        assert!(made.success());
        symlink(".", d.join("loop1"))?;
        symlink(".", d.join("loop2"))?;
        let config = load_paths(&[d]).expect("the regular file loads");
        assert_eq!(config.secrets.len(), 1);
        let mut skipped: Vec<&str> = config.skipped.iter().map(|e| e.message.as_str()).collect();
        skipped.sort();
        assert_eq!(
            skipped,
            [
                "a folder already read (a symlink loop?); not read again",
                "a folder already read (a symlink loop?); not read again",
                "not a regular file (a FIFO); not read",
                "not a regular file (a device); not read",
            ]
        );
        // Named explicitly, a special file is an error.
        let errors = load_paths(&[d.join("fifo.yaml")]).expect_err("refused");
        assert!(errors.0[0].message.contains("FIFO"), "{errors}");
        Ok(())
    }

    #[test]
    fn files_over_the_size_limits_are_errors() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let padding = "#".repeat(1023) + "\n";
        let big = padding.repeat(limits::MAX_FILE_BYTES as usize / 1024 + 1);
        std::fs::write(d.join("big.yaml"), &big)?;
        let errors = load_paths(&[d]).expect_err("too large");
        assert_eq!(errors.0[0].message, "the file is larger than 4 MiB");
        std::fs::remove_file(d.join("big.yaml"))?;
        // Under the limit each, over it together.
        let file = padding.repeat(limits::MAX_FILE_BYTES as usize / 1024 - 1);
        let files = limits::MAX_TOTAL_BYTES / file.len() as u64 + 1;
        for i in 0..files {
            std::fs::write(d.join(format!("f{i:02}.yaml")), &file)?;
        }
        let errors = load_paths(&[d]).expect_err("too large together");
        assert_eq!(errors.len(), 1, "{errors}");
        assert_eq!(
            errors.0[0].message,
            "the files read together are larger than 32 MiB"
        );
        assert!(load_str("big.yaml", &big).is_err());
        Ok(())
    }

    #[test]
    fn a_leading_separator_gives_an_empty_first_document() {
        let docs = split_documents("---\na: 1\n");
        assert_eq!(docs[0].text, "");
        assert_eq!(
            docs[1],
            RawDoc {
                text: "a: 1\n".into(),
                offset: 1
            }
        );
    }
}
