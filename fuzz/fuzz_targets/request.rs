//! Fuzz target: request bytes through the API's parse path
//! (`api::body::parse_json::<CoupletRequest>` then `validate()`), the error
//! → HTTP mapping, and the same input as a `WEBHOOK_ALLOWLIST` string.
//! Nothing may panic; whatever validates must satisfy the documented rules.
#![no_main]

use api::error::ApiError;
use common::request::{is_cjk, is_line_punct, CoupletRequest, THEME_LENGTHS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match api::body::parse_json::<CoupletRequest>(data) {
        Ok(req) => match req.validate() {
            Ok(v) => {
                assert!(v.theme_chars.len() <= 4 && v.theme_chars.iter().all(|c| is_cjk(*c)), "{v:?}");
                match &v.upper {
                    Some(u) => {
                        let cs: Vec<char> = u.chars().collect();
                        assert!((4..=24).contains(&cs.len()) && cs.len() == v.length, "{v:?}");
                        assert!(cs.iter().all(|c| is_cjk(*c) || is_line_punct(*c)), "{v:?}");
                        assert!(!is_line_punct(cs[0]) && !is_line_punct(cs[cs.len() - 1]), "{v:?}");
                        assert!(!cs.windows(2).any(|w| is_line_punct(w[0]) && is_line_punct(w[1])), "{v:?}");
                    }
                    None => assert!(!v.theme_chars.is_empty() && THEME_LENGTHS.contains(&v.length), "{v:?}"),
                }
                // What the API queues must read back as the same request.
                let wire = serde_json::to_string(&v).expect("a validated request serializes");
                let back: common::request::ValidRequest = serde_json::from_str(&wire).expect("and reads back");
                assert_eq!(back, v);
            }
            Err(e) => {
                let r = ApiError::from(e).into_response();
                assert_eq!(r.status(), 422);
            }
        },
        Err(e) => {
            let status = e.status().as_u16();
            assert!(status == 400 || status == 422, "{} → {status}", e.kind());
            let _ = e.into_response();
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = common::ssrf::Allowlist::parse(s);
    }
});
