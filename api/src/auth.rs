//! Who is calling, and may they. The key lookup and the rate limiter run in
//! Redis (`Store::authorize`, or inside `Store::submit` for submissions, so a
//! submission is one round trip); this module reads what the request presents
//! and maps the store's answer to errors. Keys are looked up by their SHA-256,
//! never stored or logged in clear. In `AUTH_MODE=off` every caller is the
//! tenant `anon` and the limit is per client IP. In `AUTH_MODE=required`,
//! missing or unknown keys also count against the client IP in process
//! ([`crate::auth_failures`]): past `AUTH_FAILURES_PER_IP` per second, that IP
//! gets 429 before any Redis round trip.

use crate::config::AuthMode;
use crate::error::ApiError;
use crate::state::AppState;
use common::store::{Authorized, Credential, Limited};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use warp::http::HeaderMap;

/// The authenticated caller: its tenant id (`owner`) and rate-limit state.
pub use common::store::Tenant as Caller;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let t = token.trim();
    (!t.is_empty() && t.len() <= 256).then_some(t)
}

/// What a request presents before Redis is asked: its API key (required
/// mode) or client IP (off mode). Made by [`present`].
#[derive(Debug, Clone)]
pub struct Presented {
    key: Option<String>,
    ip: String,
    peer: Option<IpAddr>,
}

/// Reads the caller's credential without Redis: an IP over its failed-auth
/// brake gets 429, a missing key 401 (counted against the IP).
pub fn present(state: &AppState, headers: &HeaderMap, addr: Option<SocketAddr>) -> Result<Presented, ApiError> {
    let cfg = &state.cfg;
    let peer = addr.map(|a| a.ip());
    let ip = peer.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into());
    match cfg.auth_mode {
        AuthMode::Required => {
            if let Some(wait_ms) = peer.and_then(|ip| state.auth_failures.blocked(ip, Instant::now())) {
                let s = wait_ms.div_ceil(1000).max(1);
                return Err(ApiError::RateLimited { retry_after_s: s, limit: u64::from(cfg.auth_failures_per_ip), reset_s: s });
            }
            let p = Presented { key: None, ip, peer };
            let key = bearer(headers).ok_or_else(|| p.unauthorized(state))?;
            Ok(Presented { key: Some(key.to_string()), ..p })
        }
        AuthMode::Off => Ok(Presented { key: None, ip, peer }),
    }
}

impl Presented {
    /// The credential for the store.
    pub fn credential(&self, state: &AppState) -> Credential<'_> {
        match &self.key {
            Some(k) => Credential::ApiKey(k),
            None => Credential::Anonymous { ip: &self.ip, rate: state.cfg.ip_rate_limit, burst: state.cfg.ip_rate_burst },
        }
    }

    /// 401, counted against the client IP by the failed-auth brake.
    pub fn unauthorized(&self, state: &AppState) -> ApiError {
        if let Some(ip) = self.peer {
            if state.cfg.auth_mode == AuthMode::Required {
                state.auth_failures.record(ip, Instant::now());
            }
        }
        ApiError::Unauthorized
    }

    /// Looks the caller up and counts the request against its rate limit (one round trip;
    /// none for an anonymous caller without a limit).
    pub async fn authorize(&self, state: &AppState) -> Result<Caller, ApiError> {
        let who = self.credential(state);
        let decided = match who.unlimited() {
            Some(tenant) => Authorized::Allowed(tenant),
            None => {
                let mut c = state.conn().await?;
                state.store.authorize(&mut c, &who).await?
            }
        };
        match decided {
            Authorized::Allowed(caller) => Ok(caller),
            Authorized::RateLimited(l) => Err(rate_limited(l)),
            Authorized::Unauthorized => Err(self.unauthorized(state)),
        }
    }
}

/// The 429 of a limited request.
pub fn rate_limited(l: Limited) -> ApiError {
    ApiError::RateLimited { retry_after_s: l.retry_after_s, limit: l.limit, reset_s: l.reset_s }
}

/// Authenticates and rate-limits one request (every route but submissions).
pub async fn authorize(state: &AppState, headers: &HeaderMap, addr: Option<SocketAddr>) -> Result<Caller, ApiError> {
    present(state, headers, addr)?.authorize(state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().expect("header"));
        assert_eq!(bearer(&h), None);
        assert_eq!(common::store::hash_key("k").len(), 64);
    }
}
