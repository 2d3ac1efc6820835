//! The `ledger` binary: `ledger serve` runs the server; `ledger verify` and `ledger export`
//! work on a stopped ledger, as shorthands for `ledgerctl`'s (the same `ops` code).

use std::io::IsTerminal;

use instance_ledger::server::{
    self,
    config::{self, Command, LogFormat},
};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = match config::parse() {
        Ok(cli) => cli,
        // Help and version print to stdout and exit 0; invalid flags exit 2.
        Err(config::ConfigError::Arguments(e)) => e.exit(),
        Err(e @ config::ConfigError::File(_)) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A log that cannot be written (a full disk) is dropped: tracing's own report of that
    // failure is an eprintln!, which panics on the same stderr and would take down
    // whichever thread logged (the writer, say).
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .log_internal_errors(false)
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .log_internal_errors(false)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    match cli.command {
        Command::Serve(args) => actix_web::rt::System::new().block_on(server::serve(args)),
        Command::Verify(args) => server::verify(args),
        Command::Export(args) => server::export(args),
    }
}
