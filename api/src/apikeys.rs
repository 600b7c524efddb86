//! API key administration (`couplet-api keys create|list|revoke`). A key is
//! shown once at creation; Redis keeps only its SHA-256 (the lookup key) and
//! a record with the tenant id, name, limits and webhook signing secret
//! (`whsec_` + base64 of 32 random bytes, from `common::signing`).
//! Revoking deletes the record, so the key stops working on the next request.

use crate::auth::hash_key;
use base64::Engine;
use common::keys::Keys;
use rand::RngCore;

fn random_token(prefix: &str, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// A freshly created key (the only time the key and secret are visible).
#[derive(Debug, serde::Serialize)]
pub struct CreatedKey {
    /// Tenant id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The API key.
    pub key: String,
    /// Webhook signing secret.
    pub webhook_secret: String,
    /// Requests per second.
    pub rate: f64,
    /// Burst.
    pub burst: u32,
}

/// Creates a key.
pub async fn create<C: redis::aio::ConnectionLike + Send>(con: &mut C, keys: &Keys, name: &str, rate: f64, burst: u32) -> redis::RedisResult<CreatedKey> {
    let id = format!("key_{}", &hex::encode(rand::random::<[u8; 8]>()));
    let key = random_token("pcg_", 32);
    let secret = common::signing::generate_secret();
    let h = hash_key(&key);
    let created = common::job::now_ms();
    let _: () = redis::pipe()
        .atomic()
        .hset_multiple(
            keys.api_key(&h),
            &[
                ("id", id.clone()),
                ("name", name.to_string()),
                ("rate", rate.to_string()),
                ("burst", burst.to_string()),
                ("secret", secret.clone()),
                ("created_at", created.to_string()),
            ],
        )
        .hset(
            keys.api_key_index(),
            &id,
            serde_json::json!({"hash": h, "name": name, "rate": rate, "burst": burst, "created_at": created}).to_string(),
        )
        .query_async(con)
        .await?;
    Ok(CreatedKey { id, name: name.to_string(), key, webhook_secret: secret, rate, burst })
}

/// Lists keys as (id, record JSON without hash).
pub async fn list<C: redis::aio::ConnectionLike + Send>(con: &mut C, keys: &Keys) -> redis::RedisResult<Vec<(String, serde_json::Value)>> {
    let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL").arg(keys.api_key_index()).query_async(con).await?;
    let mut v: Vec<(String, serde_json::Value)> = all
        .into_iter()
        .map(|(id, rec)| {
            let mut j: serde_json::Value = serde_json::from_str(&rec).unwrap_or_default();
            if let Some(o) = j.as_object_mut() {
                o.remove("hash");
            }
            (id, j)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Revokes a key by id; false when unknown.
pub async fn revoke<C: redis::aio::ConnectionLike + Send>(con: &mut C, keys: &Keys, id: &str) -> redis::RedisResult<bool> {
    let rec: Option<String> = redis::cmd("HGET").arg(keys.api_key_index()).arg(id).query_async(con).await?;
    let Some(rec) = rec else { return Ok(false) };
    let hash = serde_json::from_str::<serde_json::Value>(&rec)
        .ok()
        .and_then(|j| j.get("hash").and_then(|h| h.as_str()).map(str::to_string))
        .unwrap_or_default();
    let _: () = redis::pipe().atomic().del(keys.api_key(&hash)).hdel(keys.api_key_index(), id).query_async(con).await?;
    Ok(true)
}
