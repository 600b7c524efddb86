//! What the queue looks like, for the API's `/metrics` gauges and `/readyz`:
//! stream length, the group's lag and pending entries, the oldest pending
//! entry's idle time, dead letters, outbox depth and consumers' idle times,
//! in one pipelined round trip.

use super::{Store, StoreError, GROUP};
use redis::aio::ConnectionLike;
use redis::Value;

/// One sample of the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries in the job stream (XLEN).
    pub stream_length: i64,
    /// Entries delivered to a consumer and not acknowledged (`None`: no group).
    pub pending: Option<i64>,
    /// Entries not yet delivered to any consumer (`None`: no group).
    pub lag: Option<i64>,
    /// Idle time of the oldest pending entry, ms (0 when none).
    pub oldest_pending_ms: i64,
    /// Entries in the dead-letter stream.
    pub dead_letters: i64,
    /// Webhook deliveries waiting in the outbox.
    pub outbox: i64,
    /// Idle time of every consumer of the group, ms.
    pub consumer_idle_ms: Vec<i64>,
}

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

fn is_our_group(kv: &[Value]) -> bool {
    matches!(field(kv, "name"), Some(Value::BulkString(n)) if n == GROUP.as_bytes())
}

impl Store {
    /// Samples the queue (see [`QueueStats`]); one pipeline. A missing stream
    /// or group fails the sample (XINFO errors), as before it is created.
    pub async fn queue_stats<C: ConnectionLike + Send>(&self, con: &mut C) -> Result<QueueStats, StoreError> {
        let k = &self.keys;
        let (xlen, groups, pending, dead, outbox, consumers): (i64, Value, Value, i64, i64, Value) = redis::pipe()
            .cmd("XLEN")
            .arg(k.stream())
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(k.stream())
            .cmd("XPENDING")
            .arg(k.stream())
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1)
            .cmd("XLEN")
            .arg(k.dead_letter())
            .cmd("ZCARD")
            .arg(k.outbox())
            .cmd("XINFO")
            .arg("CONSUMERS")
            .arg(k.stream())
            .arg(GROUP)
            .query_async(con)
            .await?;
        let mut s = QueueStats { stream_length: xlen, dead_letters: dead, outbox, ..QueueStats::default() };
        if let Value::Array(gs) = &groups {
            for g in gs {
                let kv = as_pairs(g);
                if is_our_group(&kv) {
                    let pend = int(field(&kv, "pending")).unwrap_or(0);
                    s.pending = Some(pend);
                    s.lag = Some(int(field(&kv, "lag")).unwrap_or((xlen - pend).max(0)));
                }
            }
        }
        // XPENDING extended form: [[id, consumer, idle_ms, deliveries]].
        s.oldest_pending_ms = match &pending {
            Value::Array(rows) => rows.first().and_then(|r| match r {
                Value::Array(cols) => int(cols.get(2)),
                _ => None,
            }),
            _ => None,
        }
        .unwrap_or(0);
        if let Value::Array(cs) = &consumers {
            s.consumer_idle_ms = cs.iter().filter_map(|c| int(field(&as_pairs(c), "idle"))).collect();
        }
        Ok(s)
    }

    /// Whether the consumer group exists (so submissions can be queued): `/readyz`.
    pub async fn group_ready<C: ConnectionLike + Send>(&self, con: &mut C) -> Result<bool, StoreError> {
        let groups: Value = redis::cmd("XINFO").arg("GROUPS").arg(self.keys.stream()).query_async(con).await?;
        Ok(matches!(groups, Value::Array(ref a) if !a.is_empty()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::store::testing;

    #[tokio::test]
    async fn stats_sample_the_stream_the_group_and_the_consumers() {
        let mut t = testing::store("stats").await;
        assert!(t.store.group_ready(&mut t.con).await.is_err(), "no stream yet");
        t.store.ensure_group(&mut t.con).await.unwrap();
        assert!(t.store.group_ready(&mut t.con).await.unwrap());
        let k = t.store.keys().clone();
        for i in 0..3 {
            let _: String = redis::cmd("XADD").arg(k.stream()).arg("*").arg("job").arg(i).query_async(&mut t.con).await.unwrap();
        }
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(super::GROUP)
            .arg("c1")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(k.stream())
            .arg(">")
            .query_async(&mut t.con)
            .await
            .unwrap();
        let _: () = redis::cmd("ZADD").arg(k.outbox()).arg(1).arg("j").query_async(&mut t.con).await.unwrap();
        let s = t.store.queue_stats(&mut t.con).await.unwrap();
        assert_eq!((s.stream_length, s.pending, s.lag, s.dead_letters, s.outbox), (3, Some(1), Some(2), 0, 1));
        assert_eq!(s.consumer_idle_ms.len(), 1);
        assert!(s.oldest_pending_ms >= 0);
        t.cleanup().await;
    }
}
