//! The last applied envelope on disk: `{state-dir}/snapshot.json`, written to a temporary file
//! with mode 0600 (it holds provider keys) and renamed over the old one, so a crash never
//! leaves a half-written snapshot.

use std::io::Write;
use std::path::Path;

use switchyard_dsl::channel::SnapshotEnvelope;

/// File name of the persisted envelope inside the state folder.
pub const STATE_FILE: &str = "snapshot.json";

/// Writes `env` to `{dir}/snapshot.json` atomically, creating `dir` when needed.
pub fn persist(dir: &Path, env: &SnapshotEnvelope) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
    let bytes = serde_json::to_vec(env).map_err(std::io::Error::other)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    #[cfg(unix)]
    {
        // A temporary file left by an older run may have other permissions.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(STATE_FILE))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The persisted envelope, `None` when there is none yet.
pub fn load_persisted(dir: &Path) -> std::io::Result<Option<SnapshotEnvelope>> {
    let bytes = match std::fs::read(dir.join(STATE_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // serde_json's message can quote the offending value (which may be a key): keep only its
    // category and position.
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{STATE_FILE} is not a snapshot envelope ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_private_permissions() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let state = dir.path().join("state");
        assert!(load_persisted(&state)?.is_none());
        let active = crate::config::load_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart"),
            1,
        )
        .map_err(std::io::Error::other)?;
        let env = SnapshotEnvelope {
            version: 4,
            snapshot: active.snapshot,
            credentials: [("a".to_string(), "sk-x".to_string())].into(),
            client_keys: Vec::new(),
            traceparent: None,
            shadow: None,
        };
        persist(&state, &env)?;
        persist(&state, &env)?;
        assert_eq!(load_persisted(&state)?, Some(env));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state.join(STATE_FILE))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(state.join(STATE_FILE), "{")?;
        assert!(load_persisted(&state).is_err());
        Ok(())
    }
}
