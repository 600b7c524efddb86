//! Everything the API and the worker must agree on: request and job types,
//! validation, the Redis job protocol (`store`: keys, fields, scripts, typed operations), couplet rules, the 横批 bank, webhook
//! signing and SSRF policy, pixel rendering and metric names; and the two
//! pieces of process plumbing both binaries share (shutdown signal, task
//! supervision).

pub mod cpu_policy;
pub mod eviction;
pub mod hengpi;
pub mod job;
pub mod metrics;
pub mod redis_pool;
pub mod render;
pub mod request;
pub mod rules;
pub mod shutdown;
pub mod signing;
pub mod store;
pub mod ssrf;
pub mod style;
pub mod supervise;
pub mod tones;

pub use style::Style;

