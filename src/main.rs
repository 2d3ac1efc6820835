//! The `ledger` binary: `ledger serve` runs the server, `ledger verify` checks a stopped
//! ledger.

use clap::Parser;
use instance_ledger::server::{self, config::Cli, config::Command};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => actix_web::rt::System::new().block_on(server::serve(args)),
        Command::Verify(args) => server::verify(args),
        Command::Export(args) => server::export(args),
    }
}
