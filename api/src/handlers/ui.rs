//! The pixel web UI and the OpenAPI document, embedded in the binary at
//! build time (`include_dir!` over `api/ui/`), so the service works offline
//! with no CDN and no files beside the binary.

use super::Handled;
use crate::error::ApiError;
use include_dir::{include_dir, Dir};
use warp::http::{HeaderValue, StatusCode};
use warp::Reply;

static UI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/ui");

/// The OpenAPI 3.1 document of the HTTP API.
pub static OPENAPI: &str = include_str!("../../openapi.json");

fn asset(path: &str) -> Result<Handled, ApiError> {
    let f = UI.get_file(path).ok_or(ApiError::NoRoute)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut r = warp::reply::with_status(f.contents().to_vec(), StatusCode::OK).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.essence_str()) {
        h.insert("content-type", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    // No page of the UI may be framed (clickjacking); CSP `frame-ancestors` for
    // current browsers, X-Frame-Options for old ones.
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    Ok(Handled { response: r, style: None })
}

/// `GET /`.
pub async fn index() -> Result<Handled, ApiError> {
    let mut h = asset("index.html")?;
    h.response.headers_mut().insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
    h.response.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    Ok(h)
}

/// `GET /ui/{file}`.
pub async fn file(name: String) -> Result<Handled, ApiError> {
    if name.contains("..") || name.contains('/') {
        return Err(ApiError::NoRoute);
    }
    asset(&name)
}

/// `GET /openapi.json`.
pub async fn openapi() -> Result<Handled, ApiError> {
    let mut r = OPENAPI.into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    Ok(Handled { response: r, style: None })
}
