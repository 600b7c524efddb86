//! The couplet worker: the model library ([`model`]), the queue consumer that
//! runs it in batches ([`consumer`]) and fails jobs whose queue entry vanished
//! ([`lost`]), the webhook dispatcher ([`webhooks`]),
//! and offline commands ([`offline`]).

pub mod config;
pub mod consumer;
pub mod lost;
pub mod model;
pub mod offline;
pub mod queue;
pub mod run;
pub mod webhooks;
