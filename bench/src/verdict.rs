//! Verdicts on measured figures, kept pure so the rules can be tested. The
//! rule that matters most: an open-loop figure is only about the API when
//! the generator kept to its schedule. When the generator's own lag p99
//! reaches the limit (1 ms by default), the latencies measure the generator
//! as much as the API, and no verdict is given either way — not MET (the
//! offered load may not have been what the schedule said) and not MISSED
//! (the API may be fine).

use std::fmt;

/// What an open-loop run must show.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoopTarget {
    /// Accepted submissions per second (at least 99 % of it must be accepted).
    pub rate: f64,
    /// P99 latency limit, ms.
    pub p99_ms: f64,
    /// The generator's lag p99 must stay below this, ms, for any verdict.
    pub max_lag_p99_ms: f64,
}

/// What an open-loop run measured (the inputs of a verdict).
#[derive(Debug, Clone, Copy)]
pub struct OpenLoopFigures {
    /// Accepted per second.
    pub achieved: f64,
    /// Failed requests of any kind.
    pub errors: u64,
    /// P99 latency from the scheduled send time, ms.
    pub p99_ms: f64,
    /// Generator lag p99, ms (NaN when nothing was sent).
    pub lag_p99_ms: f64,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The generator lagged: the run says nothing about the API.
    GeneratorBound {
        /// Its lag p99, ms.
        lag_p99_ms: f64,
        /// The limit, ms.
        limit_ms: f64,
    },
    /// Every condition held.
    Met,
    /// Conditions that failed, in words.
    Missed(Vec<String>),
}

impl Verdict {
    /// True only for [`Verdict::Met`].
    pub fn is_met(&self) -> bool {
        matches!(self, Verdict::Met)
    }

    /// `met`, `missed` or `no_verdict` (for the JSON).
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::GeneratorBound { .. } => "no_verdict",
            Verdict::Met => "met",
            Verdict::Missed(_) => "missed",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::GeneratorBound { lag_p99_ms, limit_ms } => {
                write!(f, "no verdict: generator-bound, lag p99 {lag_p99_ms:.2} ms ≥ {limit_ms} ms")
            }
            Verdict::Met => write!(f, "MET"),
            Verdict::Missed(why) => write!(f, "MISSED ({})", why.join("; ")),
        }
    }
}

/// The verdict on one open-loop run. The generator check comes first: a
/// lagging generator voids the run whatever the other figures say.
pub fn open_loop(t: &OpenLoopTarget, m: &OpenLoopFigures) -> Verdict {
    if m.lag_p99_ms >= t.max_lag_p99_ms {
        return Verdict::GeneratorBound { lag_p99_ms: m.lag_p99_ms, limit_ms: t.max_lag_p99_ms };
    }
    let mut why = Vec::new();
    if m.achieved.is_nan() || m.achieved < 0.99 * t.rate {
        why.push(format!("{:.0}/s accepted < {:.0}/s", m.achieved, t.rate));
    }
    if m.errors > 0 {
        why.push(format!("{} errors", m.errors));
    }
    // NaN (no answer at all) fails too.
    if m.p99_ms.is_nan() || m.p99_ms > t.p99_ms {
        why.push(format!("P99 {:.2} ms > {} ms", m.p99_ms, t.p99_ms));
    }
    if why.is_empty() {
        Verdict::Met
    } else {
        Verdict::Missed(why)
    }
}

/// The verdict on a closed-loop figure: rate at least `min_rate` and no errors.
pub fn closed_loop(min_rate: f64, rate: f64, errors: u64) -> Verdict {
    let mut why = Vec::new();
    if rate.is_nan() || rate < min_rate {
        why.push(format!("{rate:.0}/s < {min_rate:.0}/s"));
    }
    if errors > 0 {
        why.push(format!("{errors} errors"));
    }
    if why.is_empty() {
        Verdict::Met
    } else {
        Verdict::Missed(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: OpenLoopTarget = OpenLoopTarget { rate: 15_000.0, p99_ms: 20.0, max_lag_p99_ms: 1.0 };

    fn figs(achieved: f64, errors: u64, p99_ms: f64, lag_p99_ms: f64) -> OpenLoopFigures {
        OpenLoopFigures { achieved, errors, p99_ms, lag_p99_ms }
    }

    #[test]
    fn a_clean_run_within_target_is_met() {
        assert_eq!(open_loop(&T, &figs(14_998.0, 0, 7.7, 0.3)), Verdict::Met);
        assert_eq!(open_loop(&T, &figs(15_000.0, 0, 20.0, 0.99)), Verdict::Met);
    }

    #[test]
    fn a_lagging_generator_voids_the_run_whatever_else_it_shows() {
        for m in [figs(15_000.0, 0, 5.0, 1.0), figs(9_000.0, 40, 518.0, 518.0), figs(15_000.0, 0, 2.0, 3.2)] {
            let v = open_loop(&T, &m);
            assert!(matches!(v, Verdict::GeneratorBound { .. }), "{v:?}");
            assert!(!v.is_met());
            assert_eq!(v.kind(), "no_verdict");
        }
        assert_eq!(open_loop(&T, &figs(15_000.0, 0, 5.0, 1.234)).to_string(), "no verdict: generator-bound, lag p99 1.23 ms ≥ 1 ms");
    }

    #[test]
    fn misses_name_every_failed_condition() {
        let v = open_loop(&T, &figs(12_000.0, 3, 25.0, 0.2));
        assert_eq!(v.to_string(), "MISSED (12000/s accepted < 15000/s; 3 errors; P99 25.00 ms > 20 ms)");
        assert!(matches!(open_loop(&T, &figs(15_000.0, 0, f64::NAN, 0.2)), Verdict::Missed(_)));
        assert!(matches!(open_loop(&T, &figs(14_800.0, 0, 3.0, 0.2)), Verdict::Missed(_)));
    }

    #[test]
    fn closed_loop_needs_the_rate_and_no_errors() {
        assert!(closed_loop(25_000.0, 26_100.0, 0).is_met());
        assert_eq!(closed_loop(25_000.0, 24_000.0, 2).to_string(), "MISSED (24000/s < 25000/s; 2 errors)");
        assert!(!closed_loop(25_000.0, f64::NAN, 0).is_met());
    }
}
