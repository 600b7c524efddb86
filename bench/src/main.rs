//! `bench`: benchmarks that print figures (the third test tier of
//! STYLE.md). `cargo run --release -p bench -- <submit|e2e|batching|soak|all>`
//! spawns the shipped binaries (`target/dist/`: build them first with
//! `cargo build --profile dist -p couplet-api -p couplet-worker`; `--profile release`
//! measures the test build instead) against the real Redis under a random key
//! prefix, prints a table and writes JSON under `target/bench/`.
//!
//! The bench is one binary with no library boundary, so its modules return
//! `anyhow::Result` throughout rather than a typed error enum: every error
//! ends the run with a message, nothing matches on kinds.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

mod batching;
mod ceiling;
mod cli;
mod e2e;
mod generator;
mod http1;
mod load;
mod procstat;
mod redisx;
mod report;
mod soak;
mod stack;
mod submit;
mod verdict;
mod wrk;

use clap::Parser;
use cli::{BatchingArgs, Cli, Cmd, E2eArgs, SubmitArgs};
use serde_json::json;
use std::sync::OnceLock;

static GENERATORS: OnceLock<usize> = OnceLock::new();
static PROFILE: OnceLock<String> = OnceLock::new();

/// Cargo profile of the binaries under test (`--profile`, `dist` by default).
pub fn profile() -> &'static str {
    PROFILE.get().map_or("dist", String::as_str)
}

/// Open-loop generators every load uses (`--generators`, 0 = one per core).
pub fn generators() -> usize {
    GENERATORS.get().copied().filter(|&n| n > 0).unwrap_or_else(load::default_generators)
}

fn main() {
    let cli = Cli::parse();
    let _ = GENERATORS.set(cli.generators);
    let _ = PROFILE.set(cli.profile.clone());
    // The load generators run on their own threads; this runtime only orchestrates.
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
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
    // A load still running on its own threads (Ctrl-C) must not hold the exit:
    // dropping the runtime would wait for its blocking task; the threads die with the process.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}

/// The short variants `all` runs, written as a user would type them.
fn all_args() -> Result<(SubmitArgs, E2eArgs, BatchingArgs), clap::Error> {
    Ok((
        SubmitArgs::try_parse_from(["submit", "--seconds", "10", "--wrk-seconds", "5", "--redis-seconds", "2"])?,
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
        assert_eq!((s.seconds, s.rate, s.wrk_seconds, s.redis_seconds), (10.0, 15_000.0, 5.0, 2.0));
        assert_eq!(e.rates, vec![25.0, 50.0, 100.0]);
        assert_eq!(b.jobs, 300);
        assert_eq!(b.batches, vec![1, 8, 32, 64]);
    }
}
