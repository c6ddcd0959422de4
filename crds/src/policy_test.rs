//! `RoutePolicyTest`: unit tests of routing policies, kept next to them in the config folder.
//!
//! A test document lists requests and what the policies must decide for each (`switchyard
//! test` runs them). It is not a Kubernetes resource: no CRD is generated for it, the proxy's
//! folder loader reads and then ignores it, and the operator never sees it. Keep the documents
//! in `*_test.yaml` files so GitOps tooling can leave them out of what it applies.
//!
//! Every field of a case is checked: an unknown key (a typo such as `rout:`) is an error at its
//! line, never an expectation that silently holds.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Requests and the decisions the policies in the same folder must make for them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "RoutePolicyTest",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutePolicyTestSpec {
    /// The cases, run in order.
    pub cases: Vec<TestCase>,
}

/// One request and what must happen to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestCase {
    /// Shown in the report (`test NAME::CASE ... ok`); unique within the document.
    pub name: String,
    pub request: TestRequest,
    pub expect: Expectation,
}

/// The routing features of a request: what the policy language can read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestRequest {
    /// The `model` field of the request body.
    pub model: String,
    /// Request headers; names are matched case-insensitively.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The client key id.
    #[serde(default)]
    pub key: Option<String>,
    /// The client key's team.
    #[serde(default)]
    pub team: Option<String>,
    /// The client key's user.
    #[serde(default)]
    pub user: Option<String>,
    /// Estimated prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Whether the request asks for a stream.
    #[serde(default)]
    pub stream: bool,
    /// The random draw in `[0, 1)` that picks a split arm. Without it, `expect.target` of a
    /// split route must hold for every arm (use `expect.targets` for the set instead).
    #[serde(default)]
    pub draw: Option<f64>,
    /// Budgets to treat as exhausted: a `reject` budget among those that apply makes the
    /// outcome 429, a `downgrade` budget changes the target.
    #[serde(default)]
    pub exhausted: Vec<String>,
}

/// What must hold; absent fields are not checked, and at least one must be given.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    /// The HTTP outcome of the decision: 200 routed, 404 no route matches, 429 an exhausted
    /// budget rejects.
    #[serde(default)]
    pub status: Option<u16>,
    /// The name of the route that matches.
    #[serde(default)]
    pub route: Option<String>,
    /// The first target tried (`provider/model`).
    #[serde(default)]
    pub target: Option<String>,
    /// Every target the route's selection may try first (for a split, each arm with a weight),
    /// as a set.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// The candidates after the first, in the order they are tried.
    #[serde(default)]
    pub failover: Option<Vec<String>>,
    /// The names of the budgets that count the request, as a set.
    #[serde(default)]
    pub budgets: Option<Vec<String>>,
}

impl Expectation {
    /// Whether nothing is expected (a case must expect something).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}
