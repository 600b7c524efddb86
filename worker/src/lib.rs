//! The couplet worker: the model library ([`model`]), the queue consumer that
//! runs it in batches ([`consumer`]), the webhook dispatcher ([`webhooks`]),
//! and offline commands ([`offline`]).

pub mod config;
pub mod consumer;
pub mod model;
pub mod offline;
pub mod queue;
pub mod run;
pub mod webhooks;
