//! `pickleball-executor`: a Ballista executor with pickleball's codecs and Python runtime.

use clap::Parser;
use pickleball_executor::{ExecutorArgs, run_until_signal};

#[derive(Parser)]
#[command(
    version,
    about = "pickleball executor: runs tasks, including Python UDFs"
)]
struct Cli {
    #[command(flatten)]
    args: ExecutorArgs,
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if let Err(e) = pickleball_executor::python::embed::initialize() {
        eprintln!("pickleball-executor: cannot start the embedded Python: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(run_until_signal(&cli.args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pickleball-executor: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
