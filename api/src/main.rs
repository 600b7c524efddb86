//! `couplet-api`: parse settings, set up logging, then serve (default) or
//! manage API keys. Everything else lives in the library.

use api::config::{parse_rate, Cli, Command, DlqOp, KeysOp};
use api::dlq;
use clap::Parser;

// mimalloc: per-request allocations were ~6 % of the API's CPU under glibc
// malloc at full submit load (its consolidation and chunk unlinking).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json") {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    // Before the runtime starts: its threads inherit the policy (common::cpu_policy).
    let policy = cli.server.cpu_policy;
    match common::cpu_policy::apply_to_current_thread(policy) {
        Ok(()) => tracing::debug!(%policy, "CPU scheduling policy"),
        Err(e) => tracing::warn!(%policy, error = %e, "CPU_POLICY not applied"),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(real_main(cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn real_main(cli: Cli) -> anyhow::Result<i32> {
    let cfg = cli.server.validate().map_err(|e| anyhow::anyhow!(e))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            common::eviction::check(&cfg.redis_url, cfg.eviction_check).await?;
            api::server::run(cfg, common::shutdown::signal()).await?;
            Ok(0)
        }
        Command::Keys { op } => {
            let store = common::store::Store::new(cfg.key_prefix.clone());
            let client = redis::Client::open(cfg.redis_url.as_str())?;
            let mut con = client.get_multiplexed_async_connection().await?;
            match op {
                KeysOp::Create { name, rate, burst } => {
                    let rate = parse_rate(&rate).map_err(|e| anyhow::anyhow!(e))?;
                    let k = store.create_key(&mut con, &name, rate, burst).await?;
                    println!("{}", serde_json::to_string_pretty(&k)?);
                    eprintln!("Store the key and webhook secret now: they are not shown again.");
                }
                KeysOp::List => {
                    for (id, rec) in store.list_keys(&mut con).await? {
                        println!("{id}\t{rec}");
                    }
                }
                KeysOp::Revoke { id } => {
                    if !store.revoke_key(&mut con, &id).await? {
                        eprintln!("no key with id {id}");
                        return Ok(3);
                    }
                    println!("revoked {id}");
                }
            }
            Ok(0)
        }
        Command::Dlq { op } => {
            let store = common::store::Store::new(cfg.key_prefix.clone());
            let client = redis::Client::open(cfg.redis_url.as_str())?;
            let mut con = client.get_multiplexed_async_connection().await?;
            dlq_command(&mut con, &store, op, cfg.result_ttl_s).await
        }
    }
}

/// Runs one `dlq` operation; exit code 3 when an entry asked for is not there.
async fn dlq_command(con: &mut redis::aio::MultiplexedConnection, store: &common::store::Store, op: DlqOp, ttl_s: u64) -> anyhow::Result<i32> {
    let mut code = 0;
    match op {
        DlqOp::List { limit } => {
            let entries = dlq::list(con, store, limit).await?;
            if entries.is_empty() {
                eprintln!("the dead-letter stream is empty");
            }
            for e in entries {
                println!("{}", e.line());
            }
        }
        DlqOp::Show { id } => match dlq::show(con, store, &id).await? {
            Some(e) => println!("{}", serde_json::to_string_pretty(&e)?),
            None => {
                eprintln!("{id}: not found");
                code = 3;
            }
        },
        DlqOp::Replay { ids } => {
            for id in ids {
                let outcome = dlq::replay(con, store, &id, ttl_s).await?;
                if !outcome.queued() {
                    code = 3;
                }
                println!("{id}: {outcome}");
            }
        }
        DlqOp::Purge { id, older_than } => {
            let n = match older_than {
                Some(age) => dlq::purge_older_than(con, store, dlq::parse_duration(&age)?).await?,
                None => dlq::purge_ids(con, store, &id).await?,
            };
            println!("purged {n} entries");
        }
    }
    Ok(code)
}
