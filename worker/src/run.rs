//! Wiring of the long-running worker (filled in by the consumer work).

use crate::config::WorkerConfig;
use crate::model::RuntimeOptions;

/// Runs until SIGTERM/SIGINT.
pub async fn run(_config: WorkerConfig, _opts: RuntimeOptions) -> anyhow::Result<()> {
    Ok(())
}
