//! The model's vocabulary and configuration (`vocab.txt`, `config.json`),
//! plus precomputed token masks (tone classes, punctuation, specials) so the
//! decoder does per-token work with table lookups only.

use super::ModelError;
use common::tones::{tone, Tone};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// `config.json` as written by the training package.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    /// Transformer layers.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Head dimension.
    pub d_head: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest sequence the position table covers.
    pub max_positions: usize,
    /// `<pad>`.
    pub pad_id: i64,
    /// `<unk>`.
    pub unk_id: i64,
    /// `<sep>`.
    pub sep_id: i64,
    /// `<eos>`.
    pub eos_id: i64,
    /// `<len_N>` = `len_token_base + N`.
    pub len_token_base: i64,
    /// Largest N with a length token.
    pub max_len_token: i64,
    /// The graph's `logits` output is already log-softmax (exported models since the
    /// ranking decoder); older models give raw logits and are normalised here.
    #[serde(default)]
    pub log_probs: bool,
    /// The graph the CPU runs (`model.int8.onnx` once quantised).
    #[serde(default = "model_onnx")]
    pub onnx_file: String,
    /// The float graph (CUDA runs it; training and verification read it).
    #[serde(default = "model_onnx")]
    pub float_onnx_file: String,
}

fn model_onnx() -> String {
    "model.onnx".into()
}

/// Token ↔ character tables and per-token properties.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// Model configuration.
    pub cfg: ModelConfig,
    tokens: Vec<Option<char>>,
    ids: HashMap<char, i64>,
    /// Token is a CJK character usable inside a line.
    pub is_char: Vec<bool>,
    /// Token's tone, if known.
    pub tone: Vec<Option<Tone>>,
}

impl Vocab {
    /// Loads `vocab.txt` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Vocab, ModelError> {
        let bad = |reason: String| ModelError::Files { dir: dir.to_path_buf(), reason };
        let cfg_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| bad(format!("config.json: {e}")))?;
        let cfg: ModelConfig = serde_json::from_str(&cfg_text).map_err(|e| bad(format!("config.json: {e}")))?;
        let vocab_text = std::fs::read_to_string(dir.join("vocab.txt")).map_err(|e| bad(format!("vocab.txt: {e}")))?;
        let lines: Vec<&str> = vocab_text.lines().collect();
        if lines.len() != cfg.vocab_size {
            return Err(bad(format!("vocab.txt has {} tokens, config.json says {}", lines.len(), cfg.vocab_size)));
        }
        let mut tokens = Vec::with_capacity(lines.len());
        let mut ids = HashMap::new();
        for (i, l) in lines.iter().enumerate() {
            let mut cs = l.chars();
            let single = match (cs.next(), cs.next()) {
                (Some(c), None) if !l.starts_with('<') => Some(c),
                _ => None,
            };
            if let Some(c) = single {
                ids.insert(c, i as i64);
            }
            tokens.push(single);
        }
        let is_char = tokens.iter().map(|t| t.is_some_and(common::request::is_cjk)).collect();
        let tone = tokens.iter().map(|t| t.and_then(tone)).collect();
        Ok(Vocab { cfg, tokens, ids, is_char, tone })
    }

    /// The id of `c`, or `<unk>`.
    pub fn id(&self, c: char) -> i64 {
        self.ids.get(&c).copied().unwrap_or(self.cfg.unk_id)
    }

    /// True when `c` has its own token.
    pub fn knows(&self, c: char) -> bool {
        self.ids.contains_key(&c)
    }

    /// The character of a token.
    pub fn char_of(&self, id: usize) -> Option<char> {
        self.tokens.get(id).copied().flatten()
    }

    /// The `<len_N>` token (clamped to the largest known length).
    pub fn len_token(&self, n: usize) -> i64 {
        self.cfg.len_token_base + (n as i64).min(self.cfg.max_len_token)
    }

    /// The model's log-probability of `c` in this logits row (ranking uses it).
    pub fn log_prob(&self, row: &[f32], c: char) -> f32 {
        let Some(&l) = row.get(self.id(c) as usize) else { return f32::MIN };
        if self.cfg.log_probs {
            return l;
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
        l - max - sum.ln()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when empty (never for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}
