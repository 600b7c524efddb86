//! Standard Webhooks signatures, used by the dispatcher to sign and by
//! receivers (and our tests) to verify, and the one place that knows what a
//! webhook secret looks like.
//!
//! `webhook-signature` = `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
//! A receiver verifies by recomputing the HMAC over the raw body, comparing in
//! constant time against any `v1,` entry of the space-separated header, and
//! rejecting timestamps outside a tolerance (default 5 minutes) to stop replays.
//!
//! Secrets are `whsec_` + standard base64 of [`SECRET_BYTES`] random bytes
//! ([`generate_secret`]), and the HMAC key is the *decoded* bytes, as the
//! Standard Webhooks specification and its official libraries do.
//!
//! Legacy secrets: before this rule the whole secret string was the key. A
//! secret whose part after `whsec_` is not valid standard base64 (or that has
//! no `whsec_` prefix at all, like a hex string from `openssl rand -hex`)
//! keeps that raw-bytes keying, so existing receivers keep verifying; only
//! such secrets are affected, and [`is_standard`] lets the binaries warn at
//! start (without printing the secret) so operators rotate them.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret (the standard asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// Fewest decoded bytes for a secret to count as standard.
pub const MIN_SECRET_BYTES: usize = 24;

/// Standard alphabet, padding optional (the official libraries accept both).
const SECRET_B64: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

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

/// A new secret: `whsec_` + standard base64 of [`SECRET_BYTES`] random bytes.
pub fn generate_secret() -> String {
    let mut b = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut b);
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(b))
}

/// The decoded key of a standard secret, `None` for a legacy one.
fn decoded(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX)?;
    SECRET_B64.decode(b64).ok().filter(|k| !k.is_empty())
}

/// The HMAC key of `secret`: the decoded bytes after `whsec_`, or the raw
/// bytes of a legacy secret (see the module doc).
pub fn key(secret: &str) -> Vec<u8> {
    decoded(secret).unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// True when `secret` is `whsec_` + base64 of at least [`MIN_SECRET_BYTES`] bytes.
pub fn is_standard(secret: &str) -> bool {
    decoded(secret).is_some_and(|k| k.len() >= MIN_SECRET_BYTES)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(&key(secret), id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
}

/// Verifies the three Standard Webhooks headers against the raw body.
/// `now` and `tolerance_s` are seconds since the epoch and allowed skew; any
/// timestamp, however absurd, is compared without overflow.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::Timestamp)?;
    if now.abs_diff(ts) > tolerance_s.max(0).unsigned_abs() {
        return Err(VerifyError::Timestamp);
    }
    let key = key(secret);
    for part in signature_header.split(' ') {
        let Some(b64) = part.strip_prefix("v1,") else { continue };
        let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(b64) else { continue };
        if mac(&key, id, ts, body).verify_slice(&tag).is_ok() {
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
        let s = generate_secret();
        let sig = sign(&s, "msg_1", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("v1,"));
        assert_eq!(verify(&s, "msg_1", "1700000000", &sig, b"{\"a\":1}", 1_700_000_010, 300), Ok(()));
        assert_eq!(verify(&s, "msg_1", "1700000000", &sig, b"{\"a\":2}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(&generate_secret(), "msg_1", "1700000000", &sig, b"{\"a\":1}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(&s, "msg_1", "1700000000", &sig, b"{\"a\":1}", 1_700_009_999, 300), Err(VerifyError::Timestamp));
    }

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The specification's example, also what the official libraries compute.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, body) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", br#"{"test": 2432232314}"#);
        assert_eq!(sign(secret, id, 1_614_265_330, body), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(verify(secret, id, "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", body, 1_614_265_330, 300), Ok(()));
    }

    #[test]
    fn generated_secrets_are_standard() {
        let s = generate_secret();
        assert!(s.starts_with(SECRET_PREFIX) && is_standard(&s), "{s}");
        assert_eq!(key(&s).len(), SECRET_BYTES);
        assert_ne!(s, generate_secret());
    }

    #[test]
    fn legacy_secrets_keep_their_raw_keying() {
        // `_` is not standard base64; no prefix at all; too short to decode.
        for legacy in ["whsec_off_mode_secret", "0123456789abcdef0123456789abcdef", "whsec_retry"] {
            assert!(!is_standard(legacy), "{legacy}");
            assert_eq!(key(legacy), legacy.as_bytes());
            let mut m = HmacSha256::new_from_slice(legacy.as_bytes()).expect("HMAC takes any key length");
            m.update(b"msg_1.1700000000.{}");
            let want = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()));
            assert_eq!(sign(legacy, "msg_1", 1_700_000_000, b"{}"), want);
        }
        // Decodes, but to fewer than 24 bytes: keyed by the decoded bytes, flagged as weak.
        assert!(!is_standard("whsec_c2hvcnQ="));
        assert_eq!(key("whsec_c2hvcnQ="), b"short");
    }

    #[test]
    fn absurd_timestamps_are_refused_without_overflow() {
        let s = generate_secret();
        for ts in [i64::MIN, i64::MAX, -1] {
            let sig = sign(&s, "m", ts, b"x");
            for now in [i64::MIN, 0, i64::MAX] {
                let r = verify(&s, "m", &ts.to_string(), &sig, b"x", now, 300);
                assert_eq!(r.is_ok(), now.abs_diff(ts) <= 300, "ts {ts} now {now}");
            }
            assert_eq!(verify(&s, "m", &ts.to_string(), &sig, b"x", ts, i64::MIN), Ok(()));
        }
        assert_eq!(verify(&s, "m", "99999999999999999999999", "v1,AA==", b"x", 0, 300), Err(VerifyError::Timestamp));
    }
}
