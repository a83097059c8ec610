//! `pickleball-scheduler`: a Ballista scheduler with pickleball's codecs. Never links Python.

use clap::Parser;
use pickleball_scheduler::{SchedulerArgs, run_until_signal};

#[derive(Parser)]
#[command(
    version,
    about = "pickleball scheduler: plans and schedules jobs; never runs Python"
)]
struct Cli {
    #[command(flatten)]
    args: SchedulerArgs,
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(run_until_signal(&cli.args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pickleball-scheduler: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
