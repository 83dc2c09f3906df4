//! `mfa-preload`: the command-line tool. It runs the same engine as the Lambda functions:
//! `check` (no network), `plan` (reads only), `apply`, `export`, `readiness`; `--simulate` runs any of them
//! against an in-process Graph simulator.

mod apply;
mod args;
mod check;
mod connect;
mod doctor;
mod export;
mod input;
mod passes;
mod plan;
mod progress;
mod readiness;
mod report;
mod results;
mod simulate;
mod status;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// Exit code of usage, configuration and I/O errors.
const EXIT_USAGE: u8 = 2;

/// A failure that ends the command with exit code 2: bad arguments, configuration, unreadable
/// or unusable files, and a configuration fault of the app (a missing permission or consent,
/// credentials Entra refuses).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Input(#[from] input::InputError),
    #[error("configuration fault: {0}")]
    Configuration(mfa_preload_core::graph::ConfigFault),
}

impl Failure {
    pub fn io(path: &Path, e: std::io::Error) -> Failure {
        Failure::Usage(format!("{}: {e}", path.display()))
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Check { input, rejects } => check::run(&input, rejects).await,
        Command::Doctor {
            file,
            user,
            features,
            default_country,
            map,
        } => {
            let input = file.map(|file| args::InputArgs {
                file,
                default_country,
                map,
            });
            doctor::run(&cli.graph, input.as_ref(), user.as_deref(), &features).await
        }
        Command::Plan { input, out, run } => plan::run(&cli.graph, &input, out, &run).await,
        Command::Apply {
            input,
            results,
            resume,
            overwrite,
            passes,
            show_passes,
            run,
        } => {
            let opts = apply::Options {
                results,
                resume,
                overwrite,
                passes,
                show_passes,
            };
            apply::run(&cli.graph, &input, opts, &run).await
        }
        Command::Passes {
            file,
            run,
            out,
            overwrite,
        } => {
            let out = out.unwrap_or_else(|| {
                let name = file.rsplit('/').next().unwrap_or("uploaded.csv");
                input::default_output(std::path::Path::new(name), "passes")
            });
            passes::fetch(&file, run.as_deref(), &out, overwrite).await
        }
        Command::Status {
            file,
            job,
            run,
            table,
            results,
            reconcile,
            dlq_url,
            control_queue_url,
            watch,
            interval,
        } => {
            status::run(status::Options {
                file,
                job,
                run,
                table,
                results,
                reconcile,
                dlq_url,
                control_queue_url,
                watch,
                interval: std::time::Duration::from_secs(interval),
            })
            .await
        }
        Command::Readiness(args) => readiness::run(&cli.graph, args).await,
        Command::Export {
            users,
            out,
            map,
            default_country,
            concurrency,
            page_size,
        } => {
            let opts = export::Options {
                users,
                out,
                input: args::InputArgs {
                    file: Default::default(),
                    default_country,
                    map,
                },
                concurrency,
                page_size,
            };
            export::run(&cli.graph, opts).await
        }
    }
}

fn main() -> ExitCode {
    mfa_preload_core::logging::init_cli();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match code {
        Ok(c) => ExitCode::from(c),
        Err(f) => {
            eprintln!("error: {f}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
