//! `couplet-worker`: parse settings, set up logging, then run the consumer
//! (default) or an offline command. Everything else lives in the library.

use clap::Parser;
use worker::config::{Cli, Command};
use worker::model::{resolve_model_dir, resolve_ort_dylib, Generator, RuntimeOptions};

fn main() {
    let cli = Cli::parse();
    let json_logs = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,ort=warn".into());
    if json_logs {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let code = match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn real_main(cli: Cli) -> anyhow::Result<i32> {
    let opts = RuntimeOptions {
        model_dir: resolve_model_dir(cli.model.model_dir.as_deref()),
        ort_dylib: resolve_ort_dylib(cli.model.ort_dylib_path.as_deref()),
        device: cli.model.device,
        intra_threads: cli.model.intra_threads,
        pool: cli.model.candidate_pool,
        pool_idle: cli.model.candidate_pool_idle,
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Generate(args) => {
            let gen = Generator::load(&opts)?;
            worker::offline::generate(&gen, &args)
        }
        Command::Bench(args) => {
            let gen = Generator::load(&opts)?;
            worker::offline::bench(&gen, &args)
        }
        Command::Run => {
            let config = cli.run.validate().map_err(|e| anyhow::anyhow!(e))?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let outcome = rt.block_on(worker::run::run(config, opts, common::shutdown::signal()));
            // Never wait for work the drain deadline abandoned (an inference call on a
            // blocking thread): its entries are reclaimed by another worker.
            rt.shutdown_background();
            outcome?;
            Ok(0)
        }
    }
}
