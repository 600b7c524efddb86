//! The couplet request: its wire shape, its validation, and the one error
//! type that the API (422 before queueing), the worker and the offline
//! `generate` command all report. Validation lives here so that "what is a
//! valid request" is decided once.

use crate::Style;
use serde::{Deserialize, Serialize};

/// Lengths a theme request may ask for.
pub const THEME_LENGTHS: [usize; 3] = [5, 7, 9];
/// Default line length for theme requests.
pub const DEFAULT_LENGTH: usize = 7;
/// Shortest user-supplied upper line.
pub const MIN_UPPER_CHARS: usize = 4;
/// Longest user-supplied upper line.
pub const MAX_UPPER_CHARS: usize = 24;
/// Most distinct theme characters that must appear in the couplet.
pub const MAX_THEME_CHARS: usize = 4;
/// Longest raw theme text accepted (spaces and punctuation included).
pub const MAX_THEME_RAW_CHARS: usize = 32;
/// Most ranked candidates one request may ask for.
pub const MAX_CANDIDATES: usize = 5;
/// Longest callback URL accepted.
pub const MAX_CALLBACK_URL_BYTES: usize = 2048;

/// Punctuation allowed inside a line; it stands at the same positions in both lines.
pub const LINE_PUNCT: [char; 3] = ['，', '、', '；'];

/// True for CJK Unified Ideographs (the corpus range).
pub fn is_cjk(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

/// True for the in-line punctuation marks `，、；`.
pub fn is_line_punct(c: char) -> bool {
    LINE_PUNCT.contains(&c)
}

/// A request as it arrives on the wire. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoupletRequest {
    /// Wish or theme, e.g. `龙年 吉祥`.
    #[serde(default)]
    pub theme: Option<String>,
    /// Style name; defaults to `classic`.
    #[serde(default)]
    pub style: Option<String>,
    /// Line length for theme requests (5, 7 or 9).
    #[serde(default)]
    pub length: Option<i64>,
    /// A user-supplied upper line; the service writes the lower line.
    #[serde(default)]
    pub upper: Option<String>,
    /// Makes the output reproducible.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Where to POST the finished job.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// How many ranked couplets to return (1–5, default 1); the best comes first.
    #[serde(default)]
    pub candidates: Option<i64>,
    /// 藏头: two characters; the upper line starts with the first, the lower with the second.
    #[serde(default)]
    pub head: Option<String>,
}

/// A request that passed validation: normalised, typed, ready to queue or decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidRequest {
    /// Distinct theme characters in order of appearance (0–4).
    pub theme_chars: Vec<char>,
    /// The theme text as given (trimmed), for display.
    pub theme: Option<String>,
    /// Chosen style.
    pub style: Style,
    /// Line length.
    pub length: usize,
    /// User-supplied upper line, if any.
    pub upper: Option<String>,
    /// Seed, if any.
    pub seed: Option<u64>,
    /// Callback URL (syntax checked; SSRF policy is checked by the caller).
    pub callback_url: Option<String>,
    /// Ranked couplets wanted (1–5). Jobs queued before this field existed read as 1.
    #[serde(default = "one")]
    pub candidates: usize,
    /// 藏头 characters (upper line's first, lower line's first), if any.
    #[serde(default)]
    pub head: Option<[char; 2]>,
}

fn one() -> usize {
    1
}

/// Why a request is invalid. `kind()` is the stable `error.type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Neither a theme nor an upper line.
    #[error("either `theme` or `upper` is required")]
    MissingInput,
    /// Theme or upper line contains characters other than CJK ideographs (and allowed punctuation).
    #[error("{field} may only contain Chinese characters (CJK ideographs){extra}")]
    NonCjk {
        /// Field name.
        field: &'static str,
        /// Extra hint.
        extra: &'static str,
    },
    /// Theme or upper line is too long.
    #[error("{field} is too long: {got} characters, at most {max}")]
    TooLong {
        /// Field name.
        field: &'static str,
        /// Length given.
        got: usize,
        /// Maximum.
        max: usize,
    },
    /// Upper line shorter than the minimum.
    #[error("upper is too short: {got} characters, at least {min}")]
    TooShort {
        /// Length given.
        got: usize,
        /// Minimum.
        min: usize,
    },
    /// Punctuation at the start, end or twice in a row.
    #[error("upper has misplaced punctuation: only ，、； between characters are allowed")]
    BadPunctuation,
    /// Style is not one of the five.
    #[error("unknown style `{0}`: use classic, festive, literary, business or family")]
    UnknownStyle(String),
    /// Length not supported.
    #[error("{0}")]
    UnsupportedLength(String),
    /// Callback URL is malformed or refused.
    #[error("callback_url {0}")]
    InvalidCallbackUrl(String),
    /// `candidates` is not an integer from 1 to 5.
    #[error("candidates must be an integer from 1 to {MAX_CANDIDATES}")]
    InvalidCandidates,
    /// `head` is not two characters that a couplet can start with.
    #[error("head {0}")]
    InvalidHead(String),
}

impl ValidationError {
    /// Stable machine-readable type, used as JSON `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ValidationError::MissingInput => "missing_input",
            ValidationError::NonCjk { .. } => "non_cjk_input",
            ValidationError::TooLong { .. } => "input_too_long",
            ValidationError::TooShort { .. } => "input_too_short",
            ValidationError::BadPunctuation => "bad_punctuation",
            ValidationError::UnknownStyle(_) => "unknown_style",
            ValidationError::UnsupportedLength(_) => "unsupported_length",
            ValidationError::InvalidCallbackUrl(_) => "invalid_callback_url",
            ValidationError::InvalidCandidates => "invalid_candidates",
            ValidationError::InvalidHead(_) => "invalid_head",
        }
    }

    /// The request field the error is about (for UIs that show it next to the field).
    pub fn field(&self) -> &'static str {
        match self {
            ValidationError::MissingInput => "theme",
            ValidationError::NonCjk { field, .. } | ValidationError::TooLong { field, .. } => field,
            ValidationError::TooShort { .. } | ValidationError::BadPunctuation => "upper",
            ValidationError::UnknownStyle(_) => "style",
            ValidationError::UnsupportedLength(_) => "length",
            ValidationError::InvalidCallbackUrl(_) => "callback_url",
            ValidationError::InvalidCandidates => "candidates",
            ValidationError::InvalidHead(_) => "head",
        }
    }
}

fn is_theme_separator(c: char) -> bool {
    c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(
            c,
            '，' | '、' | '；' | '。' | '！' | '？' | '：' | '·' | '“' | '”' | '‘' | '’' | '（' | '）' | '《' | '》' | '…' | '—' | '　'
        )
}

fn validate_theme(raw: &str) -> Result<Vec<char>, ValidationError> {
    let n = raw.chars().count();
    if n > MAX_THEME_RAW_CHARS {
        return Err(ValidationError::TooLong { field: "theme", got: n, max: MAX_THEME_RAW_CHARS });
    }
    let mut out: Vec<char> = Vec::new();
    for c in raw.chars().filter(|c| !is_theme_separator(*c)) {
        if !is_cjk(c) {
            return Err(ValidationError::NonCjk { field: "theme", extra: ", spaces and punctuation" });
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.len() > MAX_THEME_CHARS {
        return Err(ValidationError::TooLong { field: "theme", got: out.len(), max: MAX_THEME_CHARS });
    }
    Ok(out)
}

/// Checks an upper line: 4–24 characters, CJK plus `，、；` between characters.
pub fn validate_upper(upper: &str) -> Result<Vec<char>, ValidationError> {
    let chars: Vec<char> = upper.trim().chars().collect();
    if chars.len() > MAX_UPPER_CHARS {
        return Err(ValidationError::TooLong { field: "upper", got: chars.len(), max: MAX_UPPER_CHARS });
    }
    if chars.iter().any(|&c| !is_cjk(c) && !is_line_punct(c)) {
        return Err(ValidationError::NonCjk { field: "upper", extra: " and ，、；" });
    }
    if chars.len() < MIN_UPPER_CHARS {
        return Err(ValidationError::TooShort { got: chars.len(), min: MIN_UPPER_CHARS });
    }
    let bad_punct = chars.first().is_some_and(|c| is_line_punct(*c))
        || chars.last().is_some_and(|c| is_line_punct(*c))
        || chars.windows(2).any(|w| is_line_punct(w[0]) && is_line_punct(w[1]));
    if bad_punct {
        return Err(ValidationError::BadPunctuation);
    }
    Ok(chars)
}

/// Checks a 藏头 request: exactly two distinct CJK characters (spaces ignored) that the
/// rules let stand at the start of the two lines. The second may not occur in the upper
/// line (rule 2), so with a given upper line it must be absent from it and the first must open it.
pub fn validate_head(raw: &str, upper: Option<&[char]>) -> Result<[char; 2], ValidationError> {
    let chars: Vec<char> = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if chars.len() != 2 || !chars.iter().all(|c| is_cjk(*c)) {
        return Err(ValidationError::InvalidHead("must be exactly two Chinese characters, e.g. 春福".into()));
    }
    let head = [chars[0], chars[1]];
    if head[0] == head[1] {
        return Err(ValidationError::InvalidHead(format!(
            "characters must differ: {} would stand in both lines, which rule 2 forbids",
            head[0]
        )));
    }
    if let Some(u) = upper {
        if u.first() != Some(&head[0]) {
            return Err(ValidationError::InvalidHead(format!("{} must be the first character of the given upper line", head[0])));
        }
        if u.contains(&head[1]) {
            return Err(ValidationError::InvalidHead(format!(
                "{} occurs in the upper line, so the lower line may not use it (rule 2)",
                head[1]
            )));
        }
        // An upper line that ends on its first character mirrors the lower line's first
        // character onto its end, which must be level-toned (rule 3).
        if u.len() > 1 && u.last() == u.first() && crate::tones::tone(head[1]) != Some(crate::tones::Tone::Ping) {
            return Err(ValidationError::InvalidHead(format!(
                "the upper line ends on its first character, so the lower line would end on {}, which is not a 平 (level) tone (rule 3)",
                head[1]
            )));
        }
    }
    Ok(head)
}

/// Syntax check of a callback URL (scheme, host, size). The SSRF policy is `ssrf::check`.
pub fn validate_callback_syntax(raw: &str) -> Result<url::Url, ValidationError> {
    if raw.len() > MAX_CALLBACK_URL_BYTES {
        return Err(ValidationError::InvalidCallbackUrl(format!("is longer than {MAX_CALLBACK_URL_BYTES} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| ValidationError::InvalidCallbackUrl(format!("is not a valid URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ValidationError::InvalidCallbackUrl("must use http or https".into()));
    }
    if url.host().is_none() {
        return Err(ValidationError::InvalidCallbackUrl("has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::InvalidCallbackUrl("must not carry credentials".into()));
    }
    Ok(url)
}

impl CoupletRequest {
    /// Validates and normalises the request.
    pub fn validate(&self) -> Result<ValidRequest, ValidationError> {
        let style = match self.style.as_deref() {
            None => Style::default(),
            Some(s) => Style::parse(s).ok_or_else(|| ValidationError::UnknownStyle(s.chars().take(32).collect()))?,
        };
        let theme_chars = match self.theme.as_deref() {
            Some(t) => validate_theme(t)?,
            None => Vec::new(),
        };
        let upper = match self.upper.as_deref() {
            Some(u) if !u.trim().is_empty() => Some(validate_upper(u)?),
            _ => None,
        };
        if theme_chars.is_empty() && upper.is_none() {
            return Err(ValidationError::MissingInput);
        }
        let length = match (&upper, self.length) {
            (Some(u), None) => u.len(),
            (Some(u), Some(l)) => {
                if l != u.len() as i64 {
                    return Err(ValidationError::UnsupportedLength(format!(
                        "length {l} does not match the upper line's {} characters (omit length when giving upper)",
                        u.len()
                    )));
                }
                u.len()
            }
            (None, None) => DEFAULT_LENGTH,
            (None, Some(l)) => {
                if !THEME_LENGTHS.iter().any(|&x| x as i64 == l) {
                    return Err(ValidationError::UnsupportedLength(format!(
                        "length {l} is not supported: use 5, 7 or 9 (or give an upper line of 4–24 characters)"
                    )));
                }
                l as usize
            }
        };
        let callback_url = match self.callback_url.as_deref() {
            Some(u) => Some(validate_callback_syntax(u)?.to_string()),
            None => None,
        };
        let candidates = match self.candidates {
            None => 1,
            Some(n) if (1..=MAX_CANDIDATES as i64).contains(&n) => n as usize,
            Some(_) => return Err(ValidationError::InvalidCandidates),
        };
        let head = match self.head.as_deref() {
            None => None,
            Some(h) => Some(validate_head(h, upper.as_deref())?),
        };
        Ok(ValidRequest {
            theme_chars,
            theme: self.theme.as_ref().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
            style,
            length,
            upper: upper.map(|u| u.into_iter().collect()),
            seed: self.seed,
            callback_url,
            candidates,
            head,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(theme: Option<&str>, upper: Option<&str>) -> CoupletRequest {
        CoupletRequest { theme: theme.map(String::from), upper: upper.map(String::from), ..Default::default() }
    }

    #[test]
    fn theme_is_split_into_distinct_characters() {
        let v = req(Some(" 龙年 吉祥！"), None).validate().expect("valid");
        assert_eq!(v.theme_chars, vec!['龙', '年', '吉', '祥']);
        assert_eq!(v.length, 7);
        assert_eq!(v.style, Style::Classic);
    }

    #[test]
    fn invalid_inputs_get_their_documented_kinds() {
        assert_eq!(req(None, None).validate().unwrap_err().kind(), "missing_input");
        assert_eq!(req(Some("  "), None).validate().unwrap_err().kind(), "missing_input");
        assert_eq!(req(Some("hello"), None).validate().unwrap_err().kind(), "non_cjk_input");
        assert_eq!(req(Some("一二三四五"), None).validate().unwrap_err().kind(), "input_too_long");
        assert_eq!(req(None, Some("abc def")).validate().unwrap_err().kind(), "non_cjk_input");
        assert_eq!(req(None, Some("春风")).validate().unwrap_err().kind(), "input_too_short");
        assert_eq!(req(None, Some("，春风送暖")).validate().unwrap_err().kind(), "bad_punctuation");
        let mut r = req(Some("春"), None);
        r.style = Some("gothic".into());
        assert_eq!(r.validate().unwrap_err().kind(), "unknown_style");
        let mut r = req(Some("春"), None);
        r.length = Some(6);
        assert_eq!(r.validate().unwrap_err().kind(), "unsupported_length");
        r.length = Some(-1);
        assert_eq!(r.validate().unwrap_err().kind(), "unsupported_length");
        let mut r = req(Some("春"), None);
        r.callback_url = Some("ftp://example.com/x".into());
        assert_eq!(r.validate().unwrap_err().kind(), "invalid_callback_url");
    }

    #[test]
    fn candidates_and_head_are_validated() {
        let mut r = req(Some("春"), None);
        assert_eq!(r.validate().expect("valid").candidates, 1);
        for bad in [0, 6, -3] {
            r.candidates = Some(bad);
            assert_eq!(r.validate().unwrap_err().kind(), "invalid_candidates", "{bad}");
        }
        r.candidates = Some(5);
        assert_eq!(r.validate().expect("valid").candidates, 5);
        for bad in ["春", "春福满", "ab", "春春", "春,"] {
            r.head = Some(bad.into());
            assert_eq!(r.validate().unwrap_err().kind(), "invalid_head", "{bad}");
        }
        r.head = Some("春 福".into());
        assert_eq!(r.validate().expect("valid").head, Some(['春', '福']));
        let mut u = req(None, Some("春风送暖入屠苏"));
        u.head = Some("春福".into());
        assert_eq!(u.validate().expect("valid").head, Some(['春', '福']));
        u.head = Some("福春".into());
        assert_eq!(u.validate().unwrap_err().kind(), "invalid_head");
        u.head = Some("春风".into());
        assert_eq!(u.validate().unwrap_err().kind(), "invalid_head");
        // 春…春: the lower line's first character is mirrored onto its end, so it must be 平.
        let mut m = req(None, Some("春风送暖迎新春"));
        m.head = Some("春岁".into());
        assert_eq!(m.validate().unwrap_err().kind(), "invalid_head");
        m.head = Some("春年".into());
        assert_eq!(m.validate().expect("年 is level").head, Some(['春', '年']));
    }

    #[test]
    fn upper_sets_the_length() {
        let v = req(None, Some("春风送暖，万家团圆")).validate().expect("valid");
        assert_eq!(v.length, 9);
        let mut r = req(None, Some("春风送暖入屠苏"));
        r.length = Some(5);
        assert_eq!(r.validate().unwrap_err().kind(), "unsupported_length");
    }
}
