//! The child's change notifications (`notifications/*/list_changed`,
//! `notifications/resources/updated`), fanned out to every open stream of
//! the server: session-era GET streams and 2026-07-28 `subscriptions/listen`
//! streams, each of which filters what it passes on. The end of a child
//! generation goes on the same feed, so streams bound to it end with it.
//!
//! Resource subscriptions are counted here for the listen streams (the
//! sessions count their own): the child gets `resources/unsubscribe` only
//! when nobody holds the URI any more.

use super::Upstream;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Changes buffered per stream; a stream further behind misses the oldest
/// (list changes are idempotent: the client lists again).
pub(super) const FEED: usize = 64;

/// What a change notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// `notifications/tools/list_changed`.
    ToolsListChanged,
    /// `notifications/prompts/list_changed`.
    PromptsListChanged,
    /// `notifications/resources/list_changed`.
    ResourcesListChanged,
    /// `notifications/resources/updated` for this URI.
    ResourceUpdated(String),
}

impl ChangeKind {
    /// The kind of a child notification, if it is a change notification
    /// (a `resources/updated` without a URI is none: nobody could want it).
    pub fn of(msg: &Value) -> Option<Self> {
        match crate::jsonrpc::method(msg) {
            "notifications/tools/list_changed" => Some(Self::ToolsListChanged),
            "notifications/prompts/list_changed" => Some(Self::PromptsListChanged),
            "notifications/resources/list_changed" => Some(Self::ResourcesListChanged),
            "notifications/resources/updated" => msg
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .map(|u| Self::ResourceUpdated(u.to_string())),
            _ => None,
        }
    }
}

/// One item of the feed.
#[derive(Debug, Clone)]
pub enum Change {
    /// A change notification, as the child sent it.
    Note(ChangeKind, Arc<Value>),
    /// Generation `.0` of the child ended; its subscriptions went with it.
    Ended(u64),
}

impl Upstream {
    /// A receiver of this server's change feed from now on.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub(super) fn publish(&self, change: Change) {
        // No receiver is no error: nobody listens right now.
        let _ = self.changes.send(change);
    }

    /// A listen stream takes `uri`; true if it is the first listen
    /// stream holding it.
    pub fn listen_hold(&self, uri: &str) -> bool {
        let mut held = hwc_ai_core::sync::lock(&self.listen_subs);
        let n = held.entry(uri.to_string()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A listen stream lets `uri` go; the listen streams still holding it.
    pub fn listen_release(&self, uri: &str) -> usize {
        let mut held = hwc_ai_core::sync::lock(&self.listen_subs);
        match held.get_mut(uri) {
            Some(n) if *n > 1 => {
                *n -= 1;
                *n
            }
            Some(_) => {
                held.remove(uri);
                0
            }
            None => 0,
        }
    }

    /// Listen streams holding `uri`.
    pub fn listen_holders(&self, uri: &str) -> usize {
        hwc_ai_core::sync::lock(&self.listen_subs)
            .get(uri)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_of_child_notifications() {
        let n = |m: &str, p: Value| json!({"jsonrpc": "2.0", "method": m, "params": p});
        assert_eq!(
            ChangeKind::of(&n("notifications/tools/list_changed", json!({}))),
            Some(ChangeKind::ToolsListChanged)
        );
        assert_eq!(
            ChangeKind::of(&n("notifications/prompts/list_changed", json!({}))),
            Some(ChangeKind::PromptsListChanged)
        );
        assert_eq!(
            ChangeKind::of(&n("notifications/resources/list_changed", json!({}))),
            Some(ChangeKind::ResourcesListChanged)
        );
        assert_eq!(
            ChangeKind::of(&n(
                "notifications/resources/updated",
                json!({"uri": "file:///a"})
            )),
            Some(ChangeKind::ResourceUpdated("file:///a".into()))
        );
        assert_eq!(
            ChangeKind::of(&n("notifications/resources/updated", json!({}))),
            None
        );
        assert_eq!(ChangeKind::of(&n("notifications/message", json!({}))), None);
        assert_eq!(
            ChangeKind::of(&n("notifications/progress", json!({}))),
            None
        );
    }
}
