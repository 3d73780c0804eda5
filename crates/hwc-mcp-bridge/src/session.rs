//! Session-era client sessions: a random 128-bit `Mcp-Session-Id` bound to
//! one server and to the generation of its child that was live at
//! `initialize`. A session costs a map entry, nothing on the child (Open
//! WebUI opens one per chat request); sessions idle past
//! `http.session_idle_timeout`, or the least recently used beyond
//! `http.max_sessions`, are ended.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The server it was opened on.
    pub server: String,
    /// The child generation it is bound to.
    pub generation: u64,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// The caller (token name) that opened it; only it may use it.
    pub client: String,
    last_used: Instant,
}

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

    /// Opens a session; returns its id.
    pub fn open(
        &self,
        server: &str,
        generation: u64,
        protocol_version: &str,
        client: &str,
    ) -> String {
        let id = hex::encode(rand::random::<u128>().to_be_bytes());
        let mut map = hwc_ai_core::sync::lock(&self.map);
        if map.len() >= self.max {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                server: server.into(),
                generation,
                protocol_version: protocol_version.into(),
                client: client.into(),
                last_used: Instant::now(),
            },
        );
        id
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
            map.remove(id);
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
            map.remove(id);
            true
        } else {
            false
        }
    }

    /// Ends the sessions idle too long.
    pub fn sweep(&self) {
        let idle = self.idle;
        hwc_ai_core::sync::lock(&self.map).retain(|_, s| s.last_used.elapsed() <= idle);
    }

    /// Open sessions of `server`.
    pub fn count(&self, server: &str) -> usize {
        hwc_ai_core::sync::lock(&self.map)
            .values()
            .filter(|s| s.server == server)
            .count()
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
    fn idle_sessions_expire() {
        let s = Sessions::new(10, Duration::from_millis(1));
        let a = s.open("t", 1, "v", "c");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.get(&a, "t", "c", Some(1)), Lookup::Unknown);
        s.sweep();
        assert_eq!(s.count("t"), 0);
    }
}
