//! Standard Webhooks signatures, used by the dispatcher to sign and by
//! receivers (and our tests) to verify.
//!
//! `webhook-signature` = `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).
//! A receiver verifies by recomputing the HMAC over the raw body with its
//! secret, comparing in constant time against any `v1,` entry of the
//! space-separated header, and rejecting timestamps outside a tolerance
//! (default 5 minutes) to stop replays.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `v1,` signature matched.
    #[error("no matching v1 signature")]
    Mismatch,
    /// Timestamp missing, malformed, or outside the tolerance.
    #[error("timestamp outside tolerance")]
    Timestamp,
}

fn mac(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
}

/// Verifies the three Standard Webhooks headers against the raw body.
/// `now` and `tolerance_s` are seconds since the epoch and allowed skew.
pub fn verify(
    secret: &[u8],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::Timestamp)?;
    if (now - ts).abs() > tolerance_s {
        return Err(VerifyError::Timestamp);
    }
    for part in signature_header.split(' ') {
        let Some(b64) = part.strip_prefix("v1,") else { continue };
        let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(b64) else { continue };
        if mac(secret, id, ts, body).verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_detect_tampering() {
        let sig = sign(b"secret", "msg_1", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("v1,"));
        assert_eq!(verify(b"secret", "msg_1", "1700000000", &sig, b"{\"a\":1}", 1_700_000_010, 300), Ok(()));
        assert_eq!(verify(b"secret", "msg_1", "1700000000", &sig, b"{\"a\":2}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(b"other", "msg_1", "1700000000", &sig, b"{\"a\":1}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(b"secret", "msg_1", "1700000000", &sig, b"{\"a\":1}", 1_700_009_999, 300), Err(VerifyError::Timestamp));
    }
}
