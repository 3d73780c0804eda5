//! Session-era client sessions: a random 128-bit `Mcp-Session-Id` bound to
//! one server and to the generation of its child that was live at
//! `initialize`. A session costs a map entry, nothing on the child (Open
//! WebUI opens one per chat request); sessions idle past
//! `http.session_idle_timeout`, or the least recently used beyond
//! `http.max_sessions`, are ended. A session keeps the resource URIs it
//! subscribed to (what its GET stream passes on), and a token cancelled
//! when it ends, however it ends, so its GET streams end with it.

use crate::upstream::Upstream;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The server it was opened on.
    pub server: String,
    /// The child generation it is bound to.
    pub generation: u64,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// The caller (token name) that opened it; only it may use it.
    pub client: String,
    /// Resource URIs it subscribed to.
    pub subscriptions: BTreeSet<String>,
    /// Cancelled when the session ends.
    pub ended: CancellationToken,
    /// The session's own child (`isolation = "per-session"`); `None`: the
    /// server's shared one.
    pub upstream: Option<Arc<Upstream>>,
    last_used: Instant,
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.server,
            self.generation,
            &self.protocol_version,
            &self.client,
        ) == (
            &other.server,
            other.generation,
            &other.protocol_version,
            &other.client,
        )
    }
}

impl Eq for Session {}

/// Why a session id is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Usable.
    Ok(Session),
    /// Never issued, ended, expired or opened by another caller.
    Unknown,
    /// Bound to a child that has since ended.
    Stale,
}

/// Every open session.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    max: usize,
    idle: Duration,
}

impl Sessions {
    /// An empty store holding at most `max`, ending those idle for `idle`.
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max: max.max(1),
            idle,
        }
    }

    /// Opens a session on the server's shared child; returns its id.
    pub fn open(
        &self,
        server: &str,
        generation: u64,
        protocol_version: &str,
        client: &str,
    ) -> String {
        self.open_own(
            server,
            generation,
            protocol_version,
            client,
            CancellationToken::new(),
            None,
        )
    }

    /// Opens a session with `ended` as its end token and, for a
    /// per-session server, its own child; returns its id.
    pub fn open_own(
        &self,
        server: &str,
        generation: u64,
        protocol_version: &str,
        client: &str,
        ended: CancellationToken,
        upstream: Option<Arc<Upstream>>,
    ) -> String {
        let id = hex::encode(rand::random::<u128>().to_be_bytes());
        let mut map = hwc_ai_core::sync::lock(&self.map);
        if map.len() >= self.max {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            {
                end(&mut map, &oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                server: server.into(),
                generation,
                protocol_version: protocol_version.into(),
                client: client.into(),
                subscriptions: BTreeSet::new(),
                ended,
                upstream,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// The session `id`'s own child, if it has one (and is open).
    pub fn own_upstream(&self, id: &str) -> Option<Arc<Upstream>> {
        hwc_ai_core::sync::lock(&self.map)
            .get(id)
            .and_then(|s| s.upstream.clone())
    }

    /// The session `id` for `server`, used by `client`, as long as the
    /// child's live generation is `live` (`None`: the child is down). A
    /// stale session is ended here.
    pub fn get(&self, id: &str, server: &str, client: &str, live: Option<u64>) -> Lookup {
        let mut map = hwc_ai_core::sync::lock(&self.map);
        let Some(s) = map.get_mut(id) else {
            return Lookup::Unknown;
        };
        if s.server != server || s.client != client || s.last_used.elapsed() > self.idle {
            return Lookup::Unknown;
        }
        if live != Some(s.generation) {
            end(&mut map, id);
            return Lookup::Stale;
        }
        s.last_used = Instant::now();
        Lookup::Ok(s.clone())
    }

    /// Ends session `id` of `server` opened by `client`; false if there was none.
    pub fn close(&self, id: &str, server: &str, client: &str) -> bool {
        let mut map = hwc_ai_core::sync::lock(&self.map);
        if map
            .get(id)
            .is_some_and(|s| s.server == server && s.client == client)
        {
            end(&mut map, id);
            true
        } else {
            false
        }
    }

    /// Ends the sessions idle too long.
    pub fn sweep(&self) {
        let idle = self.idle;
        hwc_ai_core::sync::lock(&self.map).retain(|_, s| {
            let keep = s.last_used.elapsed() <= idle;
            if !keep {
                s.ended.cancel();
            }
            keep
        });
    }

    /// Marks session `id` used now (an open GET stream keeps its session
    /// alive); false if it has ended.
    pub fn touch(&self, id: &str) -> bool {
        match hwc_ai_core::sync::lock(&self.map).get_mut(id) {
            Some(s) => {
                s.last_used = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Records that session `id` subscribed to `uri`.
    pub fn subscribe(&self, id: &str, uri: &str) {
        if let Some(s) = hwc_ai_core::sync::lock(&self.map).get_mut(id) {
            s.subscriptions.insert(uri.to_string());
        }
    }

    /// Session `id` lets `uri` go; the sessions of `server` still holding it.
    pub fn unsubscribe(&self, id: &str, server: &str, uri: &str) -> usize {
        let mut map = hwc_ai_core::sync::lock(&self.map);
        if let Some(s) = map.get_mut(id) {
            s.subscriptions.remove(uri);
        }
        drop(map);
        self.holders(server, uri)
    }

    /// Sessions of `server` holding `uri`.
    pub fn holders(&self, server: &str, uri: &str) -> usize {
        hwc_ai_core::sync::lock(&self.map)
            .values()
            .filter(|s| s.server == server && s.subscriptions.contains(uri))
            .count()
    }

    /// Whether session `id` holds `uri`.
    pub fn subscribed(&self, id: &str, uri: &str) -> bool {
        hwc_ai_core::sync::lock(&self.map)
            .get(id)
            .is_some_and(|s| s.subscriptions.contains(uri))
    }

    /// Open sessions of `server`.
    pub fn count(&self, server: &str) -> usize {
        hwc_ai_core::sync::lock(&self.map)
            .values()
            .filter(|s| s.server == server)
            .count()
    }
}

fn end(map: &mut HashMap<String, Session>, id: &str) {
    if let Some(s) = map.remove(id) {
        s.ended.cancel();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let s = Sessions::new(2, Duration::from_secs(60));
        let a = s.open("time", 1, "2025-06-18", "webui");
        assert_eq!(a.len(), 32);
        assert!(
            matches!(s.get(&a, "time", "webui", Some(1)), Lookup::Ok(x) if x.protocol_version == "2025-06-18")
        );
        assert_eq!(
            s.get(&a, "git", "webui", Some(1)),
            Lookup::Unknown,
            "bound to its server"
        );
        assert_eq!(
            s.get(&a, "time", "other", Some(1)),
            Lookup::Unknown,
            "bound to its caller"
        );
        assert_eq!(s.get("nope", "time", "webui", Some(1)), Lookup::Unknown);
        assert_eq!(
            s.get(&a, "time", "webui", Some(2)),
            Lookup::Stale,
            "child restarted"
        );
        assert_eq!(
            s.get(&a, "time", "webui", Some(2)),
            Lookup::Unknown,
            "and ended"
        );
        let b = s.open("time", 2, "2025-11-25", "webui");
        assert!(s.close(&b, "time", "webui"));
        assert!(!s.close(&b, "time", "webui"));
        assert_eq!(s.get(&b, "time", "webui", Some(2)), Lookup::Unknown);
        let c = s.open("time", 2, "v", "x");
        std::thread::sleep(Duration::from_millis(2));
        let d = s.open("time", 2, "v", "x");
        let e = s.open("time", 2, "v", "x");
        assert_eq!(s.count("time"), 2, "capped");
        assert_eq!(
            s.get(&c, "time", "x", Some(2)),
            Lookup::Unknown,
            "least recently used went"
        );
        assert!(matches!(s.get(&d, "time", "x", Some(2)), Lookup::Ok(_)));
        assert!(matches!(s.get(&e, "time", "x", Some(2)), Lookup::Ok(_)));
    }

    #[test]
    fn an_ended_session_cancels_its_token_and_drops_its_subscriptions() {
        let s = Sessions::new(10, Duration::from_secs(60));
        let a = s.open("fs", 1, "v", "c");
        let b = s.open("fs", 1, "v", "c");
        let Lookup::Ok(sa) = s.get(&a, "fs", "c", Some(1)) else {
            panic!("open")
        };
        s.subscribe(&a, "file:///x");
        s.subscribe(&b, "file:///x");
        assert!(s.subscribed(&a, "file:///x"));
        assert!(!s.subscribed(&a, "file:///y"));
        assert_eq!(s.unsubscribe(&a, "fs", "file:///x"), 1, "b still holds it");
        assert!(!sa.ended.is_cancelled());
        assert!(s.close(&a, "fs", "c"));
        assert!(sa.ended.is_cancelled(), "DELETE ends its streams");
        let Lookup::Ok(sb) = s.get(&b, "fs", "c", Some(1)) else {
            panic!("open")
        };
        assert_eq!(s.get(&b, "fs", "c", Some(2)), Lookup::Stale);
        assert!(sb.ended.is_cancelled(), "a restart ends its streams");
        assert_eq!(s.unsubscribe(&b, "fs", "file:///x"), 0);
        assert!(!s.touch(&b));
    }

    #[test]
    fn idle_sessions_expire() {
        let s = Sessions::new(10, Duration::from_millis(1));
        let a = s.open("t", 1, "v", "c");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get(&a, "t", "c", Some(1)), Lookup::Unknown);
        s.sweep();
        assert_eq!(s.count("t"), 0);
    }
}
