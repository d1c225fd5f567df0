//! The `larder` command.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use larder::codec::Payload;
use larder::{Larder, LarderError};
use serde_json::json;

mod demo;

/// An event-sourced log inside a git repository.
#[derive(Parser)]
#[command(name = "larder", version)]
struct Cli {
    /// Run as if started in this directory (like `git -C`).
    #[arg(short = 'C', global = true, default_value = ".")]
    dir: PathBuf,
    /// Machine-readable output: one JSON object (per line, for listings).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository (or use the existing one) for larder logs.
    Init {
        /// Create a bare repository.
        #[arg(long)]
        bare: bool,
    },
    /// Append events to a log as one batch.
    Append {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// The event kind.
        #[arg(long, default_value = "event")]
        kind: String,
        /// The event's data as JSON.
        #[arg(long, conflicts_with = "stdin", required_unless_present = "stdin")]
        data: Option<String>,
        /// Read one JSON event per line from standard input.
        #[arg(long)]
        stdin: bool,
    },
    /// Print a log's events in the total order.
    Log {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Only events appended after this WAL commit.
        #[arg(long)]
        since: Option<String>,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Check every object of a log; exit 1 and list the bad ones if any.
    Verify {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Show larder end to end in a temporary directory.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                println!("{}", json!({ "error": e.to_string() }));
            } else {
                eprintln!("larder: error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, LarderError> {
    match &cli.command {
        Command::Init { bare } => {
            let larder = if *bare {
                Larder::init_bare(&cli.dir)?
            } else {
                Larder::init(&cli.dir)?
            };
            let dir = larder.repo().git_dir().display().to_string();
            if cli.json {
                println!(
                    "{}",
                    json!({ "git_dir": dir, "actor": larder.actor().as_str() })
                );
            } else {
                println!("larder repository at {dir}, actor {}", larder.actor());
            }
        }
        Command::Append {
            log,
            kind,
            data,
            stdin,
        } => {
            let larder = open(&cli.dir)?;
            let mut payloads = Vec::new();
            let parse = |text: &str, line: usize| -> Result<Payload, LarderError> {
                let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                    LarderError::Codec(larder::codec::CodecError::PayloadEncode(format!(
                        "line {line}: invalid JSON: {e}"
                    )))
                })?;
                Ok(Payload::from_serde(&value)?)
            };
            if *stdin {
                for (i, line) in std::io::stdin().lock().lines().enumerate() {
                    let line = line.map_err(|e| {
                        LarderError::Codec(larder::codec::CodecError::PayloadEncode(e.to_string()))
                    })?;
                    if !line.trim().is_empty() {
                        payloads.push(parse(&line, i + 1)?);
                    }
                }
            } else if let Some(d) = data {
                payloads.push(parse(d, 1)?);
            }
            let batch: Vec<(&str, Payload)> =
                payloads.into_iter().map(|p| (kind.as_str(), p)).collect();
            let commit = larder.log(log)?.append_batch(&batch)?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "commit": commit.to_string(), "count": batch.len() })
                );
            } else {
                println!("appended {} event(s) to {log}: {commit}", batch.len());
            }
        }
        Command::Log { log, since, limit } => {
            let larder = open(&cli.dir)?;
            let log = larder.log(log)?;
            let mut events = match since {
                Some(s) => {
                    let id = larder::git::ObjectId::from_hex(s.as_bytes()).map_err(|_| {
                        LarderError::Codec(larder::codec::CodecError::InvalidHexId {
                            text: s.clone(),
                        })
                    })?;
                    log.wal().read_since(id)?
                }
                None => log.wal().read_all()?,
            };
            larder::crdt::sort_events(&mut events);
            for e in events.iter().take(limit.unwrap_or(usize::MAX)) {
                let data = e
                    .payload()
                    .to_value()
                    .map(|v| serde_json::to_value(v).unwrap_or_default())
                    .unwrap_or_default();
                if cli.json {
                    println!(
                        "{}",
                        json!({ "id": e.id().to_hex(), "actor": e.actor().as_str(), "hlc": e.timestamp().to_string(), "kind": e.kind(), "data": data })
                    );
                } else {
                    println!(
                        "{} {} {} {} {}",
                        e.timestamp(),
                        e.actor(),
                        e.kind(),
                        data,
                        &e.id().to_hex()[..12]
                    );
                }
            }
        }
        Command::Verify { log } => {
            let larder = open(&cli.dir)?;
            let report = larder.log(log)?.wal().verify()?;
            if cli.json {
                let problems: Vec<String> =
                    report.problems.iter().map(ToString::to_string).collect();
                println!(
                    "{}",
                    json!({ "commits": report.commits, "events": report.events, "problems": problems })
                );
            } else {
                println!(
                    "{} commits, {} events verified",
                    report.commits, report.events
                );
                for p in &report.problems {
                    println!("bad: {p}");
                }
            }
            if !report.is_ok() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Demo => demo::run(cli.json)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn open(dir: &std::path::Path) -> Result<Larder, LarderError> {
    Larder::open(dir)
}
