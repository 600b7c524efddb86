//! Everything the API and the worker must agree on: request and job types,
//! validation, Redis keys and scripts, couplet rules, the 横批 bank, webhook
//! signing and SSRF policy, pixel rendering and metric names.

pub mod eviction;
pub mod hengpi;
pub mod job;
pub mod keys;
pub mod metrics;
pub mod redis_pool;
pub mod render;
pub mod request;
pub mod rules;
pub mod scripts;
pub mod shutdown;
pub mod signing;
pub mod ssrf;
pub mod style;
pub mod tones;

pub use style::Style;
