//! Command-line and environment configuration (`LEDGER_*`), one typed struct.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ledger",
    version,
    about = "Event-sourced ledger of cloud VM instances"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server on the embedded store.
    Serve(ServeArgs),
    /// Check the hash chain end to end and compare every projection with a rebuild from
    /// the log. Needs the server to be stopped (it holds the store open).
    Verify(VerifyArgs),
    /// Write every stored event to stdout as JSON lines, byte for byte as stored (the
    /// SHA-256 of each line is its hash). Needs the server to be stopped.
    Export(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory holding the ledger file and the admin token.
    #[arg(long, env = "LEDGER_DATA_DIR", default_value = "./ledger-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the bound address is logged).
    #[arg(long, env = "LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Delay before the simulated driver completes a requested transition (0 = at once).
    #[arg(long, env = "LEDGER_DRIVER_DELAY_MS", default_value_t = 500)]
    pub driver_delay_ms: u64,
    /// Fraction (0 to 1) of requested transitions the simulated driver fails into `error`.
    #[arg(long, env = "LEDGER_DRIVER_FAILURE_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub driver_failure_rate: f64,
    /// Writes that may wait for the writer before new ones get 503.
    #[arg(long, env = "LEDGER_QUEUE_CAPACITY", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_capacity: u64,
    /// Most requests committed in one transaction.
    #[arg(long, env = "LEDGER_BATCH_LIMIT", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_limit: u64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "LEDGER_WORKERS")]
    pub workers: Option<usize>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long, env = "LEDGER_DATA_DIR", default_value = "./ledger-data")]
    pub data_dir: PathBuf,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1".into())
    }
}
