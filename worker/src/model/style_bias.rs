//! How each style changes decoding: a logit bias on its lexicon characters
//! and its own sampling temperature and top-k. Measurable by construction:
//! the same seed gives different text per style.

use common::Style;

/// Sampling settings of one style.
#[derive(Debug, Clone, Copy)]
pub struct StyleParams {
    /// Softmax temperature (lower = more conservative).
    pub temperature: f32,
    /// Sample among the k best tokens.
    pub top_k: usize,
    /// Added to the logits of the style's lexicon characters.
    pub lexicon_bias: f32,
}

/// The settings for `style`.
pub fn params(style: Style) -> StyleParams {
    match style {
        // Classic is the model's own voice: no lexicon bias, conservative sampling.
        Style::Classic => StyleParams { temperature: 0.7, top_k: 12, lexicon_bias: 0.0 },
        Style::Festive => StyleParams { temperature: 0.9, top_k: 24, lexicon_bias: 2.2 },
        Style::Literary => StyleParams { temperature: 0.85, top_k: 32, lexicon_bias: 1.6 },
        Style::Business => StyleParams { temperature: 0.8, top_k: 20, lexicon_bias: 2.2 },
        Style::Family => StyleParams { temperature: 0.85, top_k: 20, lexicon_bias: 2.0 },
    }
}

/// Per-style bias vectors over the vocabulary, built once per model.
#[derive(Debug, Clone)]
pub struct StyleBias {
    per_style: Vec<Vec<f32>>,
}

impl StyleBias {
    /// Builds the bias tables for `vocab`.
    pub fn new(vocab: &super::Vocab) -> Self {
        let per_style = Style::ALL
            .iter()
            .map(|s| {
                let mut b = vec![0.0f32; vocab.len()];
                let p = params(*s);
                for c in s.lexicon().chars() {
                    if vocab.knows(c) {
                        b[vocab.id(c) as usize] = p.lexicon_bias;
                    }
                }
                b
            })
            .collect();
        StyleBias { per_style }
    }

    /// Bias vector of `style`.
    pub fn of(&self, style: Style) -> &[f32] {
        let i = Style::ALL.iter().position(|s| *s == style).unwrap_or(0);
        &self.per_style[i]
    }
}
