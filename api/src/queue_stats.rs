//! Queue gauges sampled from Redis when Prometheus scrapes the API: stream
//! length, group lag and pending, oldest pending age, dead letters, live
//! consumers and webhook outbox depth — one pipelined round trip, bounded by
//! a short timeout so a slow Redis cannot stall the scrape.

use crate::state::AppState;
use common::keys::GROUP;
use redis::Value;
use std::time::Duration;

fn field<'a>(kv: &'a [Value], name: &str) -> Option<&'a Value> {
    kv.chunks(2).find_map(|p| match (&p[0], p.get(1)) {
        (Value::BulkString(k), Some(v)) if k == name.as_bytes() => Some(v),
        (Value::SimpleString(k), Some(v)) if k == name => Some(v),
        _ => None,
    })
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn as_pairs(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Map(m) => m.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        _ => Vec::new(),
    }
}

/// Refreshes the queue gauges; errors leave the previous values.
pub async fn sample(state: &AppState, consumer_alive: Duration) {
    let run = async {
        let k = &state.keys;
        let mut c = state.conn().await.ok()?;
        let (xlen, groups, pending, dead, outbox, consumers): (i64, Value, Value, i64, i64, Value) = redis::pipe()
            .cmd("XLEN").arg(k.stream())
            .cmd("XINFO").arg("GROUPS").arg(k.stream())
            .cmd("XPENDING").arg(k.stream()).arg(GROUP).arg("-").arg("+").arg(1)
            .cmd("XLEN").arg(k.dead_letter())
            .cmd("ZCARD").arg(k.outbox())
            .cmd("XINFO").arg("CONSUMERS").arg(k.stream()).arg(GROUP)
            .query_async(&mut *c)
            .await
            .ok()?;
        Some((xlen, groups, pending, dead, outbox, consumers))
    };
    let q = &state.queue_metrics;
    let Ok(Some((xlen, groups, pending, dead, outbox, consumers))) = tokio::time::timeout(Duration::from_millis(500), run).await else {
        return;
    };
    q.stream_length.set(xlen);
    q.dead_letter_length.set(dead);
    q.outbox_depth.set(outbox);
    if let Value::Array(gs) = &groups {
        for g in gs {
            let kv = as_pairs(g);
            let is_ours = matches!(field(&kv, "name"), Some(Value::BulkString(n)) if n == GROUP.as_bytes());
            if is_ours {
                let pend = int(field(&kv, "pending")).unwrap_or(0);
                q.pending.set(pend);
                q.lag.set(int(field(&kv, "lag")).unwrap_or((xlen - pend).max(0)));
            }
        }
    }
    // XPENDING extended form: [[id, consumer, idle_ms, deliveries]].
    let oldest = match &pending {
        Value::Array(rows) => rows.first().and_then(|r| match r {
            Value::Array(cols) => int(cols.get(2)),
            _ => None,
        }),
        _ => None,
    };
    q.oldest_pending_age.set(oldest.unwrap_or(0) as f64 / 1000.0);
    if let Value::Array(cs) = &consumers {
        let alive = cs
            .iter()
            .filter(|c| int(field(&as_pairs(c), "idle")).is_some_and(|ms| (ms as u128) < consumer_alive.as_millis()))
            .count();
        q.consumers.set(alive as i64);
    }
}
