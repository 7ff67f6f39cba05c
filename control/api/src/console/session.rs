//! Console sign-in sessions: an API token presented once turns into a random session id held in an
//! `HttpOnly`, `Secure`, `SameSite=Strict` cookie, with a per-session CSRF token.
//!
//! Sessions live in memory only (a restart signs everyone out), are looked up by the SHA-256 of their
//! id (the id itself is never stored or logged), end after [`IDLE_TIMEOUT`] without use or
//! [`ABSOLUTE_TIMEOUT`] after sign-in, and end when their token is revoked. This module must not log a
//! session id, a CSRF token or an API token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::tokens::Identity;

/// Name of the session cookie. The `__Host-` prefix makes the browser refuse it unless it is
/// `Secure`, has `Path=/` and no `Domain`.
pub const SESSION_COOKIE: &str = "__Host-portolan_session";
/// Header that must carry the session's CSRF token on every state-changing request.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in whatever its use.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once; signing in beyond it ends the least recently used one.
pub const MAX_SESSIONS: usize = 1024;

struct Session {
    identity: Identity,
    csrf: String,
    created: Instant,
    last_used: Instant,
}

/// A live session as a request sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// Who signed in.
    pub identity: Identity,
    /// The session's CSRF token (the console reads it from `GET /ui/session`).
    pub csrf: String,
    /// Seconds until the session ends at the latest.
    pub expires_in_s: u64,
}

/// A new session: the cookie value (shown once) and its CSRF token.
pub struct NewSession {
    /// The session id, for the cookie.
    pub id: String,
    /// The CSRF token.
    pub csrf: String,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSession(<redacted>)")
    }
}

/// In-memory sessions, keyed by the SHA-256 of their id.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.sessions.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("SessionStore")
            .field("sessions", &n)
            .finish()
    }
}

fn random_token() -> Option<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).ok()?;
    Some(URL_SAFE_NO_PAD.encode(raw))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_used) < IDLE_TIMEOUT
        && now.duration_since(s.created) < ABSOLUTE_TIMEOUT
}

impl SessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a session for `identity`; `None` when the random source fails.
    pub fn create(&self, identity: Identity) -> Option<NewSession> {
        let id = random_token()?;
        let csrf = random_token()?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| live(s, now));
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            key(&id),
            Session {
                identity,
                csrf: csrf.clone(),
                created: now,
                last_used: now,
            },
        );
        Some(NewSession { id, csrf })
    }

    /// The live session with cookie value `id` (marking it used), or `None`; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<SessionView> {
        let k = key(id);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().ok()?;
        let alive = sessions.get(&k).is_some_and(|s| live(s, now));
        if !alive {
            sessions.remove(&k);
            return None;
        }
        let s = sessions.get_mut(&k)?;
        s.last_used = now;
        let left = ABSOLUTE_TIMEOUT.saturating_sub(now.duration_since(s.created));
        Some(SessionView {
            identity: s.identity.clone(),
            csrf: s.csrf.clone(),
            expires_in_s: left.as_secs(),
        })
    }

    /// Ends the session with cookie value `id`, if any.
    pub fn remove(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&key(id));
        }
    }

    /// Ends every session of the token with row id `token_id`.
    pub fn remove_token(&self, token_id: i64) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| s.identity.token_id != token_id);
        }
    }
}

/// Whether `presented` equals the session's CSRF token (constant time).
pub fn csrf_matches(session: &SessionView, presented: &str) -> bool {
    presented.len() == session.csrf.len()
        && bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Role;

    fn who() -> Identity {
        Identity {
            token_id: 3,
            role: Role::Analyst,
            label: "soc".into(),
        }
    }

    #[test]
    fn sessions_are_found_by_id_and_end_on_sign_out_or_revocation() {
        let store = SessionStore::new();
        let s = store.create(who()).unwrap();
        assert_ne!(s.id, s.csrf);
        let v = store.get(&s.id).unwrap();
        assert_eq!(v.identity, who());
        assert!(csrf_matches(&v, &s.csrf));
        assert!(!csrf_matches(&v, "x"));
        assert!(store.get("not-a-session").is_none());
        store.remove(&s.id);
        assert!(store.get(&s.id).is_none());
        let t = store.create(who()).unwrap();
        store.remove_token(3);
        assert!(store.get(&t.id).is_none());
        assert!(!format!("{t:?}").contains(&t.id));
    }

    #[test]
    fn the_store_is_bounded() {
        let store = SessionStore::new();
        let first = store.create(who()).unwrap();
        for _ in 0..MAX_SESSIONS {
            store.create(who()).unwrap();
        }
        assert!(store.get(&first.id).is_none());
        assert_eq!(store.sessions.lock().unwrap().len(), MAX_SESSIONS);
    }
}
