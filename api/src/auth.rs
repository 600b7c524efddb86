//! Who is calling, and may they: API key lookup and the rate limiter in one
//! Redis round trip (`auth_rate.lua`: key record → GCRA with the key's own
//! rate and burst). Keys are looked up by their SHA-256, never stored or
//! logged in clear. In `AUTH_MODE=off` every caller is the tenant `anon` and
//! the limit is per client IP. In `AUTH_MODE=required`, missing or unknown
//! keys also count against the client IP in process ([`crate::auth_failures`]):
//! past `AUTH_FAILURES_PER_IP` per second, that IP gets 429 before any Redis
//! round trip.

use crate::config::AuthMode;
use crate::error::ApiError;
use crate::state::AppState;
use common::scripts::scripts;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Instant;
use warp::http::HeaderMap;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Tenant id (key id, or `anon` in off mode).
    pub owner: String,
    /// Webhook signing secret of the tenant ("" in off mode: the configured one is used).
    pub secret: String,
    /// Rate-limit headers for the response: (limit, remaining, reset seconds).
    pub rate: Option<(u64, u64, u64)>,
}

/// SHA-256 of an API key, hex.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let t = token.trim();
    (!t.is_empty() && t.len() <= 256).then_some(t)
}

/// Authenticates and rate-limits one request.
pub async fn authorize(state: &AppState, headers: &HeaderMap, addr: Option<SocketAddr>) -> Result<Caller, ApiError> {
    let cfg = &state.cfg;
    let (mode, key_record) = match cfg.auth_mode {
        AuthMode::Required => {
            let peer = addr.map(|a| a.ip());
            if let Some(wait_ms) = peer.and_then(|ip| state.auth_failures.blocked(ip, Instant::now())) {
                let s = wait_ms.div_ceil(1000).max(1);
                return Err(ApiError::RateLimited { retry_after_s: s, limit: u64::from(cfg.auth_failures_per_ip), reset_s: s });
            }
            let failed = || {
                if let Some(ip) = peer {
                    state.auth_failures.record(ip, Instant::now());
                }
                ApiError::Unauthorized
            };
            let key = bearer(headers).ok_or_else(failed)?;
            let record = state.keys.api_key(&hash_key(key));
            return lookup(state, "key", record, addr).await.map_err(|e| if matches!(e, ApiError::Unauthorized) { failed() } else { e });
        }
        AuthMode::Off => {
            if cfg.ip_rate_limit <= 0.0 {
                return Ok(Caller { owner: "anon".into(), secret: String::new(), rate: None });
            }
            ("ip", String::new())
        }
    };
    lookup(state, mode, key_record, addr).await
}

/// The key lookup and rate limit in Redis (`auth_rate.lua`).
async fn lookup(state: &AppState, mode: &str, key_record: String, addr: Option<SocketAddr>) -> Result<Caller, ApiError> {
    let cfg = &state.cfg;
    let ip = addr.map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
    let mut inv = scripts().auth_rate.script().prepare_invoke();
    inv.key(key_record)
        .key(state.keys.rate_limit(""))
        .arg(mode)
        .arg(ip)
        .arg(cfg.ip_rate_limit)
        .arg(cfg.ip_rate_burst);
    let mut c = state.conn().await?;
    let (status, owner, limit, remaining, retry_ms, reset_ms, secret): (String, String, u64, u64, u64, u64, String) =
        inv.invoke_async(&mut *c).await?;
    let reset_s = reset_ms.div_ceil(1000);
    match status.as_str() {
        "ok" => Ok(Caller { owner, secret, rate: (limit > 0).then_some((limit, remaining, reset_s)) }),
        "limited" => Err(ApiError::RateLimited { retry_after_s: retry_ms.div_ceil(1000).max(1), limit, reset_s: reset_s.max(1) }),
        _ => Err(ApiError::Unauthorized),
    }
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
        assert_eq!(hash_key("k").len(), 64);
    }
}
