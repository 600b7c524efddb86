//! The 横批 bank and how a 横批 is chosen.
//!
//! A curated bank (`common/data/hengpi.tsv`, written by the project team)
//! of four-character blessings and scenes, each tagged with the styles it
//! suits and theme keywords. Choosing is a ranking, not generation, so the
//! 横批 is always a real, well-formed phrase:
//! 1. it must contain every theme character the two lines left out (rule 4);
//! 2. then it prefers phrases that contain more theme characters, suit the
//!    style, and share characters or tags with the couplet;
//! 3. ties are broken by the request's seeded RNG, so a seed reproduces it.

use crate::Style;
use rand::Rng;
use std::sync::OnceLock;

static BANK_TSV: &str = include_str!("../data/hengpi.tsv");

/// One phrase of the bank.
#[derive(Debug, Clone)]
pub struct Phrase {
    /// The four characters.
    pub text: String,
    chars: [char; 4],
    styles: Vec<Style>,
    tags: Vec<char>,
}

/// The parsed bank (rows with a phrase that is not four characters are skipped).
pub fn bank() -> &'static [Phrase] {
    static BANK: OnceLock<Vec<Phrase>> = OnceLock::new();
    BANK.get_or_init(|| {
        BANK_TSV
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split('\t');
                let text = cols.next()?.trim().to_string();
                let chars: Vec<char> = text.chars().collect();
                let chars: [char; 4] = chars.try_into().ok()?;
                let styles = cols.next().unwrap_or("").split(',').filter_map(|s| Style::parse(s.trim())).collect();
                let tags = cols.next().unwrap_or("").chars().filter(|c| crate::request::is_cjk(*c)).collect();
                Some(Phrase { text, chars, styles, tags })
            })
            .collect()
    })
}

/// Every distinct character used by the bank (the decoder may want to avoid or favour them).
pub fn contains_all(p: &Phrase, needed: &[char]) -> bool {
    needed.iter().all(|c| p.chars.contains(c))
}

fn score(p: &Phrase, theme: &[char], style: Style, couplet: &[char]) -> f64 {
    let theme_hits = theme.iter().filter(|c| p.chars.contains(c)).count() as f64;
    let tag_hits = theme.iter().filter(|c| p.tags.contains(c)).count() as f64;
    let style_hit = if p.styles.contains(&style) { 1.0 } else { 0.0 };
    let overlap = p.chars.iter().filter(|c| couplet.contains(c)).count() as f64;
    let tag_overlap = p.tags.iter().filter(|c| couplet.contains(c)).count() as f64;
    // Theme characters dominate, then style, then fit with the couplet; repeating
    // the couplet's own characters too much reads badly, so overlap is capped.
    // A phrase written for exactly this theme (its tags cover every theme character, e.g. 喜结良缘
    // for 新婚) beats one that merely shares a character with it (温故知新).
    let written_for = if !theme.is_empty() && tag_hits as usize == theme.len() { 120.0 } else { 0.0 };
    100.0 * theme_hits + 20.0 * tag_hits + written_for + 30.0 * style_hit + 6.0 * overlap.min(2.0) + 4.0 * tag_overlap.min(2.0)
}

/// The phrase that covers most theme characters (ties: style), used before
/// decoding to know which theme characters the lines must still carry.
pub fn best_cover(theme: &[char], style: Style) -> Option<&'static Phrase> {
    bank().iter().max_by(|a, b| {
        let sa = score(a, theme, style, &[]);
        let sb = score(b, theme, style, &[]);
        sa.total_cmp(&sb).then_with(|| b.text.cmp(&a.text))
    })
}

/// Chooses the 横批 for a finished couplet: it must contain `must_have`
/// (theme characters absent from both lines); among those, the best-scoring
/// phrases, with the RNG choosing among near-ties.
pub fn choose<R: Rng>(must_have: &[char], theme: &[char], style: Style, couplet: &[char], rng: &mut R) -> Option<&'static str> {
    let mut ranked: Vec<(f64, &Phrase)> = bank()
        .iter()
        .filter(|p| contains_all(p, must_have))
        .map(|p| (score(p, theme, style, couplet), p))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.text.cmp(&b.1.text)));
    let top = ranked.first()?.0;
    let near: Vec<&Phrase> = ranked.iter().take_while(|(s, _)| *s >= top - 10.0).take(8).map(|(_, p)| *p).collect();
    let pick = near[rng.random_range(0..near.len())];
    Some(pick.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn bank_is_large_and_well_formed() {
        assert!(bank().len() >= 200, "bank has {} phrases", bank().len());
        for p in bank() {
            assert_eq!(p.text.chars().count(), 4);
            assert!(p.text.chars().all(crate::request::is_cjk), "{}", p.text);
        }
    }

    #[test]
    fn choice_honours_required_characters_and_seed() {
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let a = choose(&['春'], &['春'], Style::Festive, &[], &mut r1).expect("a phrase with 春");
        let b = choose(&['春'], &['春'], Style::Festive, &[], &mut r2).expect("a phrase with 春");
        assert!(a.contains('春'));
        assert_eq!(a, b);
        // A theme with phrases written for it gets one of them, not one that only shares a character.
        let mut r3 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let wedding = choose(&[], &['新', '婚'], Style::Family, &[], &mut r3).expect("a phrase");
        assert!(wedding != "温故知新" && wedding != "万象更新", "{wedding}");
        let best = best_cover(&['龙', '年'], Style::Festive).expect("bank not empty");
        assert!(best.text.contains('龙') || best.text.contains('年'));
    }
}
