//! The constrained decoder of one couplet: which tokens may stand at each
//! position, so that every output satisfies the five rules by construction.
//!
//! - Rule 1: the lower line has the upper line's length; punctuation is copied
//!   to the same positions; 叠字 in the upper line are mirrored in the lower.
//! - Rule 2: the lower line may not use any character of the upper line
//!   (stricter than the rule, whose only exception is mirrored 叠字).
//! - Rule 3: the last position of a generated upper line admits only 仄
//!   characters, of the lower line only 平 characters (tone known).
//! - Rule 4: theme characters the chosen 横批 will not carry are "required";
//!   when the free positions left are no more than the required characters
//!   left, the next free position is forced to the likeliest of them.
//! - Rule 5 is the 横批 bank's job (`common::hengpi`).
//! - 藏头: with a `head`, the first position of each line is forced to its
//!   character and the second never stands in the upper line (rule 2).
//!
//! Each item also sums the model's log-probability of what it wrote, so the
//! candidates of one request can be ranked by fluency (`ranking`).

use super::sampling::sample;
use super::style_bias::{params, StyleParams};
use common::Style;
use super::Vocab;
use common::request::is_line_punct;
use common::tones::{tone, Tone};
use rand_chacha::ChaCha8Rng;

/// Temperature multiplier when the user supplies the upper line.
pub const UPPER_MODE_TEMPERATURE_SCALE: f32 = 0.2;
/// Style-lexicon bias multiplier when the user supplies the upper line.
pub const UPPER_MODE_BIAS_SCALE: f32 = 0.5;

/// Added to a required theme character's score.
const REQUIRED_BONUS: f32 = 3.0;
/// Added to any other theme character's score.
const THEME_BONUS: f32 = 1.0;
/// Tokens this far below the row's best raw score are skipped by the first scan.
const SCAN_CUTOFF: f32 = 14.0;

/// Which line is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Writing the upper line (theme mode).
    Upper,
    /// The separator between the lines.
    Sep,
    /// Writing the lower line.
    Lower,
    /// Finished.
    Done,
}

/// Decoding state of one couplet.
pub struct ItemState {
    /// Current phase.
    pub phase: Phase,
    length: usize,
    /// Upper line so far (or the user's).
    pub upper: Vec<char>,
    /// Lower line so far.
    pub lower: Vec<char>,
    required: Vec<char>,
    theme: Vec<char>,
    params: StyleParams,
    bias_scale: f32,
    /// Style being written.
    pub style: Style,
    rng: ChaCha8Rng,
    scratch: Vec<(u32, f32)>,
    head: Option<[char; 2]>,
    /// Sum of the model's log-probabilities of the written characters.
    pub logp: f32,
    /// Characters counted in `logp`.
    pub n_logp: u32,
}

impl ItemState {
    /// A theme-mode item (writes both lines).
    pub fn theme_mode(length: usize, theme: Vec<char>, required: Vec<char>, style: Style, rng: ChaCha8Rng) -> Self {
        ItemState {
            phase: Phase::Upper,
            length,
            upper: Vec::new(),
            lower: Vec::new(),
            required,
            theme,
            params: params(style),
            bias_scale: 1.0,
            style,
            rng,
            scratch: Vec::new(),
            head: None,
            logp: 0.0,
            n_logp: 0,
        }
    }

    /// Sets the 藏头 characters (validated by `common::request::validate_head`);
    /// they are no longer "required" theme characters, since they are forced.
    pub fn with_head(mut self, head: Option<[char; 2]>) -> Self {
        if let Some(h) = head {
            self.required.retain(|c| !h.contains(c));
        }
        self.head = head;
        self
    }

    /// Multiplies the sampling temperature (alternative candidates explore more).
    pub fn with_temperature_scale(mut self, scale: f32) -> Self {
        self.params.temperature *= scale;
        self
    }

    /// Widens top-k (later rounds looking for more distinct candidates in a tight space).
    pub fn with_top_k_scale(mut self, scale: usize) -> Self {
        self.params.top_k *= scale.max(1);
        self
    }

    /// An upper-line item (writes the lower line only).
    pub fn upper_mode(upper: Vec<char>, theme: Vec<char>, required: Vec<char>, style: Style, rng: ChaCha8Rng) -> Self {
        let required = required.into_iter().filter(|c| !upper.contains(c)).collect();
        // Answering a given upper line is closer to translation than to free
        // writing: decode much more sharply (still seeded, still varying a little).
        let mut p = params(style);
        p.temperature *= UPPER_MODE_TEMPERATURE_SCALE;
        let bias_scale = UPPER_MODE_BIAS_SCALE;
        let length = upper.len();
        ItemState { phase: Phase::Lower, upper, params: p, bias_scale, ..ItemState::theme_mode(length, theme, required, style, rng) }
    }

    /// The item's RNG (the 横批 choice continues the same stream).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Lower-line position `i` is forced by punctuation or a mirrored 叠字.
    fn lower_forced(&self, i: usize) -> Option<char> {
        let u = self.upper[i];
        if is_line_punct(u) {
            return Some(u);
        }
        if i == 0 {
            if let Some(h) = self.head {
                return Some(h[1]);
            }
        }
        (0..i).find(|&j| self.upper[j] == u).map(|j| self.lower[j])
    }

    fn lower_free_nonfinal_from(&self, from: usize) -> usize {
        // Counted only once the upper line is complete. A position mirrored onto
        // the final one (叠字 ending the upper line) carries the final tone rule,
        // so it cannot take a required character of any tone: not counted.
        let end = self.upper.last().copied();
        (from..self.length.saturating_sub(1))
            .filter(|&i| {
                let u = self.upper[i];
                !is_line_punct(u) && !(0..i).any(|j| self.upper[j] == u) && Some(u) != end
            })
            .count()
    }

    /// Free non-final positions still ahead, from the current position on (a lower bound).
    fn slots_left(&self) -> usize {
        let free = self.free_slots_left();
        // A 藏头 character still to come takes a slot that cannot carry a theme character.
        let heads_ahead = match (self.head, self.phase) {
            (Some(_), Phase::Upper) => usize::from(self.upper.is_empty()) + 1,
            (Some(_), Phase::Lower) => usize::from(self.lower.is_empty()),
            _ => 0,
        };
        free.saturating_sub(heads_ahead)
    }

    fn free_slots_left(&self) -> usize {
        let l = self.length;
        match self.phase {
            Phase::Upper => {
                let pos = self.upper.len();
                let upper_left = (l - 1).saturating_sub(pos);
                let repeats = self.upper.iter().enumerate().filter(|(i, c)| self.upper[..*i].contains(c)).count();
                // Every upper position still to come might repeat an earlier one,
                // which would force the mirrored lower position.
                let lower_guaranteed = (l - 1).saturating_sub(repeats + (l - pos));
                upper_left + lower_guaranteed
            }
            Phase::Lower => self.lower_free_nonfinal_from(self.lower.len()),
            _ => 0,
        }
    }

    /// Chooses the next token from this item's logits row; returns the id to feed back.
    pub fn step(&mut self, logits: &[f32], bias: &[f32], vocab: &Vocab) -> i64 {
        match self.phase {
            Phase::Done => vocab.cfg.pad_id,
            Phase::Sep => {
                self.phase = Phase::Lower;
                vocab.cfg.sep_id
            }
            Phase::Upper | Phase::Lower => {
                let c = self.choose(logits, bias, vocab);
                self.logp += vocab.log_prob(logits, c);
                self.n_logp += 1;
                let line_done = match self.phase {
                    Phase::Upper => {
                        self.upper.push(c);
                        self.upper.len() == self.length
                    }
                    _ => {
                        self.lower.push(c);
                        self.lower.len() == self.length
                    }
                };
                self.required.retain(|r| *r != c);
                if line_done {
                    self.phase = if self.phase == Phase::Upper { Phase::Sep } else { Phase::Done };
                }
                vocab.id(c)
            }
        }
    }

    fn choose(&mut self, logits: &[f32], bias: &[f32], vocab: &Vocab) -> char {
        let upper_phase = self.phase == Phase::Upper;
        let pos = if upper_phase { self.upper.len() } else { self.lower.len() };
        let last = pos + 1 == self.length;
        if !upper_phase {
            if let Some(c) = self.lower_forced(pos) {
                return c;
            }
        } else if pos == 0 {
            if let Some(h) = self.head {
                return h[0];
            }
        }
        // The final lower character may be a mirrored copy of an earlier one (叠字
        // at the end of the upper line): then that earlier position carries the tone rule.
        let feeds_last = !upper_phase && {
            let u = self.upper[pos];
            self.upper[self.length - 1] == u && !self.upper[..pos].contains(&u)
        };
        let want_tone = match (upper_phase, last || feeds_last) {
            (true, true) => Some(Tone::Ze),
            (false, true) => Some(Tone::Ping),
            // 平仄相对: at the 2nd, 4th and 6th characters the lower line takes
            // the tone opposite to the upper line's (as every corpus pair does).
            (false, false) if matches!(pos, 1 | 3 | 5) => match tone(self.upper[pos]) {
                Some(Tone::Ping) => Some(Tone::Ze),
                Some(Tone::Ze) => Some(Tone::Ping),
                None => None,
            },
            _ => None,
        };
        // Rule 4 deadline: force a required character into this free, non-final slot.
        if !last && !feeds_last && !self.required.is_empty() && self.required.len() >= self.slots_left() {
            let best = self
                .required
                .iter()
                .copied()
                .filter(|c| self.allowed_char(*c, upper_phase))
                .max_by(|a, b| logit_of(logits, vocab, *a).total_cmp(&logit_of(logits, vocab, *b)));
            if let Some(c) = best {
                return c;
            }
        }
        // Scan only tokens within SCAN_CUTOFF of the row's best raw score; exact whenever
        // top_k of them beat, even after their bonuses, anything below the cutoff could reach.
        // Rarely (heavy masking) that fails and the whole row is scanned.
        let max_raw = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let bonus_max = self.params.lexicon_bias.max(0.0) * self.bias_scale + REQUIRED_BONUS;
        let mut cands = std::mem::take(&mut self.scratch);
        let mut floor = max_raw - SCAN_CUTOFF;
        loop {
            cands.clear();
            self.scan(logits, bias, vocab, want_tone, upper_phase, floor, &mut cands);
            let safe = floor + bonus_max;
            if floor == f32::NEG_INFINITY || cands.iter().filter(|c| c.1 >= safe).count() >= self.params.top_k {
                break;
            }
            floor = f32::NEG_INFINITY;
        }
        let pick = sample(&mut cands, self.params.temperature, self.params.top_k, &mut self.rng);
        self.scratch = cands;
        match pick.and_then(|id| vocab.char_of(id as usize)) {
            Some(c) => c,
            // Unreachable with a real vocabulary (thousands of characters of each tone);
            // kept total so a damaged model cannot panic the worker.
            None => fallback_char(want_tone),
        }
    }

    /// Collects the allowed tokens with raw score ≥ `floor` and their adjusted scores.
    #[allow(clippy::too_many_arguments)]
    fn scan(&self, logits: &[f32], bias: &[f32], vocab: &Vocab, want_tone: Option<Tone>, upper_phase: bool, floor: f32, cands: &mut Vec<(u32, f32)>) {
        for (id, &l) in logits.iter().enumerate() {
            if l < floor || !vocab.is_char[id] {
                continue;
            }
            if let Some(t) = want_tone {
                if vocab.tone[id] != Some(t) {
                    continue;
                }
            }
            // is_char guarantees a character.
            let Some(c) = vocab.char_of(id) else { continue };
            if !self.allowed_char(c, upper_phase) {
                continue;
            }
            let mut adj = l + bias[id] * self.bias_scale;
            if self.required.contains(&c) {
                adj += REQUIRED_BONUS;
            } else if self.theme.contains(&c) {
                adj += THEME_BONUS;
            }
            cands.push((id as u32, adj));
        }
    }

    fn allowed_char(&self, c: char, upper_phase: bool) -> bool {
        if is_line_punct(c) {
            return false;
        }
        if upper_phase {
            // No repeated characters in a generated upper line: the small model
            // over-produces 叠字 (龙龙, 业业) under the style bias, and they read badly.
            // The lower line's 藏头 character may not stand in the upper line (rule 2).
            !self.upper.contains(&c) && self.head.is_none_or(|h| h[1] != c)
        } else {
            !self.upper.contains(&c) && !self.lower.contains(&c)
        }
    }
}

fn logit_of(logits: &[f32], vocab: &Vocab, c: char) -> f32 {
    if vocab.knows(c) {
        logits[vocab.id(c) as usize]
    } else {
        f32::MIN
    }
}

fn fallback_char(tone: Option<Tone>) -> char {
    match tone {
        Some(Tone::Ping) => '春',
        _ => '岁',
    }
}
