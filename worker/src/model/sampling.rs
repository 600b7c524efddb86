//! Choosing one token from a logits row under a mask: temperature, top-k,
//! and a seeded RNG. Greedy when the temperature is zero.

use rand::Rng;

/// Picks among `candidates` (token id, adjusted logit) with temperature and top-k.
/// Returns `None` when there is no candidate.
pub fn sample<R: Rng>(candidates: &mut Vec<(u32, f32)>, temperature: f32, top_k: usize, rng: &mut R) -> Option<u32> {
    if candidates.is_empty() {
        return None;
    }
    let k = top_k.max(1).min(candidates.len());
    if k < candidates.len() {
        candidates.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        candidates.truncate(k);
    }
    // Stable order so a seed gives the same choice whatever select_nth did.
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if temperature <= 0.0 {
        return Some(candidates[0].0);
    }
    let max = candidates[0].1;
    let weights: Vec<f64> = candidates.iter().map(|(_, l)| f64::from((l - max) / temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for ((id, _), w) in candidates.iter().zip(&weights) {
        if x < *w {
            return Some(*id);
        }
        x -= w;
    }
    candidates.last().map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn greedy_takes_the_best_and_top_k_limits_choices() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut c = vec![(1, 0.5), (2, 3.0), (3, 1.0)];
        assert_eq!(sample(&mut c, 0.0, 10, &mut rng), Some(2));
        for _ in 0..50 {
            let mut c = vec![(1, 0.5), (2, 3.0), (3, 1.0), (4, 2.9)];
            let pick = sample(&mut c, 1.0, 2, &mut rng).expect("non-empty");
            assert!(pick == 2 || pick == 4);
        }
        assert_eq!(sample(&mut Vec::new(), 1.0, 3, &mut rng), None);
    }
}
