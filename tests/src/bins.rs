//! Where the workspace's binaries are, and free ports to start them on.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;

/// Overrides the folder the binaries are looked up in (e.g. `target/release`).
pub const BIN_DIR_ENV: &str = "SWITCHYARD_BIN_DIR";

/// The path of the workspace binary `name` (`switchyard-proxy`, `switchyard-mock`, ...).
///
/// A test executable runs from `target/<profile>/deps/`, the binaries sit in
/// `target/<profile>/`; `cargo test --workspace` builds them because their packages have
/// integration tests. `SWITCHYARD_BIN_DIR` overrides the folder.
///
/// # Panics
///
/// When the binary is not there, with the command that builds it.
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => default_bin_dir(),
    };
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the `{name}` binary is not built: expected it at {}.\n\
         Build it with `cargo build -p {} --bin {name}` (or run `cargo test --workspace`, \
         which builds it), or point {BIN_DIR_ENV} at the folder that holds it.",
        path.display(),
        package_of(name),
    );
    path
}

fn default_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a folder")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn package_of(name: &str) -> &str {
    match name {
        "switchyard" => "switchyard-cli",
        "loadgen" => "switchyard-tests",
        other => other,
    }
}

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read the port, let it go.
///
/// Another process may take it before ours binds it; [`crate::ProxyProcess::spawn`] retries.
pub fn free_port() -> u16 {
    free_addr().port()
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port on 127.0.0.1");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is still free");
    }

    #[test]
    fn bin_dir_is_the_profile_folder() {
        let dir = default_bin_dir();
        assert!(!dir.ends_with("deps"), "{}", dir.display());
    }
}
