//! `bench`: benchmarks that print figures (the third test tier of
//! STYLE.md). `cargo run --release -p bench -- <submit|e2e|batching|soak|all>`
//! spawns the release binaries (build them first with
//! `cargo build --release --bins`) against the real Redis under a random key
//! prefix, prints a table and writes JSON under `target/bench/`.
//!
//! The bench is one binary with no library boundary, so its modules return
//! `anyhow::Result` throughout rather than a typed error enum: every error
//! ends the run with a message, nothing matches on kinds.

mod batching;
mod cli;
mod e2e;
mod load;
mod procstat;
mod redisx;
mod report;
mod soak;
mod stack;
mod submit;

use clap::Parser;
use cli::{BatchingArgs, Cli, Cmd, E2eArgs, SubmitArgs};
use serde_json::json;
use std::sync::OnceLock;

static CLIENT_THREADS: OnceLock<usize> = OnceLock::new();

/// Runtime threads of the load generator (for the printed settings).
pub fn client_threads() -> usize {
    CLIENT_THREADS.get().copied().unwrap_or(1)
}

fn main() {
    let cli = Cli::parse();
    let threads = cli.client_threads.max(1);
    let _ = CLIENT_THREADS.set(threads);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async {
        tokio::select! {
            r = run(cli) => match r {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            },
            // Dropping `run` drops its stacks: children are killed and keys deleted.
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted; cleaning up");
                130
            }
        }
    });
    drop(rt);
    std::process::exit(code);
}

/// The short variants `all` runs, written as a user would type them.
fn all_args() -> Result<(SubmitArgs, E2eArgs, BatchingArgs), clap::Error> {
    Ok((
        SubmitArgs::try_parse_from(["submit", "--step-seconds", "5", "--duration", "10", "--redis-requests", "100000"])?,
        E2eArgs::try_parse_from(["e2e", "--rates", "25,50,100", "--duration", "10", "--drain-seconds", "30"])?,
        BatchingArgs::try_parse_from(["batching", "--jobs", "300", "--deadline-seconds", "90"])?,
    ))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.redis_url.as_str();
    match cli.command {
        Cmd::Submit(a) => {
            submit::run(url, &a).await?;
        }
        Cmd::E2e(a) => {
            e2e::run(url, &a).await?;
        }
        Cmd::Batching(a) => {
            batching::run(url, &a).await?;
        }
        Cmd::Soak(a) => {
            soak::run(url, &a).await?;
        }
        Cmd::All => {
            let (sa, ea, ba) = all_args()?;
            let s = submit::run(url, &sa).await?;
            println!();
            let e = e2e::run(url, &ea).await?;
            println!();
            let b = batching::run(url, &ba).await?;
            report::write_json("all", &json!({"submit": s, "e2e": e, "batching": b}))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_short_variants_of_all_parse() {
        let (s, e, b) = super::all_args().expect("all's argument lists parse");
        assert_eq!((s.step_seconds, s.duration), (5.0, 10.0));
        assert_eq!(e.rates, vec![25.0, 50.0, 100.0]);
        assert_eq!(b.jobs, 300);
        assert_eq!(b.batches, vec![1, 8, 32, 64]);
    }
}
