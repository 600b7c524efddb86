//! The couplet model library: loading the ONNX model and ONNX Runtime,
//! batched incremental decoding with a KV cache, and the constrained decoder
//! that makes every couplet satisfy the five rules by construction.
//!
//! The worker's batcher and the offline `generate`/`bench` commands call
//! [`Generator::generate_batch`]: a batch of validated requests in, one
//! result or error per request out, in order.

mod constraints;
mod error;
mod generator;
mod ranking;
mod runtime;
mod sampling;
mod style_bias;
mod vocab;

pub use error::ModelError;
pub use generator::{GenError, Generator, DEFAULT_POOL, DEFAULT_POOL_IDLE};
pub use runtime::{resolve_model_dir, resolve_ort_dylib, Device, RuntimeOptions};
pub use vocab::{ModelConfig, Vocab};
