//! The five couplet styles. One enum serves the request schema, the decoder's
//! vocabulary bias and sampling settings, the pixel palettes and the metric
//! label, so a style name can never mean different things in different places.

use serde::{Deserialize, Serialize};

/// A couplet style requested by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Traditional red-and-gold couplet, balanced vocabulary (the default).
    #[default]
    Classic,
    /// Loud, joyful New Year wishes.
    Festive,
    /// Scholarly, ink-and-landscape imagery.
    Literary,
    /// Shop openings and prosperity.
    Business,
    /// Home, harmony, parents and children.
    Family,
}

impl Style {
    /// Every style, in a stable order.
    pub const ALL: [Style; 5] = [
        Style::Classic,
        Style::Festive,
        Style::Literary,
        Style::Business,
        Style::Family,
    ];

    /// The wire name, also used as the metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Classic => "classic",
            Style::Festive => "festive",
            Style::Literary => "literary",
            Style::Business => "business",
            Style::Family => "family",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Style> {
        Style::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Style {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

static LEXICON_TSV: &str = include_str!("../data/style_lexicon.tsv");

impl Style {
    /// Characters typical of this style (`common/data/style_lexicon.tsv`);
    /// the decoder raises their logits so each style reads differently.
    pub fn lexicon(self) -> &'static str {
        LEXICON_TSV
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once('\t'))
            .find(|(name, _)| name.trim() == self.as_str())
            .map(|(_, chars)| chars.trim())
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_has_a_lexicon_and_round_trips() {
        for s in Style::ALL {
            assert!(s.lexicon().chars().count() >= 50, "{s}");
            assert_eq!(Style::parse(s.as_str()), Some(s));
        }
    }
}
