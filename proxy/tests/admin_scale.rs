//! `/admin/targets` and `/admin/snapshot` of a policy with many routes stay bounded: targets
//! and routes are paged, and each target lists at most 20 of its routes (`routes_total`
//! counts them all).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn admin_lists_are_paged_at_hundreds_of_routes() {
    let (a, b) = (mock("a").await, mock("b").await);
    let mut policy: String = (0..250)
        .map(|i| format!("route r{i} {{\n  when model == \"m{i}\"\n  use a/m\n}}\n"))
        .collect();
    policy.push_str("route last {\n  use b/m\n}\n");
    let catalogue = vec![upstream("a", &a, &["m"]), upstream("b", &b, &["m"])];
    let proxy = start_proxy(snapshot(&policy, catalogue), |_| {});

    let first = get(&proxy.admin_url, "/admin/targets?limit=1").await.json();
    assert_eq!(first["total"], 2);
    assert_eq!(first["next_offset"], 1);
    let targets = first["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["target"], "a/m");
    assert_eq!(targets[0]["routes_total"], 250);
    assert_eq!(targets[0]["routes"].as_array().map(Vec::len), Some(20));
    assert_eq!(targets[0]["routes"][0]["route"], "r0");

    let second = get(&proxy.admin_url, "/admin/targets?offset=1&limit=1")
        .await
        .json();
    assert_eq!(second["next_offset"], serde_json::Value::Null);
    assert_eq!(second["targets"][0]["target"], "b/m");
    assert_eq!(second["targets"][0]["routes_total"], 1);

    let snapshot = get(&proxy.admin_url, "/admin/snapshot").await.json();
    assert_eq!(snapshot["routes_total"], 251);
    assert_eq!(snapshot["routes"].as_array().map(Vec::len), Some(251));
    let page = get(&proxy.admin_url, "/admin/snapshot?offset=200&limit=100")
        .await
        .json();
    assert_eq!(page["routes"].as_array().map(Vec::len), Some(51));
    assert_eq!(page["routes"][50]["name"], "last");
    assert_eq!(page["next_offset"], serde_json::Value::Null);
}
