//! Shared harness of the end-to-end tests: find the workspace binaries, start them on
//! ephemeral ports, write config folders, and talk plain HTTP/1.1 to them.
//!
//! ```no_run
//! use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess};
//!
//! let mock = MockProcess::named("mock-a");
//! let mut config = ConfigDir::new();
//! config.add_provider("mock-a", &mock.base_url(), &["gpt-4o"]);
//! config.write_policy("route chat {\n  use mock-a/gpt-4o\n}\n");
//! let proxy = ProxyProcess::spawn(config.path());
//! let models = switchyard_tests::http::get(proxy.listen_addr(), "/v1/models").expect("served");
//! assert_eq!(models.status, 200);
//! // Dropping `proxy` and `mock` stops the processes; dropping `config` removes the folder.
//! ```

pub mod apiserver;
pub mod bins;
pub mod config;
pub mod http;
pub mod process;
pub mod pytest;

pub use bins::{binary, free_port};
pub use config::ConfigDir;
pub use process::{MockProcess, ProxyProcess};
