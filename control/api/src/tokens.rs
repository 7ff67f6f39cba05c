//! API bearer tokens: roles, creation, revocation, listing and verification, stored hashed in the appliance's
//! SQLite file (table `api_tokens`, versioned by this crate's own `api_schema_migrations` table).
//!
//! A token is `ptl_` followed by 32 random bytes in unpadded base64url. Only its SHA-256 is stored (the token
//! has 256 bits of entropy, so a fast hash is enough) and verification compares hashes in constant time.
//! This module must never log or return a stored token; the secret exists only in [`NewToken`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

/// Prefix of every token, so that leaked tokens are easy to recognise by scanners.
pub const TOKEN_PREFIX: &str = "ptl_";
/// Random bytes in a token.
const TOKEN_RANDOM_BYTES: usize = 32;
/// Characters after the prefix: 32 bytes in unpadded base64.
const TOKEN_BODY_CHARS: usize = 43;

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Read everything, acknowledge and close alerts.
    Analyst,
    /// Everything, including inventory, baselines, exceptions, approvals and reload.
    Admin,
}

impl Role {
    /// Whether this role may use a route that needs `access`.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Public => true,
            Access::Read => true,
            Access::AlertWrite => matches!(self, Role::Analyst | Role::Admin),
            Access::AdminWrite => self == Role::Admin,
        }
    }

    /// The role's name as used in the CLI and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(TokenError::UnknownRole(other.to_string())),
        }
    }
}

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No token (health checks only).
    Public,
    /// Any valid token.
    Read,
    /// Analyst or admin: changes to alerts.
    AlertWrite,
    /// Admin only: every other change.
    AdminWrite,
}

impl Access {
    /// Whether the route changes state (and so is rate limited).
    pub fn is_write(self) -> bool {
        matches!(self, Access::AlertWrite | Access::AdminWrite)
    }
}

/// The authenticated caller of a request, recorded in the audit log as [`Identity::actor`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Identity {
    /// Row id of the token.
    pub token_id: i64,
    /// Role of the token.
    pub role: Role,
    /// Free-text label given at creation (who or what holds the token).
    pub label: String,
}

impl Identity {
    /// The caller's name for audit records: `token:<id>` plus the label when there is one.
    pub fn actor(&self) -> String {
        if self.label.is_empty() {
            format!("token:{}", self.token_id)
        } else {
            format!("token:{} ({})", self.token_id, self.label)
        }
    }
}

/// A freshly created token. `secret` is shown once and never stored.
pub struct NewToken {
    /// Row id (used to revoke the token).
    pub id: i64,
    /// Role granted.
    pub role: Role,
    /// The bearer token itself.
    pub secret: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A stored token as listed (never with its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Row id.
    pub id: i64,
    /// Role granted.
    pub role: Role,
    /// Label given at creation.
    pub label: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Revocation time, RFC 3339, when revoked.
    pub revoked_at: Option<String>,
}

/// Failures of the token store.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A role name other than admin, analyst or viewer.
    #[error("unknown role `{0}`: expected admin, analyst or viewer")]
    UnknownRole(String),
    /// No token with that id.
    #[error("no token with id {0}")]
    NotFound(i64),
    /// The token was already revoked.
    #[error("token {0} is already revoked")]
    AlreadyRevoked(i64),
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// SQLite failed on the named file.
    #[error("token store {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The lock on the connection was poisoned by a panic.
    #[error("token store connection lock poisoned")]
    Poisoned,
}

/// The token table in the appliance's SQLite file.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl TokenStore {
    /// Opens (creating if needed) the SQLite file at `path` and applies this crate's migrations.
    pub fn open(path: &Path) -> Result<Self, TokenError> {
        let store_err = |source| TokenError::Store {
            path: path.to_path_buf(),
            source,
        };
        let conn = crate::db::open(path).map_err(store_err)?;
        crate::db::migrate(&conn).map_err(store_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, TokenError> {
        let conn = self.conn.lock().map_err(|_| TokenError::Poisoned)?;
        f(&conn).map_err(|source| TokenError::Store {
            path: self.path.clone(),
            source,
        })
    }

    /// Creates a token with `role` and a free-text `label`; the returned secret is not kept.
    pub fn create(&self, role: Role, label: &str) -> Result<NewToken, TokenError> {
        let mut raw = [0u8; TOKEN_RANDOM_BYTES];
        getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
        let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let hash = token_hash(&secret);
        let now = crate::db::now_rfc3339();
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO api_tokens (hash, role, label, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash.as_slice(), role.as_str(), label, now],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        Ok(NewToken { id, role, secret })
    }

    /// Revokes the token with row id `id`.
    pub fn revoke(&self, id: i64) -> Result<(), TokenError> {
        let now = crate::db::now_rfc3339();
        let state: Option<Option<String>> = self.with_conn(|c| {
            c.query_row(
                "SELECT revoked_at FROM api_tokens WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
        })?;
        match state {
            None => Err(TokenError::NotFound(id)),
            Some(Some(_)) => Err(TokenError::AlreadyRevoked(id)),
            Some(None) => self.with_conn(|c| {
                c.execute(
                    "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2",
                    params![now, id],
                )
                .map(|_| ())
            }),
        }
    }

    /// Lists every token, revoked ones included, oldest first.
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT id, role, label, created_at, revoked_at FROM api_tokens ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(TokenRecord {
                    id: r.get(0)?,
                    role: role.parse().unwrap_or(Role::Viewer),
                    label: r.get(2)?,
                    created_at: r.get(3)?,
                    revoked_at: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Whether the token with row id `id` exists and is not revoked (console sessions end with it).
    pub fn is_live(&self, id: i64) -> Result<bool, TokenError> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM api_tokens WHERE id = ?1 AND revoked_at IS NULL",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        })
    }

    /// Finds the live token matching `presented`, comparing hashes in constant time against every live token.
    pub fn authenticate(&self, presented: &str) -> Result<Option<Identity>, TokenError> {
        if !well_formed(presented) {
            return Ok(None);
        }
        let hash = token_hash(presented);
        let live: Vec<(i64, Vec<u8>, String, String)> = self.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT id, hash, role, label FROM api_tokens WHERE revoked_at IS NULL")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })?;
        let mut found: Option<Identity> = None;
        for (id, stored, role, label) in live {
            // No early exit: every live token is compared.
            let equal: bool = stored.as_slice().ct_eq(hash.as_slice()).into();
            if equal {
                if let Ok(role) = role.parse() {
                    found = Some(Identity {
                        token_id: id,
                        role,
                        label,
                    });
                }
            }
        }
        Ok(found)
    }
}

fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|body| {
        body.len() == TOKEN_BODY_CHARS
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = TokenStore::open(&dir.path().join("portolan.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn created_tokens_authenticate_until_revoked() {
        let (_dir, s) = store();
        let t = s.create(Role::Analyst, "soc").unwrap();
        assert!(t.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(t.secret.len(), TOKEN_PREFIX.len() + TOKEN_BODY_CHARS);
        let who = s.authenticate(&t.secret).unwrap().unwrap();
        assert_eq!(who.role, Role::Analyst);
        assert_eq!(who.actor(), format!("token:{} (soc)", t.id));
        // A token differing in one character is refused.
        let mut wrong = t.secret.clone();
        let last = if wrong.ends_with('A') { "B" } else { "A" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert!(s.authenticate(&wrong).unwrap().is_none());
        s.revoke(t.id).unwrap();
        assert!(s.authenticate(&t.secret).unwrap().is_none());
        assert!(matches!(s.revoke(t.id), Err(TokenError::AlreadyRevoked(_))));
        assert!(matches!(s.revoke(999), Err(TokenError::NotFound(999))));
    }

    #[test]
    fn only_hashes_are_stored_and_listing_hides_secrets() {
        let (dir, s) = store();
        let t = s.create(Role::Admin, "ops").unwrap();
        let list = s.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].role, Role::Admin);
        drop(s);
        let raw = std::fs::read(dir.path().join("portolan.db")).unwrap();
        let wal = std::fs::read(dir.path().join("portolan.db-wal")).unwrap_or_default();
        let needle = t.secret.as_bytes();
        for bytes in [&raw, &wal] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn reopening_keeps_tokens_and_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let secret = TokenStore::open(&path)
            .unwrap()
            .create(Role::Viewer, "")
            .unwrap()
            .secret;
        let s = TokenStore::open(&path).unwrap();
        assert_eq!(s.authenticate(&secret).unwrap().unwrap().role, Role::Viewer);
    }

    #[test]
    fn roles_allow_what_the_issue_says() {
        assert!(Role::Viewer.allows(Access::Read));
        assert!(!Role::Viewer.allows(Access::AlertWrite));
        assert!(Role::Analyst.allows(Access::AlertWrite));
        assert!(!Role::Analyst.allows(Access::AdminWrite));
        assert!(Role::Admin.allows(Access::AdminWrite));
        assert!("root".parse::<Role>().is_err());
    }
}
