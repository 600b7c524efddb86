//! [proof] `api/openapi.json` describes the API that is actually served:
//! its paths and methods equal the route table of `api/src/routes.rs` (parsed
//! from the `warp::path!` filters and the `.or(..)` chain that mounts them);
//! every documented operation answers on a live stack with a documented
//! status (never `404 no_route` or `405`); the `ErrorType` enum equals the
//! `kind()` strings of `ApiError` and `ValidationError`, and the error's
//! `field` enum the `field()` strings of `ValidationError`; every `$ref`
//! resolves; and `GET /openapi.json` serves this very file.
//! (Request/response conformance under generated traffic is
//! `scripts/schemathesis.sh`.)
#![allow(clippy::unwrap_used, missing_docs)]

use couplet_tests::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

fn doc() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("api/openapi.json")).unwrap()).unwrap()
}

fn source(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

const METHODS: [&str; 5] = ["get", "post", "delete", "put", "patch"];

/// `/v1/jobs/{id}` → `/v1/jobs/{}`.
fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// (METHOD, normalized path) of every documented operation.
fn documented() -> BTreeSet<(String, String)> {
    let d = doc();
    let mut ops = BTreeSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_uppercase(), normalize(path)));
            }
        }
    }
    ops
}

/// (METHOD, normalized path) of every route mounted in `api/src/routes.rs`.
fn routed() -> BTreeSet<(String, String)> {
    let src = source("api/src/routes.rs");
    let body = &src[src.find("pub fn routes(").expect("routes() in routes.rs")..];
    // Each route is `let NAME = warp::path!(..)` or `warp::path::end()`, then `.and(warp::METHOD())`, up to `;`.
    let mut by_name = BTreeMap::new();
    for stmt in body.split(';') {
        let Some(let_at) = stmt.find("let ") else { continue };
        let name: String = stmt[let_at + 4..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let path = if let Some(at) = stmt.find("warp::path!(") {
            let inner = &stmt[at + "warp::path!(".len()..];
            let inner = &inner[..inner.find(')').unwrap()];
            let segs: Vec<String> = inner
                .split('/')
                .map(|s| s.trim())
                .map(|s| if s.starts_with('"') { s.trim_matches('"').to_string() } else { "{}".to_string() })
                .collect();
            format!("/{}", segs.join("/"))
        } else if stmt.contains("warp::path::end()") {
            "/".to_string()
        } else {
            continue;
        };
        let method = METHODS
            .iter()
            .filter_map(|m| stmt.find(&format!("warp::{m}()")).map(|i| (i, m)))
            .min()
            .map(|(_, m)| m.to_uppercase())
            .unwrap_or_else(|| panic!("route `{name}` has no method filter"));
        by_name.insert(name, (method, path));
    }
    // Only what the `.or(..)` chain mounts is served.
    let chain = &body[body.rfind("\n    submit\n").expect("the or-chain starts with `submit`")..];
    let mut mounted: BTreeSet<String> = ["submit".to_string()].into();
    for part in chain.split(".or(").skip(1) {
        mounted.insert(part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
    }
    for name in by_name.keys() {
        assert!(mounted.contains(name), "route `{name}` is defined but not mounted");
    }
    for name in &mounted {
        assert!(by_name.contains_key(name), "`{name}` is mounted but was not parsed as a route");
    }
    by_name.into_values().collect()
}

#[test]
fn documented_paths_and_methods_equal_the_route_table() {
    let (doc_ops, routes) = (documented(), routed());
    assert_eq!(routes.len(), 12, "routes.rs changed shape? {routes:?}");
    let missing: Vec<_> = routes.difference(&doc_ops).collect();
    let extra: Vec<_> = doc_ops.difference(&routes).collect();
    assert!(missing.is_empty() && extra.is_empty(), "served but undocumented: {missing:?}; documented but not served: {extra:?}");
}

/// The string literals returned by a `fn kind(&self)` in `file`.
fn kinds_in(file: &str, owner: &str) -> BTreeSet<String> {
    literals_of(file, owner, "kind")
}

/// The string literals returned by `owner`'s `pub fn NAME(&self)` in `file`.
fn literals_of(file: &str, owner: &str, name: &str) -> BTreeSet<String> {
    let src = source(file);
    let at = src.find(&format!("impl {owner} {{")).unwrap_or_else(|| panic!("impl {owner} in {file}"));
    let rest = &src[at..];
    let f = rest.find(&format!("pub fn {name}(&self)")).unwrap_or_else(|| panic!("{owner}::{name} in {file}"));
    let body = &rest[f..];
    let body = &body[..body.find("\n    }\n").unwrap()];
    body.split("=> \"").skip(1).map(|s| s[..s.find('"').unwrap()].to_string()).collect()
}

#[test]
fn error_type_enum_equals_the_kinds_in_the_code() {
    let d = doc();
    let documented: BTreeSet<String> =
        d["components"]["schemas"]["ErrorType"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let mut code = kinds_in("api/src/error.rs", "ApiError");
    code.extend(kinds_in("common/src/request.rs", "ValidationError"));
    assert!(code.len() >= 25, "{code:?}");
    assert_eq!(documented, code);
}

#[test]
fn error_field_enum_equals_the_fields_in_the_code() {
    let d = doc();
    let documented: BTreeSet<String> = d["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["field"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let code = literals_of("common/src/request.rs", "ValidationError", "field");
    assert!(code.contains("head") && code.contains("theme"), "{code:?}");
    assert_eq!(documented, code);
}

fn resolve<'a>(d: &'a Value, r: &str) -> &'a Value {
    let ptr = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
    d.pointer(ptr).unwrap_or_else(|| panic!("$ref {r} does not resolve"))
}

fn walk_refs(d: &Value, v: &Value, n: &mut usize) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                resolve(d, r);
                *n += 1;
            }
            m.values().for_each(|x| walk_refs(d, x, n));
        }
        Value::Array(a) => a.iter().for_each(|x| walk_refs(d, x, n)),
        _ => {}
    }
}

#[test]
fn the_document_is_well_formed() {
    let d = doc();
    assert_eq!(d["openapi"], "3.1.0");
    let mut refs = 0;
    walk_refs(&d, &d, &mut refs);
    assert!(refs > 30, "{refs} refs");
    assert_eq!(d["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    for h in ["Location", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
        assert!(d["components"]["headers"].get(h).is_some(), "header {h} undocumented");
    }
    let mut ids = BTreeSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        let declared_at_path: Vec<&Value> = item.get("parameters").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()), "duplicate operationId in {m} {path}");
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(codes.iter().any(|c| c.starts_with('2')), "{m} {path} has no 2xx");
            // Every templated parameter is declared as a path parameter.
            let params: Vec<&Value> = op.get("parameters").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
            let names: BTreeSet<String> = params
                .iter()
                .chain(declared_at_path.iter())
                .map(|p| if let Some(r) = p.get("$ref") { resolve(&d, r.as_str().unwrap()) } else { *p })
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                assert!(names.contains(seg.trim_matches(|c| c == '{' || c == '}')), "{m} {path}: {seg} undeclared");
            }
            // Every error response uses the Error schema.
            for (code, resp) in op["responses"].as_object().unwrap() {
                let resp = if let Some(r) = resp.get("$ref") { resolve(&d, r.as_str().unwrap()) } else { resp };
                if code.starts_with('4') || code.starts_with('5') && path.as_str() != "/readyz" {
                    assert_eq!(resp["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error", "{m} {path} {code}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_with_a_documented_status() {
    let s = Stack::start(StackOptions::default().workers(0).api("GENERATE_TIMEOUT_MS", "300")).await;
    let d = doc();
    // The served document is this file.
    let served: Value = s.http.get(format!("{}/openapi.json", s.base())).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, d, "GET /openapi.json differs from api/openapi.json (rebuild the binaries)");
    let queued = s.submit_ok(json!({"theme": "春"})).await;
    for (path, item) in d["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let url = format!("{}{}", s.base(), path.replace("{id}", &queued).replace("{file}", "app.js"));
            let req = match m {
                "get" => s.http.get(&url),
                "delete" => s.http.delete(&url),
                "post" => s.http.post(&url).json(&json!({"theme": "福"})),
                _ => unreachable!(),
            };
            let r = req.send().await.unwrap();
            let st = r.status().as_u16();
            let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            let body = r.bytes().await.unwrap();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert!(st != 405 && !(st == 404 && v["error"]["type"] == "no_route"), "{m} {path} is not served: {st} {v}");
            assert!(op["responses"].get(st.to_string()).is_some(), "{m} {path} answered undocumented {st}: {v}");
            eprintln!("{:>6} {path:<28} → {st} {ctype}", m.to_uppercase());
        }
    }
    // Methods the document leaves out are not served either.
    for (path, item) in d["paths"].as_object().unwrap() {
        let url = format!("{}{}", s.base(), path.replace("{id}", &queued).replace("{file}", "app.js"));
        for m in ["put", "patch", "delete", "post"] {
            if item.get(m).is_some() {
                continue;
            }
            let r = s.http.request(m.to_uppercase().parse().unwrap(), &url).send().await.unwrap();
            assert!(matches!(r.status().as_u16(), 404 | 405), "undocumented {m} {path} answered {}", r.status());
        }
    }
}
