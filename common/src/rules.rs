//! The five couplet guarantees, as a checker. The decoder enforces them by
//! construction; this module states them once so that tests, the worker's
//! final self-check and the property tests all judge by the same rules.

use crate::request::{is_cjk, is_line_punct};
use crate::tones::{tone, Tone};

/// A broken rule, with the rule's number from the product spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    /// Rule 1: lengths or punctuation positions differ.
    #[error("rule 1: lines differ in length or punctuation positions")]
    Shape,
    /// Rule 2: a character of the upper line reappears in the lower line.
    #[error("rule 2: character {0} of the upper line reappears in the lower line")]
    Repeat(char),
    /// Rule 3: wrong or unknown final tone.
    #[error("rule 3: {0} line must end on a {1} tone")]
    Tone(&'static str, &'static str),
    /// Rule 4: a theme character is missing.
    #[error("rule 4: theme character {0} appears nowhere")]
    ThemeMissing(char),
    /// Rule 5: 横批 is not four CJK characters.
    #[error("rule 5: 横批 must be four Chinese characters")]
    Hengpi,
    /// Lines contain something other than CJK and `，、；`.
    #[error("line contains characters other than CJK and ，、；")]
    Charset,
}

/// A couplet to judge.
#[derive(Debug, Clone, Copy)]
pub struct CoupletRef<'a> {
    /// 上联.
    pub upper: &'a str,
    /// 下联.
    pub lower: &'a str,
    /// 横批.
    pub hengpi: &'a str,
}

fn positions(line: &[char], c: char) -> Vec<usize> {
    line.iter().enumerate().filter(|(_, &x)| x == c).map(|(i, _)| i).collect()
}

/// Rule 2's exception: `c` may appear in both lines only as 叠字 at mirrored positions.
pub fn repeat_allowed(upper: &[char], lower: &[char], c: char) -> bool {
    let pu = positions(upper, c);
    pu.is_empty() || (pu.len() >= 2 && pu == positions(lower, c))
}

/// Checks all five guarantees. `user_upper`: the upper line came from the user,
/// so its own tone rule does not apply.
pub fn check(c: CoupletRef<'_>, theme_chars: &[char], user_upper: bool) -> Result<(), RuleViolation> {
    let up: Vec<char> = c.upper.chars().collect();
    let lo: Vec<char> = c.lower.chars().collect();
    if up.iter().chain(lo.iter()).any(|&ch| !is_cjk(ch) && !is_line_punct(ch)) {
        return Err(RuleViolation::Charset);
    }
    if up.len() != lo.len() || up.is_empty() {
        return Err(RuleViolation::Shape);
    }
    for (a, b) in up.iter().zip(lo.iter()) {
        if is_line_punct(*a) != is_line_punct(*b) {
            return Err(RuleViolation::Shape);
        }
    }
    for &ch in lo.iter().filter(|c| !is_line_punct(**c)) {
        if !repeat_allowed(&up, &lo, ch) {
            return Err(RuleViolation::Repeat(ch));
        }
    }
    if !user_upper && up.last().and_then(|&ch| tone(ch)) != Some(Tone::Ze) {
        return Err(RuleViolation::Tone("upper", "仄 (oblique)"));
    }
    if lo.last().and_then(|&ch| tone(ch)) != Some(Tone::Ping) {
        return Err(RuleViolation::Tone("lower", "平 (level)"));
    }
    let hp: Vec<char> = c.hengpi.chars().collect();
    if hp.len() != 4 || !hp.iter().all(|&ch| is_cjk(ch)) {
        return Err(RuleViolation::Hengpi);
    }
    for &t in theme_chars {
        if !up.contains(&t) && !lo.contains(&t) && !hp.contains(&t) {
            return Err(RuleViolation::ThemeMissing(t));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(u: &'a str, l: &'a str, h: &'a str) -> CoupletRef<'a> {
        CoupletRef { upper: u, lower: l, hengpi: h }
    }

    #[test]
    fn a_good_couplet_passes() {
        check(c("天增岁月人增寿", "春满乾坤福满门", "万象更新"), &['福'], false).expect("valid");
    }

    #[test]
    fn each_rule_bites() {
        assert_eq!(check(c("天增岁月人增寿", "春满乾坤福满", "万象更新"), &[], false), Err(RuleViolation::Shape));
        assert_eq!(check(c("天增岁月，人增寿", "春满乾坤福，满门", "万象更新"), &[], false), Err(RuleViolation::Shape));
        assert_eq!(check(c("天增岁月人增寿", "春满乾坤人满门", "万象更新"), &[], false), Err(RuleViolation::Repeat('人')));
        assert!(matches!(check(c("天增岁月人增春", "春满乾坤福满门", "万象更新"), &[], false), Err(RuleViolation::Repeat('春'))));
        assert!(matches!(check(c("天增岁月人增寿", "春满乾坤福满家", "万象更新"), &[], true), Ok(())));
        assert!(matches!(check(c("天增岁月人增年", "春满乾坤福满门", "万象更新"), &[], false), Err(RuleViolation::Tone("upper", _))));
        assert!(matches!(check(c("天增岁月人增寿", "春满乾坤福满地", "万象更新"), &[], false), Err(RuleViolation::Tone("lower", _))));
        assert_eq!(check(c("天增岁月人增寿", "春满乾坤福满门", "万象更新"), &['龙'], false), Err(RuleViolation::ThemeMissing('龙')));
        assert_eq!(check(c("天增岁月人增寿", "春满乾坤福满门", "万象新"), &[], false), Err(RuleViolation::Hengpi));
    }

    #[test]
    fn mirrored_reduplication_is_allowed() {
        // 年年 at positions 0,1 in both lines.
        check(c("年年顺景财源广", "年年如意福星高", "万事如意"), &[], true).expect("mirrored 叠字 allowed");
        assert!(check(c("年年顺景财源广", "岁岁年如意福高", "万事如意"), &[], true).is_err());
    }
}
