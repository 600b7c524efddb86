//! Ranking the candidates of one request: fluency (the model's length-normalised
//! log-likelihood) plus 对仗 (parallelism) measured on a real word segmentation.
//!
//! 对仗 is judged the way a reader does: both lines are segmented and tagged by
//! jieba (`jieba-rs`, its bundled dictionary); good couplets break into words at
//! the same places and set word classes against each other (noun against noun,
//! verb against verb, numeral against numeral), and repeat characters in mirrored
//! patterns. Every candidate already satisfies the five rules (the decoder
//! guarantees them), so ranking only chooses among valid couplets.

use jieba_rs::Jieba;
use std::sync::OnceLock;

/// Weight of the 对仗 score (0–1) against the mean log-probability per character.
pub const DUIZHANG_WEIGHT: f32 = 1.0;

fn jieba() -> &'static Jieba {
    static J: OnceLock<Jieba> = OnceLock::new();
    J.get_or_init(Jieba::new)
}

/// Loads the segmentation dictionary now (it takes a fraction of a second), so the
/// first batch does not pay for it.
pub fn warm_up() {
    let _ = jieba();
}

/// Coarse word class of a jieba part-of-speech tag: the classes that 对仗 pairs.
fn class(tag: &str) -> char {
    match tag.as_bytes().first().copied().unwrap_or(b'x') {
        // nouns, places, times, directions, names, proper nouns
        b'n' | b's' | b't' | b'f' => 'n',
        b'v' => 'v',
        b'a' | b'b' | b'z' => 'a',
        b'm' | b'q' => 'm',
        // idioms and set phrases behave as units of their own
        b'i' | b'l' => 'i',
        other => other as char,
    }
}

/// Words of a line as (start, end, class), in character offsets.
fn words(line: &str) -> Vec<(usize, usize, char)> {
    let mut out = Vec::new();
    let mut at = 0;
    for t in jieba().tag(line, true) {
        let n = t.word.chars().count();
        out.push((at, at + n, class(t.tag)));
        at += n;
    }
    out
}

/// 对仗 score in 0–1: half for word boundaries at the same places (Jaccard of the
/// inner cut positions), half for the share of characters in words that face a
/// word of the same span and class, scaled by mirrored repetition (a character
/// repeated in one line must repeat at the same positions in the other).
pub fn duizhang(upper: &str, lower: &str) -> f32 {
    let n = upper.chars().count();
    if n == 0 || n != lower.chars().count() {
        return 0.0;
    }
    let (wu, wl) = (words(upper), words(lower));
    let cuts = |w: &[(usize, usize, char)]| -> Vec<usize> { w.iter().map(|x| x.1).filter(|&e| e < n).collect() };
    let (cu, cl) = (cuts(&wu), cuts(&wl));
    let inter = cu.iter().filter(|c| cl.contains(c)).count();
    let union = cu.len() + cl.len() - inter;
    let boundary = if union == 0 { 1.0 } else { inter as f32 / union as f32 };
    let matched: usize = wu
        .iter()
        .filter(|(s, e, c)| wl.iter().any(|(s2, e2, c2)| s == s2 && e == e2 && c == c2))
        .map(|(s, e, _)| e - s)
        .sum();
    let classes = matched as f32 / n as f32;
    let (u, l): (Vec<char>, Vec<char>) = (upper.chars().collect(), lower.chars().collect());
    let mut pairs = 0usize;
    let mut mirrored = 0usize;
    for i in 0..n {
        for j in i + 1..n {
            if u[i] == u[j] || l[i] == l[j] {
                pairs += 1;
                mirrored += usize::from((u[i] == u[j]) == (l[i] == l[j]));
            }
        }
    }
    let mirror = if pairs == 0 { 1.0 } else { mirrored as f32 / pairs as f32 };
    (0.5 * boundary + 0.5 * classes) * mirror
}

/// The ranking score of one candidate: mean log-probability per written character
/// plus the weighted 对仗 score. Higher is better.
pub fn score(logp: f32, n_logp: u32, upper: &str, lower: &str) -> f32 {
    let fluency = if n_logp == 0 { f32::MIN / 4.0 } else { logp / n_logp as f32 };
    fluency + DUIZHANG_WEIGHT * duizhang(upper, lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_lines_score_higher_than_mismatched_ones() {
        // Same word shapes and classes (春风/旭日, 送暖/临门 ...).
        let good = duizhang("春风送暖千家乐", "旭日临门万户欢");
        // Lower line breaks into words at other places and classes.
        let bad = duizhang("春风送暖千家乐", "欢乐的人们走来");
        assert!(good > bad, "good {good} bad {bad}");
        assert!((0.0..=1.0).contains(&good));
    }

    #[test]
    fn mirrored_repetition_is_rewarded() {
        let mirrored = duizhang("年年顺景财源广", "岁岁平安福寿长");
        let broken = duizhang("年年顺景财源广", "岁月平安福寿长");
        assert!(mirrored > broken, "mirrored {mirrored} broken {broken}");
    }

    #[test]
    fn score_prefers_fluent_candidates_at_equal_parallelism() {
        let a = score(-6.0, 7, "春风送暖千家乐", "旭日临门万户欢");
        let b = score(-20.0, 7, "春风送暖千家乐", "旭日临门万户欢");
        assert!(a > b);
    }
}
