//! Reading a JSON request body safely: content type checked, size capped
//! (Content-Length up front, then while streaming, so chunked bodies are
//! capped too), a deadline for slow senders, and JSON errors classified as
//! malformed (400) or wrongly typed / unknown fields (422).

use crate::error::ApiError;
use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use std::time::Duration;
use warp::http::HeaderMap;

/// Checks `Content-Type: application/json` (parameters such as charset allowed).
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Reads the body up to `max` bytes within `deadline`.
pub async fn read_capped<S, B>(headers: &HeaderMap, body: S, max: usize, deadline: Duration) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    if let Some(len) = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > max as u64 {
            return Err(ApiError::PayloadTooLarge(max));
        }
    }
    let read = async {
        let mut out = Vec::new();
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|_| ApiError::MalformedJson("the request body could not be read".into()))?;
            if out.len() + chunk.remaining() > max {
                return Err(ApiError::PayloadTooLarge(max));
            }
            while chunk.has_remaining() {
                let part: Bytes = chunk.copy_to_bytes(chunk.chunk().len());
                out.extend_from_slice(&part);
            }
        }
        Ok(out)
    };
    tokio::time::timeout(deadline, read).await.map_err(|_| ApiError::RequestTimeout)?
}

/// Parses JSON, classifying errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the body is empty".into()));
    }
    // Parse the syntax first, then the shape: a request must be a JSON object
    // (serde would otherwise accept `[]` as a struct of defaults).
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidField(e.to_string()),
        _ => ApiError::MalformedJson(e.to_string()),
    })?;
    if !v.is_object() {
        return Err(ApiError::InvalidField("the request body must be a JSON object".into()));
    }
    serde_json::from_value(v).map_err(|e| ApiError::InvalidField(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use common::request::CoupletRequest;

    #[test]
    fn json_errors_are_classified() {
        assert_eq!(parse_json::<CoupletRequest>(b"{").unwrap_err().kind(), "malformed_json");
        assert_eq!(parse_json::<CoupletRequest>(b"").unwrap_err().kind(), "malformed_json");
        assert_eq!(parse_json::<CoupletRequest>(b"[1]").unwrap_err().kind(), "invalid_field");
        assert_eq!(parse_json::<CoupletRequest>(br#"{"theme": 5}"#).unwrap_err().kind(), "invalid_field");
        assert_eq!(parse_json::<CoupletRequest>(br#"{"bogus": 1}"#).unwrap_err().kind(), "invalid_field");
        assert_eq!(parse_json::<CoupletRequest>(b"{\"theme\": \"\xff\"}").unwrap_err().kind(), "malformed_json");
        assert!(parse_json::<CoupletRequest>(r#"{"theme": "春"}"#.as_bytes()).is_ok());
    }

    #[test]
    fn content_type_must_be_json() {
        let mut h = HeaderMap::new();
        assert!(check_json_content_type(&h).is_err());
        h.insert("content-type", "application/json; charset=utf-8".parse().expect("header"));
        assert!(check_json_content_type(&h).is_ok());
        h.insert("content-type", "text/plain".parse().expect("header"));
        assert!(check_json_content_type(&h).is_err());
    }
}
