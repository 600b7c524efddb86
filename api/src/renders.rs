//! Bounds on image rendering: at most `MAX_CONCURRENT_RENDERS` renders run at
//! once on the blocking pool (a request finding them all busy waits up to
//! [`RENDER_WAIT`], then gets 503 `overloaded`), and a small in-memory cache
//! of finished images keyed by the ETag input, bounded by entry count and
//! total bytes, so a popular image is drawn once rather than per request.
//!
//! The cache evicts in insertion order (FIFO): images are immutable (the key
//! is a hash of everything that determines them) and the cache is small, so
//! recency tracking would buy little for its bookkeeping.

use crate::error::ApiError;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Longest wait for a free render slot before answering 503.
pub const RENDER_WAIT: Duration = Duration::from_secs(2);

/// A rendered image: bytes and content type.
pub type Image = (Bytes, &'static str);

#[derive(Default)]
struct Cache {
    map: HashMap<String, Image>,
    order: VecDeque<String>,
    bytes: usize,
}

/// The render limiter and cache of one API process.
#[derive(Clone)]
pub struct Renders {
    slots: Arc<Semaphore>,
    cache: Arc<Mutex<Cache>>,
    max_entries: usize,
    max_bytes: usize,
    wait: Duration,
}

impl Renders {
    /// `concurrency` renders at once; a cache of at most `max_entries` images and `max_bytes` bytes (0 entries: no cache).
    pub fn new(concurrency: usize, max_entries: usize, max_bytes: usize) -> Self {
        Renders::with_wait(concurrency, max_entries, max_bytes, RENDER_WAIT)
    }

    fn with_wait(concurrency: usize, max_entries: usize, max_bytes: usize, wait: Duration) -> Self {
        Renders {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            cache: Arc::default(),
            max_entries,
            max_bytes,
            wait,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A poisoned lock only means a panic mid-insert; the map is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, key: &str) -> Option<Image> {
        self.lock().map.get(key).cloned()
    }

    fn store(&self, key: String, img: Image) {
        let size = img.0.len();
        if self.max_entries == 0 || size > self.max_bytes {
            return;
        }
        let mut c = self.lock();
        if c.map.contains_key(&key) {
            return;
        }
        while c.map.len() >= self.max_entries || c.bytes + size > self.max_bytes {
            let Some(old) = c.order.pop_front() else { break };
            if let Some((b, _)) = c.map.remove(&old) {
                c.bytes -= b.len();
            }
        }
        c.bytes += size;
        c.order.push_back(key.clone());
        c.map.insert(key, img);
    }

    /// The image for `key`, from the cache or drawn by `draw` on the blocking pool within the concurrency bound.
    pub async fn get_or_render<F>(&self, key: &str, draw: F) -> Result<Image, ApiError>
    where
        F: FnOnce() -> Result<(Vec<u8>, &'static str), String> + Send + 'static,
    {
        if let Some(img) = self.cached(key) {
            return Ok(img);
        }
        let _permit = match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(ApiError::RenderBusy),
        };
        // Another request may have drawn it while this one waited.
        if let Some(img) = self.cached(key) {
            return Ok(img);
        }
        let (bytes, ctype) = tokio::task::spawn_blocking(draw)
            .await
            .map_err(|_| ApiError::Render("rendering failed".into()))?
            .map_err(ApiError::Render)?;
        let img: Image = (Bytes::from(bytes), ctype);
        self.store(key.to_string(), img.clone());
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(n: usize) -> impl FnOnce() -> Result<(Vec<u8>, &'static str), String> + Send + 'static {
        move || Ok((vec![0u8; n], "image/png"))
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_entries_and_bytes() {
        let r = Renders::new(2, 2, 100);
        for k in ["a", "b", "c"] {
            r.get_or_render(k, draw(10)).await.expect("render");
        }
        assert!(r.cached("a").is_none(), "the oldest entry went when a third came");
        assert!(r.cached("b").is_some() && r.cached("c").is_some());
        r.get_or_render("big", draw(95)).await.expect("render");
        assert!(r.cached("b").is_none() && r.cached("c").is_none(), "bytes bound evicts");
        assert!(r.lock().bytes <= 100);
        r.get_or_render("huge", draw(1000)).await.expect("render");
        assert!(r.cached("huge").is_none(), "an image larger than the whole cache is not kept");
        // A cached image is served without drawing again.
        let again = r.get_or_render("big", || Err("must not draw".to_string())).await.expect("cached");
        assert_eq!(again.0.len(), 95);
    }

    #[tokio::test]
    async fn a_full_render_pool_answers_overloaded_after_a_short_wait() {
        let r = Renders::with_wait(1, 0, 0, Duration::from_millis(100));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let r = r.clone();
            tokio::spawn(async move {
                r.get_or_render("slow", move || {
                    let _ = rx.recv_timeout(Duration::from_secs(5));
                    Ok((vec![1], "image/png"))
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = std::time::Instant::now();
        let e = r.get_or_render("other", draw(1)).await.expect_err("no free slot");
        assert_eq!(e.kind(), "overloaded");
        assert_eq!(e.status().as_u16(), 503);
        assert!(t0.elapsed() >= Duration::from_millis(90), "it waited briefly first");
        tx.send(()).expect("release");
        busy.await.expect("join").expect("the first render finishes");
        assert!(r.get_or_render("other", draw(1)).await.is_ok(), "a freed slot serves again");
    }
}
