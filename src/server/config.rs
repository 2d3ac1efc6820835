//! Configuration: flags, their `LEDGER_*` environment variables and an optional TOML file,
//! folded into one typed struct at start-up.

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
    /// Log format: `text` (human, coloured on a terminal) or `json` (one object per line).
    /// Filter with RUST_LOG, e.g. `RUST_LOG=info,instance_ledger=debug`.
    #[arg(long, global = true, env = "LEDGER_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Redb,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (on the embedded store by default, or on PostgreSQL).
    Serve(ServeArgs),
    /// Check the hash chain end to end and compare every projection with a rebuild from
    /// the log. On redb it needs the server to be stopped (the server holds the file).
    Verify(VerifyArgs),
    /// Write every stored event to stdout as JSON lines, byte for byte as stored (the
    /// SHA-256 of each line is its hash). On redb it needs the server to be stopped.
    Export(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys as the flags, with `_` for `-`, e.g.
    /// `listen = "0.0.0.0:8080"`). Flags beat environment variables, which beat the file.
    #[arg(long, env = "LEDGER_CONFIG")]
    pub config: Option<PathBuf>,
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
    /// On PostgreSQL: how often this node looks for pending transitions that no
    /// node is carrying out (e.g. their node died) and claims them for its driver.
    #[arg(long, env = "LEDGER_DRIVER_SWEEP_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub driver_sweep_secs: u64,
    /// Writes that may wait for the writer before new ones get 503.
    #[arg(long, env = "LEDGER_QUEUE_CAPACITY", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_capacity: u64,
    /// Most requests committed in one transaction.
    #[arg(long, env = "LEDGER_BATCH_LIMIT", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_limit: u64,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "LEDGER_WORKERS")]
    pub workers: Option<usize>,
    /// Where the ledger lives: `redb` (an embedded file in the data directory) or
    /// `postgres` (shared by several nodes, at the URL given below).
    #[arg(long, env = "LEDGER_BACKEND", default_value = "redb")]
    pub backend: Backend,
    /// PostgreSQL connection URL for `--backend postgres`, e.g.
    /// `postgres://ledger@db.internal:5432/ledger`. Migrations are applied at start-up.
    #[arg(long, env = "LEDGER_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    /// How long start-up keeps retrying an unreachable PostgreSQL before it gives up.
    #[arg(long, env = "LEDGER_POSTGRES_WAIT_SECS", default_value_t = 30)]
    pub postgres_wait_secs: u64,
    /// The embedded store's page cache in MiB. As-of reads over a long log stay fast while
    /// the history pages they touch are cached; size it to the memory you can spare.
    #[arg(long, env = "LEDGER_CACHE_MB", default_value_t = crate::store::redb::DEFAULT_CACHE_MB, value_parser = clap::value_parser!(u64).range(16..))]
    pub cache_mb: u64,
    /// How many KiB of batches the embedded store's journal holds before a batch commits
    /// the file durably (it also does every second, and when idle). More: fewer file
    /// commits, each a longer pause for the writer; less: the reverse. 0: every batch
    /// commits the file.
    #[arg(long, env = "LEDGER_JOURNAL_KIB", default_value_t = crate::limits::JOURNAL_CHECKPOINT_BYTES >> 10)]
    pub journal_kib: u64,
    /// How long the Wakame dialect keeps listing an account's terminated instances (its
    /// `recent_terminated_instance_period`).
    #[arg(long, env = "LEDGER_WAKAME_TERMINATED_SECS", default_value_t = 900)]
    pub wakame_terminated_secs: u64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long, env = "LEDGER_DATA_DIR", default_value = "./ledger-data")]
    pub data_dir: PathBuf,
    /// `redb` (the file in the data directory) or `postgres` (at --postgres-url; works
    /// while nodes run: `verify` holds appends back until it is done).
    #[arg(long, env = "LEDGER_BACKEND", default_value = "redb")]
    pub backend: Backend,
    #[arg(long, env = "LEDGER_POSTGRES_URL")]
    pub postgres_url: Option<String>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1".into())
    }
}

/// Parses the command line, then folds in the `serve` configuration file: each file key
/// becomes its flag unless the flag was given or its environment variable is set. Unknown
/// keys and invalid values fail naming the setting and the file.
pub fn parse() -> Result<Cli, ConfigError> {
    parse_from(std::env::args_os().collect())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or environment variable is invalid (or help/version was asked for).
    #[error(transparent)]
    Arguments(#[from] clap::Error),
    /// The configuration file is unreadable or holds an invalid setting.
    #[error("{0}")]
    File(String),
}

pub fn parse_from(args: Vec<std::ffi::OsString>) -> Result<Cli, ConfigError> {
    use clap::CommandFactory;
    let cli = Cli::try_parse_from(&args)?;
    let Command::Serve(serve) = &cli.command else {
        return Ok(cli);
    };
    let Some(path) = serve.config.clone() else {
        return Ok(cli);
    };
    let shown = path.display().to_string();
    let file_error = ConfigError::File;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| file_error(format!("cannot read config file {shown}: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| file_error(format!("config file {shown} is not valid TOML: {e}")))?;
    let command = Cli::command();
    let serve_cmd = command
        .find_subcommand("serve")
        .ok_or_else(|| file_error("the serve command is missing".into()))?;
    let given: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().to_string())
        .collect();
    let mut extended = args.clone();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = serve_cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| file_error(format!("config file {shown}: unknown setting `{key}`")))?;
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(file_error(format!(
                    "config file {shown}: setting `{key}` must be a string, number or boolean, not {}",
                    other.type_str()
                )));
            }
        };
        let flag = format!("--{long}");
        let on_command_line = given
            .iter()
            .any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
        let from_env = arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some());
        if !on_command_line && !from_env {
            extended.push(format!("{flag}={value}").into());
        }
    }
    Cli::try_parse_from(&extended).map_err(|e| {
        let rendered = e.render().to_string();
        let message = rendered.trim_start_matches("error: ").trim_end();
        file_error(format!("in config file {shown}: {message}"))
    })
}
