//! `GET /v1/jobs/{id}/image.png` and `.svg`: the succeeded couplet drawn as
//! pixel art by `common::render`, on a blocking thread (never on the async
//! runtime). Deterministic bytes, so the ETag is a hash of what determines
//! them (candidate, its text, style, layout, scale) and `If-None-Match`
//! answers 304. Renders go through [`crate::renders`]: a bounded number at
//! once (503 `overloaded` when all stay busy) and a small cache keyed by the
//! ETag input, so repeated requests for one image draw it once.
//!
//! `?candidate=N` picks one of the job's ranked couplets, 0-based (0, the
//! default, is the best and equals the top-level result). An index that is not
//! a number, or past the job's candidates, is the route's one bad-query error
//! (`invalid_query`), like a bad `scale`.

use super::{load_job, Handled};
use crate::auth::authorize;
use crate::error::ApiError;
use crate::state::AppState;
use common::job::JobStatus;
use common::request::MAX_CANDIDATES;
use common::render::{render_png, render_svg, CoupletText, Layout, RenderOptions, MAX_SCALE};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::Reply;

/// Image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG.
    Png,
    /// SVG.
    Svg,
}

fn options(q: &HashMap<String, String>) -> Result<RenderOptions, ApiError> {
    let scale = match q.get("scale") {
        None => 4,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=MAX_SCALE).contains(v))
            .ok_or_else(|| ApiError::BadQuery(format!("scale must be an integer from 1 to {MAX_SCALE}")))?,
    };
    let layout = match q.get("layout") {
        None => Layout::Door,
        Some(l) => Layout::parse(l).ok_or_else(|| ApiError::BadQuery("layout must be door or banner".into()))?,
    };
    let fu = !matches!(q.get("fu").map(String::as_str), Some("0" | "false"));
    Ok(RenderOptions { layout, scale, fu })
}

/// The `candidate` query value: a 0-based index, 0 when absent. Whether the job has
/// that many candidates is checked once the job is loaded.
fn candidate_index(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("candidate") {
        None => Ok(0),
        Some(s) => s.parse::<usize>().map_err(|_| ApiError::BadQuery(candidate_hint(None))),
    }
}

fn candidate_hint(have: Option<usize>) -> String {
    match have {
        Some(n) => format!("candidate must be an integer from 0 to {} (this job has {n} candidate(s))", n.saturating_sub(1)),
        None => format!("candidate must be a 0-based integer below the job's candidates (at most {MAX_CANDIDATES})"),
    }
}

/// The image of a succeeded job.
pub async fn get(
    state: AppState,
    id: String,
    format: Format,
    q: HashMap<String, String>,
    headers: HeaderMap,
    addr: Option<SocketAddr>,
) -> Result<Handled, ApiError> {
    let caller = authorize(&state, &headers, addr).await?;
    let opts = options(&q)?;
    let index = candidate_index(&q)?;
    let view = load_job(&state, &caller, &id).await?;
    let result = match (view.status, view.result) {
        (JobStatus::Succeeded, Some(r)) => r,
        (s, _) => return Err(ApiError::NotReady(serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default())),
    };
    let chosen = result.candidate(index).ok_or_else(|| ApiError::BadQuery(candidate_hint(Some(result.candidates.len().max(1)))))?;
    let couplet_style = result.style;
    let etag_input = format!(
        "{index}|{}|{}|{}|{}|{}|{:?}|{}|{}",
        chosen.upper,
        chosen.lower,
        chosen.hengpi,
        couplet_style,
        opts.layout.as_str(),
        format,
        opts.scale,
        opts.fu
    );
    let etag = {
        let mut h = Sha256::new();
        h.update(etag_input.as_bytes());
        format!("\"{}\"", &hex::encode(h.finalize())[..32])
    };
    let style = Some(couplet_style);
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let mut r = warp::reply::with_status("", StatusCode::NOT_MODIFIED).into_response();
        r.headers_mut().insert("etag", HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")));
        return Ok(Handled { response: r, style });
    }
    let (bytes, ctype) = state
        .renders
        .get_or_render(&etag, move || {
            let text = CoupletText { upper: &chosen.upper, lower: &chosen.lower, hengpi: &chosen.hengpi, style: couplet_style };
            match format {
                Format::Png => render_png(&text, &opts).map(|b| (b, "image/png")),
                Format::Svg => render_svg(&text, &opts).map(|s| (s.into_bytes(), "image/svg+xml")),
            }
            .map_err(|e| e.to_string())
        })
        .await?;
    let mut r = warp::reply::Response::new(bytes.into());
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(ctype));
    h.insert("cache-control", HeaderValue::from_static("private, max-age=86400, immutable"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    Ok(Handled { response: r, style }.with_rate(&caller))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn candidate_is_a_zero_based_index_defaulting_to_the_best() {
        assert_eq!(candidate_index(&q(&[])).ok(), Some(0));
        assert_eq!(candidate_index(&q(&[("candidate", "2")])).ok(), Some(2));
        for bad in ["x", "-1", "1.5", ""] {
            let e = candidate_index(&q(&[("candidate", bad)])).expect_err(bad);
            assert_eq!(e.kind(), "invalid_query", "{bad}");
        }
        assert!(candidate_hint(Some(3)).contains("from 0 to 2"));
    }
}
