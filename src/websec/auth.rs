//! HTTP basic auth against bcrypt hashes, as the exporter toolkit does it.
//!
//! A bcrypt check costs tens of milliseconds by design; a scrape every 15
//! seconds would pay it every time. So a successful check is remembered for
//! [`CACHE_TTL`] under the SHA-256 of user, hash and password (never the
//! password itself), at most [`CACHE_ENTRIES`] of them. An unknown user is
//! checked against a fixed hash, so a refusal takes as long whether the
//! user exists or not. Failures are counted by a bounded reason and logged
//! at most once a minute, without the user name or the password.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use tokio::time::Instant;

use super::RateLimited;

/// How long a successful check is remembered.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Successful checks remembered at once; when full, the cache starts over.
const CACHE_ENTRIES: usize = 256;
/// Credentials longer than this are refused unread (bcrypt reads 72 bytes).
const MAX_CREDENTIALS: usize = 4096;
/// A bcrypt hash (cost 10, of a random password) that unknown users are
/// checked against, so their refusal costs as much as a wrong password.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Why a request was refused, the `reason` label of
/// `uniqwatch_http_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Not `Basic`, not base64, no `:`, or too long.
    Malformed,
    /// An unknown user or a wrong password (not told apart, on purpose).
    Invalid,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 3] = [AuthFailure::Missing, AuthFailure::Malformed, AuthFailure::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Invalid => "invalid",
        }
    }
}

/// bcrypt checks running at once; the others wait their turn in async code,
/// so a client that goes away stops waiting and costs nothing more.
const BCRYPT_AT_ONCE: usize = 2;
/// How long a check waits for its turn before the request is refused.
const BCRYPT_WAIT: Duration = Duration::from_secs(5);

pub struct Authenticator {
    /// SHA-256(user, hash, password) → when it was verified.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    log: Mutex<RateLimited>,
    /// Bounds the bcrypt work a flood of wrong passwords can queue.
    bcrypt: tokio::sync::Semaphore,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            cache: Mutex::default(),
            log: Mutex::default(),
            bcrypt: tokio::sync::Semaphore::new(BCRYPT_AT_ONCE),
        }
    }
}

impl Authenticator {
    /// Checks the request's credentials against `users`; no users, no check.
    pub async fn check(&self, users: &BTreeMap<String, String>, headers: &HeaderMap) -> Result<(), AuthFailure> {
        if users.is_empty() {
            return Ok(());
        }
        let value = headers.get(header::AUTHORIZATION).ok_or(AuthFailure::Missing)?;
        let (user, password) = parse_basic(value.as_bytes()).ok_or(AuthFailure::Malformed)?;
        let (known, hash) = match users.get(&user) {
            Some(hash) => (true, hash.clone()),
            None => (false, DUMMY_HASH.to_string()),
        };
        let key = cache_key(&user, &hash, &password);
        if known && self.cached(&key) {
            return Ok(());
        }
        // bcrypt is slow by design: off the async threads, a bounded number at once.
        let Ok(Ok(_turn)) = tokio::time::timeout(BCRYPT_WAIT, self.bcrypt.acquire()).await else {
            return Err(AuthFailure::Invalid);
        };
        // Not truncated at bcrypt's 72 bytes: a longer password must match whole.
        let matches = tokio::task::spawn_blocking(move || bcrypt::non_truncating_verify(password.as_bytes(), &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if known && matches {
            self.remember(key);
            Ok(())
        } else {
            Err(AuthFailure::Invalid)
        }
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).is_some_and(|at| at.elapsed() < CACHE_TTL)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, at| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, Instant::now());
    }

    /// Forgets every remembered check (the users may have changed).
    pub fn clear(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Logs a refusal, at most once a minute, with how many there were.
    pub fn log_failure(&self, reason: AuthFailure) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.note() {
            tracing::warn!(
                refused = log.taken(),
                last_reason = reason.as_str(),
                "HTTP requests refused for missing or wrong credentials (uniqwatch_http_auth_failures_total counts them; user names and passwords are not logged)"
            );
        }
    }
}

/// The user and password of a `Basic` authorization header.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    if value.len() > MAX_CREDENTIALS {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        // Length-prefixed, so no two triples share an input.
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        headers
    }

    #[tokio::test]
    async fn checks_bcrypt_and_remembers_only_successes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = BTreeMap::from([("alice".to_string(), hash)]);
        let auth = Authenticator::default();
        assert_eq!(auth.check(&users, &HeaderMap::new()).await, Err(AuthFailure::Missing));
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(auth.check(&users, &bearer).await, Err(AuthFailure::Malformed));
        assert_eq!(auth.check(&users, &basic("alice", "wrong")).await, Err(AuthFailure::Invalid));
        assert_eq!(auth.check(&users, &basic("mallory", "s3cret")).await, Err(AuthFailure::Invalid));
        assert!(auth.cache.lock().unwrap().is_empty(), "failures are not remembered");
        assert_eq!(auth.check(&users, &basic("alice", "s3cret")).await, Ok(()));
        assert_eq!(auth.cache.lock().unwrap().len(), 1);
        assert_eq!(auth.check(&users, &basic("alice", "s3cret")).await, Ok(()), "from the cache");
        assert_eq!(auth.check(&BTreeMap::new(), &HeaderMap::new()).await, Ok(()), "no users, no auth");
    }

    #[test]
    fn the_cache_is_bounded() {
        let auth = Authenticator::default();
        for i in 0..(CACHE_ENTRIES * 2) {
            auth.remember(cache_key("u", "h", &i.to_string()));
            assert!(auth.cache.lock().unwrap().len() <= CACHE_ENTRIES);
        }
    }
}
