//! `hwc-ai models`: the manager's declared models (present, pulling with
//! progress, failed with why), a reconcile on demand, and `--watch`
//! progress bars while pulls run.

use crate::client::{Client, ClientError};
use crate::render::{self, state, table};
use hwc_ai_core::status::Envelope;
use hwc_model_manager::api::ManagerStatus;
use hwc_model_manager::reconcile::State;
use serde_json::Value;

/// The manager's status (its models).
pub async fn status(c: &Client) -> Result<Envelope<ManagerStatus>, ClientError> {
    c.get_json("/status").await
}

/// `POST /reconcile`: the manager pulls, verifies and prunes now.
pub async fn reconcile(c: &Client) -> Result<Value, ClientError> {
    c.post_json("/reconcile", &serde_json::json!({})).await
}

/// Whether any model is still moving (pulling or verifying).
pub fn busy(s: &ManagerStatus) -> bool {
    s.models
        .iter()
        .any(|m| matches!(m.state, State::Pulling { .. } | State::Verifying))
}

/// A model's state word and its detail (progress, or why it failed).
pub fn state_of(m: &State) -> (&'static str, String) {
    match m {
        State::Missing => ("missing", String::new()),
        State::Pulling { done, total, rate } => (
            "pulling",
            if *total > 0 {
                format!(
                    "{:.0} % of {} at {}/s",
                    *done as f64 * 100.0 / *total as f64,
                    render::bytes(*total),
                    render::bytes(*rate as u64)
                )
            } else {
                format!(
                    "{} at {}/s",
                    render::bytes(*done),
                    render::bytes(*rate as u64)
                )
            },
        ),
        State::Verifying => ("verifying", String::new()),
        State::Present => ("present", String::new()),
        State::Failed { reason, permanent } => (
            "failed",
            format!("{reason}{}", if *permanent { " (permanent)" } else { "" }),
        ),
    }
}

/// The models table (and the undeclared models kept).
pub fn render(s: &ManagerStatus) -> String {
    if s.models.is_empty() {
        return "no models declared\n".into();
    }
    let mut t = table(&["MODEL", "KIND", "STATE", "DETAIL"]);
    for m in &s.models {
        let (st, detail) = state_of(&m.state);
        t.add_row(vec![m.name.clone(), m.kind.clone(), state(st), detail]);
    }
    let mut out = render::lines(&t) + "\n";
    if !s.undeclared.is_empty() {
        out.push_str(&format!("undeclared (kept): {}\n", s.undeclared.join(", ")));
    }
    out
}
