//! API key administration (`couplet-api keys create|list|revoke`). A key is
//! shown once at creation; Redis keeps only its SHA-256 (the record's
//! address) and a record with the tenant id, name, limits and webhook signing
//! secret (`whsec_` + base64 of 32 random bytes, from `crate::signing`). An
//! index (tenant id → hash and public fields) serves `list` and `revoke`.
//! Revoking deletes the record, so the key stops working on the next request.

use super::auth::hash_key;
use super::fields::apikey as f;
use super::{Store, StoreError};
use base64::Engine;
use rand::RngCore;
use redis::aio::ConnectionLike;
use std::collections::HashMap;

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

/// The index field holding a key's hash (not shown by `list`).
const INDEX_HASH: &str = "hash";

impl Store {
    /// Creates a key: record and index entry in one MULTI.
    pub async fn create_key<C: ConnectionLike + Send>(&self, con: &mut C, name: &str, rate: f64, burst: u32) -> Result<CreatedKey, StoreError> {
        let id = format!("key_{}", &hex::encode(rand::random::<[u8; 8]>()));
        let key = random_token("pcg_", 32);
        let secret = crate::signing::generate_secret();
        let h = hash_key(&key);
        let created = crate::job::now_ms();
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(
                self.keys.api_key(&h),
                &[
                    (f::ID, id.clone()),
                    (f::NAME, name.to_string()),
                    (f::RATE, rate.to_string()),
                    (f::BURST, burst.to_string()),
                    (f::SECRET, secret.clone()),
                    (f::CREATED_AT, created.to_string()),
                ],
            )
            .hset(
                self.keys.api_key_index(),
                &id,
                serde_json::json!({INDEX_HASH: h, "name": name, "rate": rate, "burst": burst, "created_at": created}).to_string(),
            )
            .query_async(con)
            .await?;
        Ok(CreatedKey { id, name: name.to_string(), key, webhook_secret: secret, rate, burst })
    }

    /// Every key as (tenant id, public record without its hash), by id.
    pub async fn list_keys<C: ConnectionLike + Send>(&self, con: &mut C) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let all: HashMap<String, String> = redis::cmd("HGETALL").arg(self.keys.api_key_index()).query_async(con).await?;
        let mut v: Vec<(String, serde_json::Value)> = all
            .into_iter()
            .map(|(id, rec)| {
                let mut j: serde_json::Value = serde_json::from_str(&rec).unwrap_or_default();
                if let Some(o) = j.as_object_mut() {
                    o.remove(INDEX_HASH);
                }
                (id, j)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// Revokes a key by tenant id; false when unknown.
    pub async fn revoke_key<C: ConnectionLike + Send>(&self, con: &mut C, id: &str) -> Result<bool, StoreError> {
        let rec: Option<String> = redis::cmd("HGET").arg(self.keys.api_key_index()).arg(id).query_async(con).await?;
        let Some(rec) = rec else { return Ok(false) };
        let hash = serde_json::from_str::<serde_json::Value>(&rec)
            .ok()
            .and_then(|j| j.get(INDEX_HASH).and_then(|h| h.as_str()).map(str::to_string))
            .unwrap_or_default();
        let _: () = redis::pipe().atomic().del(self.keys.api_key(&hash)).hdel(self.keys.api_key_index(), id).query_async(con).await?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::store::auth::{Authorized, Credential};
    use crate::store::testing;

    #[tokio::test]
    async fn keys_are_created_listed_and_revoked() {
        let mut t = testing::store("keys").await;
        let k = t.store.create_key(&mut t.con, "acme", 2.5, 7).await.unwrap();
        assert!(k.key.starts_with("pcg_") && k.id.starts_with("key_") && crate::signing::is_standard(&k.webhook_secret));
        let listed = t.store.list_keys(&mut t.con).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, k.id);
        assert_eq!((listed[0].1["name"].as_str(), listed[0].1["burst"].as_u64()), (Some("acme"), Some(7)));
        assert!(listed[0].1.get("hash").is_none(), "list never shows the key's hash");
        assert!(matches!(t.store.authorize(&mut t.con, &Credential::ApiKey(&k.key)).await.unwrap(), Authorized::Allowed(_)));
        assert!(t.store.revoke_key(&mut t.con, &k.id).await.unwrap());
        assert!(!t.store.revoke_key(&mut t.con, &k.id).await.unwrap(), "second revoke finds nothing");
        assert_eq!(t.store.authorize(&mut t.con, &Credential::ApiKey(&k.key)).await.unwrap(), Authorized::Unauthorized);
        assert!(t.store.list_keys(&mut t.con).await.unwrap().is_empty());
        t.cleanup().await;
    }
}
