//! [proof] Property tests of request parsing, validation and the couplet
//! rule checker: arbitrary strings and JSON never make them panic, and
//! whatever passes validation satisfies the documented input rules.
//!
//! The strategies mix fully arbitrary Unicode with text drawn from a small
//! alphabet of CJK ideographs, the allowed in-line punctuation, separators and
//! a few troublemakers (ASCII, emoji, full-width punctuation), so that both
//! the accepting and the refusing branches are exercised often.
#![allow(clippy::unwrap_used, missing_docs)]

use common::request::{
    is_cjk, is_line_punct, CoupletRequest, ValidationError, MAX_THEME_CHARS, MAX_UPPER_CHARS, MIN_UPPER_CHARS,
    THEME_LENGTHS,
};
use common::rules::{check, CoupletRef, RuleViolation};
use proptest::prelude::*;
use serde_json::Value;

/// Characters that make validation interesting: CJK, allowed punctuation,
/// theme separators, and characters that must be refused.
const ALPHABET: &[char] = &[
    '春', '风', '福', '龙', '年', '吉', '祥', '家', '和', '万', '事', '兴', '门', '山', '水', '天', '人', '寿', '一', '鿿',
    '丁', '，', '、', '；', ' ', '　', '！', '。', '·', 'a', 'Z', '1', '-', '🎉', '\u{3400}', '\u{A000}', '\t', '\u{0}',
];

fn mixed_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(proptest::sample::select(ALPHABET), 0..=max).prop_map(|v| v.into_iter().collect()),
        1 => any::<String>(),
        1 => proptest::string::string_regex(&format!("[\\u{{4e00}}-\\u{{9fff}}]{{0,{max}}}")).unwrap(),
    ]
}

fn style() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        proptest::sample::select(vec!["classic", "festive", "literary", "business", "family", "Festive", " classic", ""])
            .prop_map(|s| Some(s.to_string())),
        any::<String>().prop_map(Some),
    ]
}

fn length() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![Just(None), (-2i64..30).prop_map(Some), any::<i64>().prop_map(Some)]
}

fn callback() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => proptest::sample::select(vec![
            "http://example.com/hook",
            "https://[::1]:8080/x",
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "not a url",
            "http://",
            "http://2130706433/",
        ])
        .prop_map(|s| Some(s.to_string())),
        1 => any::<String>().prop_map(Some),
    ]
}

fn request() -> impl Strategy<Value = CoupletRequest> {
    (
        prop_oneof![Just(None), mixed_text(40).prop_map(Some)],
        style(),
        length(),
        prop_oneof![Just(None), mixed_text(30).prop_map(Some)],
        any::<Option<u64>>(),
        callback(),
        prop_oneof![Just(None), (-2i64..8).prop_map(Some)],
        prop_oneof![Just(None), mixed_text(4).prop_map(Some)],
    )
        .prop_map(|(theme, style, length, upper, seed, callback_url, candidates, head)| CoupletRequest {
            theme,
            style,
            length,
            upper,
            seed,
            callback_url,
            candidates,
            head,
        })
}

/// Arbitrary JSON, biased towards objects with the request's field names.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        mixed_text(30).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    4 => proptest::sample::select(vec!["theme", "style", "length", "upper", "seed", "callback_url", "candidates", "head"])
                        .prop_map(String::from),
                    1 => any::<String>(),
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The documented rules every accepted request satisfies.
fn assert_documented_rules(raw: &CoupletRequest) {
    let Ok(v) = raw.validate() else { return };
    // Theme: distinct CJK characters, at most four, each from the raw theme.
    assert!(v.theme_chars.len() <= MAX_THEME_CHARS, "{raw:?} → {v:?}");
    assert!(v.theme_chars.iter().all(|c| is_cjk(*c)), "{raw:?} → {v:?}");
    for (i, c) in v.theme_chars.iter().enumerate() {
        assert!(!v.theme_chars[..i].contains(c), "duplicate theme char: {v:?}");
        assert!(raw.theme.as_deref().unwrap_or("").contains(*c), "{v:?}");
    }
    assert!(!v.theme_chars.is_empty() || v.upper.is_some(), "neither theme nor upper: {raw:?}");
    match &v.upper {
        Some(u) => {
            let chars: Vec<char> = u.chars().collect();
            assert!((MIN_UPPER_CHARS..=MAX_UPPER_CHARS).contains(&chars.len()), "{u}");
            assert!(chars.iter().all(|&c| is_cjk(c) || is_line_punct(c)), "{u}");
            assert!(!is_line_punct(chars[0]) && !is_line_punct(chars[chars.len() - 1]), "{u}");
            assert!(!chars.windows(2).any(|w| is_line_punct(w[0]) && is_line_punct(w[1])), "{u}");
            assert_eq!(v.length, chars.len(), "upper mode: length is the upper line's");
            assert_eq!(raw.upper.as_deref().map(str::trim), Some(u.as_str()));
        }
        None => assert!(THEME_LENGTHS.contains(&v.length), "theme mode length {}", v.length),
    }
    if let Some(cb) = &v.callback_url {
        let u = url::Url::parse(cb).unwrap();
        assert!(matches!(u.scheme(), "http" | "https") && u.host().is_some());
    }
    assert_eq!(v.seed, raw.seed);
    assert_eq!(v.style.as_str(), raw.style.as_deref().unwrap_or("classic"));
    assert!((1..=5).contains(&v.candidates));
    assert_eq!(v.candidates as i64, raw.candidates.unwrap_or(1));
    if let Some(h) = v.head {
        assert_ne!(h[0], h[1]);
        if let Some(u) = &v.upper {
            assert!(u.starts_with(h[0]) && !u.contains(h[1]));
        }
    }
}

fn kind_is_documented(e: &ValidationError) -> bool {
    matches!(
        e.kind(),
        "missing_input"
            | "non_cjk_input"
            | "input_too_long"
            | "input_too_short"
            | "bad_punctuation"
            | "unknown_style"
            | "unsupported_length"
            | "invalid_callback_url"
            | "invalid_candidates"
            | "invalid_head"
    ) && matches!(e.field(), "theme" | "upper" | "style" | "length" | "callback_url" | "candidates" | "head")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn validate_never_panics_and_accepted_requests_follow_the_rules(raw in request()) {
        match raw.validate() {
            Ok(_) => assert_documented_rules(&raw),
            Err(e) => prop_assert!(kind_is_documented(&e), "{e:?}"),
        }
    }

    #[test]
    fn arbitrary_json_values_never_panic(v in json_value()) {
        if let Ok(raw) = serde_json::from_value::<CoupletRequest>(v.clone()) {
            match raw.validate() {
                Ok(_) => assert_documented_rules(&raw),
                Err(e) => prop_assert!(kind_is_documented(&e)),
            }
            // The wire form round-trips.
            let again: CoupletRequest = serde_json::from_str(&serde_json::to_string(&raw).unwrap()).unwrap();
            prop_assert_eq!(again, raw);
        }
    }

    #[test]
    fn arbitrary_json_text_never_panics(s in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for input in [s.as_bytes(), &bytes[..]] {
            if let Ok(raw) = serde_json::from_slice::<CoupletRequest>(input) {
                let _ = raw.validate();
            }
        }
    }

    #[test]
    fn valid_cjk_requests_are_accepted(
        theme in proptest::collection::vec(proptest::sample::select(&ALPHABET[..21]), 1..=4),
        len in proptest::sample::select(&THEME_LENGTHS[..]),
        upper in proptest::collection::vec(proptest::sample::select(&ALPHABET[..21]), MIN_UPPER_CHARS..=MAX_UPPER_CHARS),
    ) {
        // Up to four characters (repeats allowed) of CJK always pass in theme mode.
        let t: String = theme.iter().collect();
        let r = CoupletRequest { theme: Some(t), length: Some(len as i64), ..Default::default() };
        let v = r.validate().unwrap();
        prop_assert_eq!(v.length, len);
        assert_documented_rules(&r);
        // A CJK upper line of 4–24 characters always passes and sets the length.
        let u: String = upper.iter().collect();
        let r = CoupletRequest { upper: Some(u), ..Default::default() };
        prop_assert_eq!(r.validate().unwrap().length, upper.len());
    }

    #[test]
    fn rules_check_never_panics(
        upper in mixed_text(12),
        lower in mixed_text(12),
        hengpi in mixed_text(6),
        theme in proptest::collection::vec(any::<char>(), 0..5),
        user_upper in any::<bool>(),
    ) {
        let r = check(CoupletRef { upper: &upper, lower: &lower, hengpi: &hengpi }, &theme, user_upper);
        if r.is_ok() {
            // Whatever passes has the shape the rules promise.
            let (u, l): (Vec<char>, Vec<char>) = (upper.chars().collect(), lower.chars().collect());
            prop_assert_eq!(u.len(), l.len());
            prop_assert!(!u.is_empty());
            prop_assert_eq!(hengpi.chars().count(), 4);
            prop_assert!(hengpi.chars().all(is_cjk));
            for t in &theme {
                prop_assert!(upper.contains(*t) || lower.contains(*t) || hengpi.contains(*t));
            }
        }
    }

    #[test]
    fn rules_check_reports_shape_for_any_length_mismatch(upper in "[\\u{4e00}-\\u{9fff}]{1,10}", extra in "[\\u{4e00}-\\u{9fff}]{1,3}") {
        let lower = format!("{upper}{extra}");
        prop_assert_eq!(check(CoupletRef { upper: &upper, lower: &lower, hengpi: "万象更新" }, &[], true), Err(RuleViolation::Shape));
    }
}
