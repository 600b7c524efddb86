//! Queue gauges sampled from Redis when Prometheus scrapes the API
//! (`Store::queue_stats`: stream length, group lag and pending, oldest pending
//! age, dead letters, live consumers and webhook outbox depth in one
//! pipelined round trip), bounded by a short timeout so a slow Redis cannot
//! stall the scrape.

use crate::state::AppState;
use std::time::Duration;

/// Refreshes the queue gauges; errors leave the previous values.
pub async fn sample(state: &AppState, consumer_alive: Duration) {
    let run = async {
        let mut c = state.conn().await.ok()?;
        state.store.queue_stats(&mut c).await.ok()
    };
    let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(500), run).await else {
        return;
    };
    let q = &state.queue_metrics;
    q.stream_length.set(s.stream_length);
    q.dead_letter_length.set(s.dead_letters);
    q.outbox_depth.set(s.outbox);
    if let (Some(pending), Some(lag)) = (s.pending, s.lag) {
        q.pending.set(pending);
        q.lag.set(lag);
    }
    q.oldest_pending_age.set(s.oldest_pending_ms as f64 / 1000.0);
    let alive = s.consumer_idle_ms.iter().filter(|&&ms| ms >= 0 && (ms as u128) < consumer_alive.as_millis()).count();
    q.consumers.set(alive as i64);
}
