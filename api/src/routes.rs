//! The route table, the one place that turns handler results into responses
//! and records the HTTP metrics, and the one `recover` for what warp itself
//! rejects (unknown route, wrong method, bad query string). Route labels
//! come from [`common::metrics::route`]; `?wait` long polls count as `job_wait`.

use crate::error::ApiError;
use crate::handlers::{self, image::Format, Handled};
use crate::state::AppState;
use common::metrics::{route, ApiMetrics};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::Instant;
use warp::http::Method;
use warp::reply::Response;
use warp::{Filter, Rejection};

fn record(m: &ApiMetrics, route: &str, method: &Method, status: u16, style: &str, started: Instant, reject: Option<&'static str>) {
    m.requests.with_label_values(&[route, method_label(method), &status.to_string(), style]).inc();
    m.latency.with_label_values(&[route]).observe(started.elapsed().as_secs_f64());
    if let Some(r) = reject {
        m.rejected.with_label_values(&[r]).inc();
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Runs a handler, converts its result, records metrics.
async fn finish<F>(m: ApiMetrics, route: &'static str, method: Method, fut: F) -> Response
where
    F: Future<Output = Result<Handled, ApiError>>,
{
    let started = Instant::now();
    m.inflight.inc();
    let res = fut.await;
    m.inflight.dec();
    let resp = match res {
        Ok(h) => {
            let style = h.style.map(|s| s.as_str()).unwrap_or("none");
            record(&m, route, &method, h.response.status().as_u16(), style, started, None);
            h.response
        }
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(route, error.type = e.kind(), "request failed");
            }
            record(&m, route, &method, e.status().as_u16(), "none", started, e.reject_reason());
            e.into_response()
        }
    };
    nosniff(resp)
}

/// Every response (JSON, SVG, PNG, UI files, errors) says `nosniff`, so a
/// browser never reinterprets a JSON body or an SVG as HTML or script.
/// Set here, where every response passes, rather than per handler.
fn nosniff(mut resp: Response) -> Response {
    resp.headers_mut().insert("x-content-type-options", warp::http::HeaderValue::from_static("nosniff"));
    resp
}

fn with_state(s: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || s.clone())
}

fn query() -> impl Filter<Extract = (HashMap<String, String>,), Error = Infallible> + Clone {
    warp::query::raw()
        .map(|q: String| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect::<HashMap<String, String>>())
        .or(warp::any().map(HashMap::new))
        .unify()
}

/// Every route of the API.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let m = state.metrics.clone();
    let st = move || with_state(state.clone());
    let headers = warp::header::headers_cloned;
    let addr = crate::remote::remote_addr;

    let submit = warp::path!("v1" / "couplets")
        .and(warp::post())
        .and(st())
        .and(headers())
        .and(addr())
        .and(warp::body::stream())
        .then(|s: AppState, h, a, b| {
            let m = s.metrics.clone();
            finish(m, route::SUBMIT, Method::POST, handlers::submit::handle(s, h, a, Box::pin(b)))
        });
    let generate = warp::path!("generate")
        .and(warp::post())
        .and(st())
        .and(headers())
        .and(addr())
        .and(warp::body::stream())
        .then(|s: AppState, h, a, b| {
            let m = s.metrics.clone();
            finish(m, route::GENERATE, Method::POST, handlers::generate::handle(s, h, a, Box::pin(b)))
        });
    let job_get = warp::path!("v1" / "jobs" / String)
        .and(warp::get())
        .and(st())
        .and(query())
        .and(headers())
        .and(addr())
        .then(|id, s: AppState, q: HashMap<String, String>, h, a| {
            let m = s.metrics.clone();
            // A long poll is slow by design: its own label keeps it out of `job_get` latency.
            let label = if handlers::jobs::parse_wait(&q).is_ok_and(|w| !w.is_zero()) { route::JOB_WAIT } else { route::JOB_GET };
            finish(m, label, Method::GET, handlers::jobs::get(s, id, q, h, a))
        });
    let job_delete = warp::path!("v1" / "jobs" / String)
        .and(warp::delete())
        .and(st())
        .and(headers())
        .and(addr())
        .then(|id, s: AppState, h, a| {
            let m = s.metrics.clone();
            finish(m, route::JOB_DELETE, Method::DELETE, handlers::jobs::delete(s, id, h, a))
        });
    let png = warp::path!("v1" / "jobs" / String / "image.png")
        .and(warp::get())
        .and(st())
        .and(query())
        .and(headers())
        .and(addr())
        .then(|id, s: AppState, q, h, a| {
            let m = s.metrics.clone();
            finish(m, route::JOB_IMAGE, Method::GET, handlers::image::get(s, id, Format::Png, q, h, a))
        });
    let svg = warp::path!("v1" / "jobs" / String / "image.svg")
        .and(warp::get())
        .and(st())
        .and(query())
        .and(headers())
        .and(addr())
        .then(|id, s: AppState, q, h, a| {
            let m = s.metrics.clone();
            finish(m, route::JOB_IMAGE, Method::GET, handlers::image::get(s, id, Format::Svg, q, h, a))
        });
    let m1 = m.clone();
    let healthz = warp::path!("healthz").and(warp::get()).then(move || finish(m1.clone(), route::HEALTHZ, Method::GET, handlers::health::healthz()));
    let readyz = warp::path!("readyz").and(warp::get()).and(st()).then(|s: AppState| {
        let m = s.metrics.clone();
        finish(m, route::READYZ, Method::GET, handlers::health::readyz(s))
    });
    let metrics = warp::path!("metrics").and(warp::get()).and(st()).then(|s: AppState| {
        let m = s.metrics.clone();
        finish(m, route::METRICS, Method::GET, handlers::health::metrics(s))
    });
    let m2 = m.clone();
    let index = warp::path::end().and(warp::get()).then(move || finish(m2.clone(), route::UI, Method::GET, handlers::ui::index()));
    let m3 = m.clone();
    let asset = warp::path!("ui" / String).and(warp::get()).then(move |f| finish(m3.clone(), route::UI, Method::GET, handlers::ui::file(f)));
    let m4 = m.clone();
    let openapi = warp::path!("openapi.json").and(warp::get()).then(move || finish(m4.clone(), route::OPENAPI, Method::GET, handlers::ui::openapi()));

    let m5 = m.clone();
    // Each route is boxed: its future is one pointer, so the `or` chain moves
    // pointers instead of every handler's state (once a measured 16 % of the
    // API's CPU at full submit load, all in memmove).
    submit
        .boxed()
        .or(generate.boxed())
        .unify()
        .or(job_get.boxed())
        .unify()
        .or(job_delete.boxed())
        .unify()
        .or(png.boxed())
        .unify()
        .or(svg.boxed())
        .unify()
        .or(healthz.boxed())
        .unify()
        .or(readyz.boxed())
        .unify()
        .or(metrics.boxed())
        .unify()
        .or(index.boxed())
        .unify()
        .or(asset.boxed())
        .unify()
        .or(openapi.boxed())
        .unify()
        .recover(move |r: Rejection| {
            let m = m5.clone();
            async move { Ok::<_, Infallible>(recover(m, r)) }
        })
        .unify()
}

/// Maps warp's own rejections onto [`ApiError`] (unknown route, wrong method, malformed query).
fn recover(m: ApiMetrics, r: Rejection) -> Response {
    let e = if r.is_not_found() {
        ApiError::NoRoute
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::BadQuery("malformed query string".into())
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge(0)
    } else {
        tracing::debug!(rejection = ?r, "unmapped rejection");
        ApiError::BadQuery("bad request".into())
    };
    record(&m, route::NOT_FOUND, &Method::GET, e.status().as_u16(), "none", Instant::now(), e.reject_reason());
    nosniff(e.into_response())
}
