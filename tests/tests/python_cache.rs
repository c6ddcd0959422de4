//! The response cache as an application sees it through the official OpenAI Python SDK:
//! `test_cache.py` against the real proxy binary, one route with `cache for 10m` on a mock
//! that counts upstream calls. Hits and misses, streamed and not, read from the
//! `x-switchyard-cache` header with `with_raw_response`.
//!
//! Needs `python3 -m pip install -r tests/python/requirements.txt`; fails (never skips) without.

use switchyard_tests::{ConfigDir, MockProcess, ProxyProcess, pytest};

const POLICY: &str = r#"
route cached {
  when model == "gpt-4o"
  use cache-up/gpt-4o
  cache for 10m
}
"#;

#[test]
fn openai_sdk_sees_cache_hits_and_misses() {
    pytest::require_packages(&["openai"]);
    let up = MockProcess::named("cache-up");
    let mut config = ConfigDir::new();
    config.add_provider("cache-up", &up.base_url(), &["gpt-4o"]);
    config.write_policy(POLICY);
    let proxy = ProxyProcess::spawn(config.path());
    pytest::run(
        &proxy,
        &["test_cache.py"],
        &[("SWITCHYARD_CACHE_MOCK", up.url())],
    );
}
