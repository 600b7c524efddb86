//! `couplet`: the command-line client of Pixel Couplet Gen.
//!
//! It speaks only the public HTTP API (`POST /v1/couplets`, long-polled
//! `GET /v1/jobs/{id}?wait=N`, `GET /v1/jobs/{id}/image.png?candidate=N`), so it works
//! against any deployment and never touches Redis. The request and job types
//! are the ones in `common`, so the CLI and the service agree on the wire
//! shape by construction; validation stays on the server (one definition of a
//! valid request) and its refusals come back as exit code 3.
//!
//! Layout: [`args`] (clap), [`client`] (HTTP and error classification),
//! [`error`] (the one error enum and its exit codes), [`output`] (what goes
//! to stdout), [`spinner`] (stderr progress, only on a terminal). This file
//! only wires them: parse, run one command, turn the outcome into an exit code.
//! Documented in `docs/CLI.md`.

mod args;
mod client;
mod error;
mod output;
mod spinner;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use common::job::JobStatus;
use common::request::CoupletRequest;

use args::{Cli, Command, OutputArgs};
use client::{Client, Job};
use error::CliError;
use spinner::Spinner;

fn main() -> ExitCode {
    // clap prints its own message and exits 2 on usage errors.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("couplet: cannot start the async runtime: {e}");
            return ExitCode::from(error::EXIT_OTHER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("couplet: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let client = Client::new(cli.url.clone(), cli.api_key.clone().filter(|k| !k.trim().is_empty()))?;
    match cli.command {
        Command::Gen(a) => {
            let request = CoupletRequest {
                theme: a.theme,
                style: Some(a.style.as_str().to_string()),
                length: a.length,
                upper: a.upper,
                seed: a.seed,
                callback_url: None,
                candidates: a.ranking.candidates,
                head: a.ranking.head,
            };
            let wait = a.wait || a.output.image.png.is_some();
            submit_and_report(&client, &request, wait, &a.output, output::Shape::Full).await
        }
        Command::Complete(a) => {
            let request = CoupletRequest {
                theme: None,
                style: Some(a.style.as_str().to_string()),
                length: None,
                upper: Some(a.upper),
                seed: a.seed,
                callback_url: None,
                candidates: a.ranking.candidates,
                head: a.ranking.head,
            };
            submit_and_report(&client, &request, true, &a.output, output::Shape::Completion).await
        }
        Command::Status(a) => {
            if a.wait || a.output.image.png.is_some() {
                let started = Instant::now();
                let spinner = Spinner::start(std::io::stderr().is_terminal(), "checking");
                let job = wait_with_spinner(&client, &a.id, a.output.timeout, spinner).await?;
                return report_final(&job, &a.output, &client, started, output::Shape::Full).await;
            }
            let job = client.job(&a.id, None).await?;
            if a.output.json {
                output::print_json(&job.raw);
            } else {
                output::print_status(&job);
            }
            exit_for(&job)
        }
    }
}

/// Long-polls until the job is final, showing its progress on the spinner.
async fn wait_with_spinner(client: &Client, id: &str, timeout_s: u64, mut spinner: Spinner) -> Result<Job, CliError> {
    let job = client
        .wait_final(id, Duration::from_secs(timeout_s), |j| spinner.set(&output::progress(j)))
        .await;
    spinner.finish();
    job
}

/// Submits, optionally waits, prints, saves the image.
async fn submit_and_report(
    client: &Client,
    request: &CoupletRequest,
    wait: bool,
    out: &OutputArgs,
    shape: output::Shape,
) -> Result<(), CliError> {
    let started = Instant::now();
    let mut spinner = Spinner::start(wait && std::io::stderr().is_terminal(), "submitting");
    let submitted = match client.submit(request).await {
        Ok(s) => s,
        Err(e) => {
            spinner.finish();
            return Err(e);
        }
    };
    if !wait {
        spinner.finish();
        if out.json {
            output::print_json(&submitted.raw);
        } else {
            println!("{}", submitted.id);
            eprintln!("queued; follow it with: couplet status {} --wait", submitted.id);
        }
        return Ok(());
    }
    spinner.set("queued");
    let job = wait_with_spinner(client, &submitted.id, out.timeout, spinner).await?;
    report_final(&job, out, client, started, shape).await
}

/// Prints a final job, saves its image, and picks the outcome.
async fn report_final(
    job: &Job,
    out: &OutputArgs,
    client: &Client,
    started: Instant,
    shape: output::Shape,
) -> Result<(), CliError> {
    if out.json {
        output::print_json(&job.raw);
    } else if job.view.status == JobStatus::Succeeded {
        output::print_couplet(&job.view, shape);
        output::print_meta(&job.view, started.elapsed());
    }
    exit_for(job)?;
    let image = &out.image;
    if let Some(path) = &image.png {
        let bytes = client.image_png(&job.view.id, image.scale, image.layout.as_str(), image.candidate).await?;
        save_png(path, &bytes)?;
    }
    Ok(())
}

/// Exit 4 for failed or canceled jobs; a still-running job is not an error.
fn exit_for(job: &Job) -> Result<(), CliError> {
    match job.view.status {
        JobStatus::Failed | JobStatus::Canceled => Err(CliError::JobFailed {
            id: job.view.id.clone(),
            status: output::status_name(job.view.status),
            kind: job.view.error.as_ref().map(|e| e.kind.clone()),
            message: job.view.error.as_ref().map(|e| e.message.clone()),
        }),
        _ => Ok(()),
    }
}

fn save_png(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::Local(format!("cannot write {}: {e}", path.display())))?;
    match output::png_size(bytes) {
        Some((w, h)) => eprintln!("saved {} ({w}×{h} px)", path.display()),
        None => eprintln!("saved {}", path.display()),
    }
    Ok(())
}
