//! The couplet API: warp routes over a Redis stream. `run` serves until a
//! shutdown signal; `main.rs` only parses settings and sets up logging.

pub mod auth;
pub mod auth_failures;
pub mod body;
pub mod deadline_io;
pub mod config;
pub mod dlq;
pub mod error;
pub mod handlers;
pub mod queue_stats;
pub mod remote;
pub mod renders;
pub mod routes;
pub mod server;
pub mod state;
pub mod waiters;
