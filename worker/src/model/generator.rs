//! Batched generation: prompts → one prefill → incremental steps with the KV
//! cache fed back as ONNX inputs, each step computing logits for the last
//! position only. One session per process, reused for every batch.
//!
//! Each request is decoded as a pool of samples in the same batch (at least
//! its `candidates`, at least the configured pool size — larger when the batch
//! is small, see [`Generator::pool_for`] — twice that for an upper-line
//! request, which decodes only one line); the valid samples are
//! ranked (`ranking`), duplicates dropped, and the best `candidates` returned.
//! Should sampling give too few distinct couplets, further rounds sample
//! more, hotter and from a wider top-k, for just those requests; fewer than
//! asked come back only when the rules leave fewer distinct lines (a lower
//! line whose every position is forced by punctuation, 叠字 or 藏头).

use super::constraints::{ItemState, Phase};
use super::ranking;
use super::runtime::{load_session, RuntimeOptions};
use super::style_bias::StyleBias;
use super::{ModelError, Vocab};
use common::job::{Candidate, CoupletResult};
use common::request::ValidRequest;
use common::rules::{self, CoupletRef};
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;
use std::time::Instant;

/// A per-request failure (the request is well-formed but cannot be served).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    /// The output broke a rule (a bug guard: never expected).
    #[error("generated couplet failed its self-check: {0}")]
    RuleCheck(String),
    /// No 横批 can carry the theme characters the lines left out.
    #[error("the theme cannot be fitted into this couplet")]
    ThemeUnsatisfiable,
}

impl GenError {
    /// Stable type string.
    pub fn kind(&self) -> &'static str {
        match self {
            GenError::RuleCheck(_) => "rule_check_failed",
            GenError::ThemeUnsatisfiable => "theme_unsatisfiable",
        }
    }
}

/// The loaded model, ready to generate batches.
pub struct Generator {
    session: Mutex<Session>,
    vocab: Vocab,
    bias: StyleBias,
    provider: &'static str,
    load_seconds: f64,
    pool: usize,
    pool_idle: usize,
}

/// Default number of samples decoded per request (the best is returned).
pub const DEFAULT_POOL: usize = 3;
/// Default samples per request when the batch is small (see [`Generator::pool_for`]):
/// 0 = off (always `CANDIDATE_POOL`). Opt-in: with 8, the judged evaluation did not
/// improve (MODEL_CARD.md, run `after4`), so the default spends no extra compute.
pub const DEFAULT_POOL_IDLE: usize = 0;
/// Sampling rounds at most (the later ones only for requests short of distinct candidates).
const MAX_ROUNDS: usize = 4;
/// In upper mode the first sample is near-greedy; the others explore this much hotter.
const UPPER_MODE_ALT_TEMPERATURE: f32 = 3.0;

/// A finished, rule-checked sample with its ranking score.
struct Scored {
    couplet: Candidate,
    score: f32,
}

impl Generator {
    /// Loads the runtime, the vocabulary and the session.
    pub fn load(opts: &RuntimeOptions) -> Result<Generator, ModelError> {
        let t0 = Instant::now();
        let vocab = Vocab::load(&opts.model_dir)?;
        let loaded = load_session(opts, &vocab.cfg)?;
        let bias = StyleBias::new(&vocab);
        ranking::warm_up();
        Ok(Generator {
            session: Mutex::new(loaded.session),
            vocab,
            bias,
            provider: loaded.provider,
            load_seconds: t0.elapsed().as_secs_f64(),
            pool: opts.pool.max(1),
            pool_idle: opts.pool_idle.max(opts.pool.max(1)),
        })
    }

    /// Samples decoded per request at least (the pool of a full batch).
    pub fn pool(&self) -> usize {
        self.pool
    }

    /// Samples decoded per theme request in a batch of `n` requests (an upper-line
    /// request decodes twice as many). A small batch (the worker is not busy) spends its
    /// spare capacity on a larger pool (the model's own log-likelihood correlates with
    /// what a reader scores, MODEL_CARD.md); from `pool_idle × pool / n ≤ pool` on, a batch
    /// costs exactly what it costs at the floor, so throughput under load is unchanged.
    pub fn pool_for(&self, n: usize) -> usize {
        pool_size(self.pool, self.pool_idle, n)
    }

    /// `cpu` or `cuda`.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Seconds taken by [`Generator::load`].
    pub fn load_seconds(&self) -> f64 {
        self.load_seconds
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn prompt(&self, r: &ValidRequest) -> Vec<i64> {
        let v = &self.vocab;
        let mut p = vec![v.len_token(r.length)];
        p.extend(r.theme_chars.iter().map(|c| v.id(*c)));
        p.push(v.cfg.sep_id);
        if let Some(u) = &r.upper {
            p.extend(u.chars().map(|c| v.id(c)));
            p.push(v.cfg.sep_id);
        }
        p
    }

    /// Decoding state of sample `k` of round `round` of request `r`. A seeded request
    /// derives one seed per sample, so the whole candidate list reproduces.
    fn state(&self, r: &ValidRequest, required: &[char], k: usize, round: usize) -> ItemState {
        let sample = (round * 64 + k) as u64;
        let seed = match r.seed {
            Some(s) => s.wrapping_add(sample.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => rand::random(),
        };
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let required = required.to_vec();
        // Later rounds only run for requests short of distinct candidates (tightly
        // constrained lines): sample hotter and from a wider top-k.
        let hotter = 1.0 + round as f32;
        let st = match &r.upper {
            Some(u) => {
                let alt = if k == 0 && round == 0 { 1.0 } else { UPPER_MODE_ALT_TEMPERATURE };
                ItemState::upper_mode(u.chars().collect(), r.theme_chars.clone(), required, r.style, rng)
                    .with_temperature_scale(alt * hotter)
            }
            None => ItemState::theme_mode(r.length, r.theme_chars.clone(), required, r.style, rng).with_temperature_scale(hotter),
        };
        st.with_head(r.head).with_top_k_scale(if round == 0 { 1 } else { 4 })
    }

    /// Theme characters the lines must carry: those the best-covering 横批 will not (once per request).
    fn required(r: &ValidRequest) -> Vec<char> {
        let cover = common::hengpi::best_cover(&r.theme_chars, r.style);
        r.theme_chars.iter().copied().filter(|c| cover.is_none_or(|ph| !ph.text.contains(*c))).collect()
    }

    /// Generates each request's ranked couplets. `Err` only for a model failure that
    /// affects the whole batch (worth a retry); per-request problems are in the vector.
    pub fn generate_batch(&self, reqs: &[ValidRequest]) -> Result<Vec<Result<CoupletResult, GenError>>, ModelError> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let required: Vec<Vec<char>> = reqs.iter().map(Self::required).collect();
        let mut found: Vec<Vec<Scored>> = reqs.iter().map(|_| Vec::new()).collect();
        let mut errors: Vec<Option<GenError>> = vec![None; reqs.len()];
        let pool = self.pool_for(reqs.len());
        for round in 0..MAX_ROUNDS {
            let mut items: Vec<(usize, usize)> = Vec::new();
            for (i, r) in reqs.iter().enumerate() {
                let missing = r.candidates.saturating_sub(found[i].len());
                // Answering a given upper line decodes one line, not two: twice the samples
                // cost about what a theme request's pool costs.
                let pool = if r.upper.is_some() { 2 * pool } else { pool };
                let n = if round == 0 { pool.max(r.candidates) } else { 2 * missing };
                items.extend((0..n).map(|k| (i, k)));
            }
            if items.is_empty() {
                break;
            }
            let mut states: Vec<ItemState> = items.iter().map(|&(i, k)| self.state(&reqs[i], &required[i], k, round)).collect();
            let prompts: Vec<Vec<i64>> = items.iter().map(|&(i, _)| self.prompt(&reqs[i])).collect();
            self.decode(&prompts, &mut states)?;
            // Rank before finishing: the 横批 choice and the self-check run only for samples
            // that can still make a request's list (in score order, until it is full).
            let mut order: Vec<(usize, f32)> = states.iter().enumerate().map(|(j, st)| (j, Self::rank(st))).collect();
            order.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (j, score) in order {
                let i = items[j].0;
                let st = &mut states[j];
                if found[i].len() >= reqs[i].candidates || found[i].iter().any(|f| f.couplet.upper.chars().eq(st.upper.iter().copied()) && f.couplet.lower.chars().eq(st.lower.iter().copied())) {
                    continue;
                }
                match self.finish(&reqs[i], st) {
                    Ok(couplet) => found[i].push(Scored { couplet, score }),
                    Err(e) => errors[i] = Some(e),
                }
            }
        }
        Ok(reqs
            .iter()
            .zip(found)
            .zip(errors)
            .map(|((r, mut f), err)| {
                f.sort_by(|a, b| b.score.total_cmp(&a.score));
                f.truncate(r.candidates);
                let candidates: Vec<Candidate> = f.into_iter().map(|s| s.couplet).collect();
                let best = candidates.first().cloned().ok_or_else(|| err.unwrap_or(GenError::ThemeUnsatisfiable))?;
                Ok(CoupletResult { upper: best.upper, lower: best.lower, hengpi: best.hengpi, style: r.style, candidates })
            })
            .collect())
    }

    /// A decoded sample's ranking score (fluency + 对仗; no 横批 needed).
    fn rank(s: &ItemState) -> f32 {
        let upper: String = s.upper.iter().collect();
        let lower: String = s.lower.iter().collect();
        ranking::score(s.logp, s.n_logp, &upper, &lower)
    }

    /// Chooses the 横批 and runs the self-check of one sample.
    fn finish(&self, r: &ValidRequest, s: &mut ItemState) -> Result<Candidate, GenError> {
        let upper: String = s.upper.iter().collect();
        let lower: String = s.lower.iter().collect();
        let in_lines: Vec<char> = s.upper.iter().chain(s.lower.iter()).copied().collect();
        let must_have: Vec<char> = r.theme_chars.iter().copied().filter(|c| !in_lines.contains(c)).collect();
        let hengpi = common::hengpi::choose(&must_have, &r.theme_chars, r.style, &in_lines, s.rng())
            .ok_or(GenError::ThemeUnsatisfiable)?;
        rules::check(CoupletRef { upper: &upper, lower: &lower, hengpi }, &r.theme_chars, r.upper.is_some())
            .map_err(|e| GenError::RuleCheck(e.to_string()))?;
        if let Some(h) = r.head {
            if s.upper.first() != Some(&h[0]) || s.lower.first() != Some(&h[1]) {
                return Err(GenError::RuleCheck("藏头 characters are not at the start of the lines".into()));
            }
        }
        Ok(Candidate { upper, lower, hengpi: hengpi.to_string() })
    }

    fn decode(&self, prompts: &[Vec<i64>], states: &mut [ItemState]) -> Result<(), ModelError> {
        let cfg = &self.vocab.cfg;
        let b = prompts.len();
        let p0 = prompts.iter().map(Vec::len).max().unwrap_or(1);
        let mut ids = Vec::with_capacity(b * p0);
        let mut mask = Vec::with_capacity(b * p0);
        let mut pos = Vec::with_capacity(b * p0);
        let mut next_pos = Vec::with_capacity(b);
        for p in prompts {
            let pad = p0 - p.len();
            ids.extend(std::iter::repeat_n(cfg.pad_id, pad).chain(p.iter().copied()));
            mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1i64, p.len())));
            pos.extend(std::iter::repeat_n(0i64, pad).chain(0..p.len() as i64));
            next_pos.push(p.len() as i64);
        }
        let (nl, nh, dh) = (cfg.n_layer, cfg.n_head, cfg.d_head);
        let empty = || Tensor::<f32>::from_array(([nl, b, nh, 0, dh], Vec::<f32>::new()));
        let mut past_k: DynValue = empty()?.into_dyn();
        let mut past_v: DynValue = empty()?.into_dyn();
        let mut t_len = p0;
        let mut session = self.session.lock().map_err(|_| ModelError::Inference("session lock poisoned".into()))?;
        loop {
            let inputs = ort::inputs![
                "input_ids" => Tensor::from_array(([b, t_len], std::mem::take(&mut ids)))?,
                "position_ids" => Tensor::from_array(([b, t_len], std::mem::take(&mut pos)))?,
                "attention_mask" => Tensor::from_array(([b, mask.len() / b], mask.clone()))?,
                "past_key" => past_k,
                "past_value" => past_v,
            ];
            let mut out = session.run(inputs)?;
            let (shape, logits) = out["logits"].try_extract_tensor::<f32>()?;
            let v = shape.last().copied().unwrap_or(0) as usize;
            if v != self.vocab.len() || logits.len() != b * v {
                return Err(ModelError::Inference(format!("logits shape {shape:?} does not match vocab {}", self.vocab.len())));
            }
            let mut all_done = true;
            let mut new_ids = Vec::with_capacity(b);
            for (i, st) in states.iter_mut().enumerate() {
                let row = &logits[i * v..(i + 1) * v];
                let bias = self.bias.of(st.style);
                new_ids.push(st.step(row, bias, &self.vocab));
                all_done &= st.phase == Phase::Done;
            }
            if all_done {
                return Ok(());
            }
            past_k = out.remove("present_key").ok_or_else(|| ModelError::Inference("no present_key output".into()))?;
            past_v = out.remove("present_value").ok_or_else(|| ModelError::Inference("no present_value output".into()))?;
            drop(out);
            // Rebuild the mask as [B, P+1]: old columns then a 1 for the new token.
            let old_cols = mask.len() / b;
            let mut m = Vec::with_capacity(b * (old_cols + 1));
            for row in mask.chunks(old_cols) {
                m.extend_from_slice(row);
                m.push(1);
            }
            mask = m;
            ids = new_ids;
            pos = next_pos.clone();
            for p in next_pos.iter_mut() {
                *p += 1;
            }
            t_len = 1;
            if old_cols + 1 > cfg.max_positions {
                return Err(ModelError::Inference("sequence longer than the model's position table".into()));
            }
        }
    }
}

/// Samples per theme request in a batch of `n`: `idle × floor / n`, between `floor` and `idle`.
fn pool_size(floor: usize, idle: usize, n: usize) -> usize {
    (idle * floor / n.max(1)).clamp(floor, idle.max(floor))
}

#[cfg(test)]
mod tests {
    use super::pool_size;

    #[test]
    fn small_batches_get_the_idle_pool_and_full_ones_the_floor() {
        let pools: Vec<usize> = [1, 2, 3, 4, 5, 6, 7, 8, 32, 64].iter().map(|&n| pool_size(3, 8, n)).collect();
        assert_eq!(pools, vec![8, 8, 8, 6, 4, 4, 3, 3, 3, 3]);
        // A batch never decodes more samples than a batch of `idle` requests at the floor.
        for n in 1..100 {
            assert!(n * pool_size(3, 8, n) <= 24.max(3 * n), "n={n}");
        }
    }

    #[test]
    fn an_idle_pool_at_or_below_the_floor_turns_it_off() {
        for n in [1, 2, 8] {
            assert_eq!(pool_size(3, 0, n), 3);
            assert_eq!(pool_size(3, 3, n), 3);
            assert_eq!(pool_size(3, 1, n), 3);
            assert_eq!(pool_size(1, 1, n), 1);
        }
    }
}
