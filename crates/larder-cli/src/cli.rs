//! The command line: every command, argument and help text (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// An event-sourced log inside a git repository.
#[derive(Parser)]
#[command(name = "larder", version)]
pub struct Cli {
    /// Run as if started in this directory (like `git -C`; given several
    /// times, each is relative to the one before).
    #[arg(short = 'C', global = true, value_name = "DIR", action = clap::ArgAction::Append)]
    pub dirs: Vec<PathBuf>,
    /// Machine-readable output: one JSON object (per line, for listings).
    #[arg(long, global = true)]
    pub json: bool,
    /// Act as this actor id (else LARDER_ACTOR, git config larder.actor,
    /// or the replica's own id under the git dir).
    #[arg(long, global = true, value_name = "ID")]
    pub actor: Option<String>,
    /// Flush every write to disk before reporting it done (survives a
    /// power loss; also `git config larder.fsync true`).
    #[arg(long, global = true)]
    pub fsync: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// The event's data as JSON (integers must fit in 64 bits; keys
        /// must be unique).
        #[arg(
            long,
            conflicts_with = "stdin",
            required_unless_present = "stdin",
            allow_hyphen_values = true
        )]
        data: Option<String>,
        /// Read one JSON event per line from standard input.
        #[arg(long)]
        stdin: bool,
    },
    /// Import a history: one JSON object per line with time (RFC 3339 or
    /// ms), author, kind, data and an optional stable key; events keep
    /// their time and author, and a re-run adds nothing.
    Import {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// The JSON-lines file (`-` or none: standard input).
        #[arg(value_name = "FILE")]
        file: Option<String>,
    },
    /// Stream a log's events as they land, one line each, until
    /// interrupted (JSON lines with --json, each with a resume position).
    Watch {
        /// The log's name.
        #[arg(
            value_name = "LOG",
            required_unless_present = "log",
            conflicts_with = "log"
        )]
        name: Option<String>,
        /// The log's name (same as the positional LOG).
        #[arg(long, value_name = "LOG")]
        log: Option<String>,
        /// Resume from a position an earlier watch printed (`start`: the
        /// log's beginning); without it, only new events.
        #[arg(long, value_name = "POSITION")]
        from: Option<String>,
        /// Pull from REMOTE every --every, so other replicas' events arrive.
        #[arg(long, value_name = "REMOTE")]
        remote: Option<String>,
        /// How often to pull with --remote.
        #[arg(long, default_value = "10s", value_parser = parse_duration, requires = "remote")]
        every: u64,
        /// Stop after N events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Merge log FROM into log INTO in this repository (branch-aware logs:
    /// `issues@feature` into `issues@main`).
    MergeLog {
        /// The log merged from (full name).
        from: String,
        /// The log merged into (full name).
        into: String,
    },
    /// Git hooks that keep branch-aware logs with their branches.
    Hooks {
        #[command(subcommand)]
        action: HooksAction,
    },
    /// Print a log's events, newest first (like `git log`).
    #[command(
        after_help = "REV is a commit id (abbreviated or full) or a revspec such as \
refs/larder/issues/wal~3; DATE is YYYY-MM-DD (midnight UTC) or RFC 3339. \
The global --actor filters events by actor here: reading writes nothing."
    )]
    Log {
        /// The log's name.
        #[arg(
            value_name = "LOG",
            required_unless_present = "log",
            conflicts_with = "log"
        )]
        name: Option<String>,
        /// The log's name (same as the positional LOG).
        #[arg(long, value_name = "LOG")]
        log: Option<String>,
        /// Only events after REV (commits not in its history), or at or
        /// after DATE.
        #[arg(long, value_name = "REV|DATE")]
        since: Option<String>,
        /// Only events up to REV (commits in its history), or at or
        /// before DATE.
        #[arg(long, value_name = "REV|DATE")]
        until: Option<String>,
        /// The log as of REV or DATE: like --until, but a point before the
        /// log began (or a commit not in it) is an error.
        #[arg(long, value_name = "REV|DATE", conflicts_with = "until")]
        at: Option<String>,
        /// Only events of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many events (the newest, or the oldest with --reverse).
        #[arg(short = 'n', long, visible_alias = "max-count", value_name = "N")]
        limit: Option<usize>,
        /// Oldest first.
        #[arg(long)]
        reverse: bool,
    },
    /// Check every object of a log; exit 1 and list the bad ones if any.
    Verify {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Pull from the remote, merge, and push (the default remote is `origin`).
    Sync {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Remote name from git config, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Fetch, verify and merge every replica's head.
    Pull {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Remote name from git config, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Publish this replica's head.
    Push {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Remote name from git config, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Create, list, show or garbage-collect snapshots.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// A log's encryption key: create, export, import (docs/encryption.md).
    Crypt {
        #[command(subcommand)]
        action: CryptAction,
    },
    /// Lease locks with fencing tokens.
    Lock {
        #[command(subcommand)]
        action: LockAction,
    },
    /// A replicated key-value store over one log (docs/kv.md).
    Kv {
        /// The log holding the store.
        #[arg(long, global = true, default_value = "kv", value_name = "NAME")]
        log: String,
        /// Pull from REMOTE before reading, push to it after writing
        /// (eventual); the authority with --linearizable.
        #[arg(long, global = true, value_name = "REMOTE")]
        remote: Option<String>,
        /// Linearizable mode: every command goes through REMOTE as the
        /// authority (writes acknowledged at its chain ref's
        /// compare-and-swap, reads fetch its head first).
        #[arg(long, global = true, requires = "remote")]
        linearizable: bool,
        #[command(subcommand)]
        action: KvAction,
    },
    /// Counts for a log: commits, events, actors, chunk bytes, snapshot coverage.
    Stats {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Pack loose objects and merge packs, in any repository (bare too):
    /// what a remote that only receives pushes needs now and then.
    Compact {
        /// Wait for this log's background pack merges first (compaction
        /// itself covers the whole repository).
        #[arg(long)]
        log: Option<String>,
        /// What happens to objects no ref, reflog entry or `*_HEAD` file
        /// reaches: dropped once older than this age (`14d`, `12h`, `30m`,
        /// `90s`), kept until then in a cruft pack; `never` keeps them all;
        /// `now` drops them all — only when nobody else writes to the
        /// repository, as with `git gc --prune=now`.
        #[arg(long, value_name = "WHEN", default_value = "14d", value_parser = parse_prune)]
        prune: Prune,
    },
    /// Logs, heads, what is unpushed per remote, view freshness (no network).
    Status,
    /// Print a shell completion script (e.g. `larder completions bash >
    /// /etc/bash_completion.d/larder`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages into DIR (used by `cargo xtask man`).
    #[command(name = "__man", hide = true)]
    Man {
        /// Where to write larder.1 and one page per command.
        dir: PathBuf,
    },
    /// Print this replica's actor id on one line (`--json`: with its source).
    Whoami,
    /// This replica's signing key: generate one, or show its public key.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// The trust policy: which public keys sign for which actor (docs/signatures.md).
    Trust {
        #[command(subcommand)]
        action: TrustAction,
    },
    /// Show larder end to end in a temporary directory.
    Demo {
        /// Create the repositories in DIR (new or empty) and leave them
        /// there for inspection.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KvAction {
    /// Set KEY to a JSON value; prints the write's version.
    Set {
        /// The key (1 to 1024 bytes, no control characters).
        key: String,
        /// The value as JSON.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print KEY's JSON value (`--json`: with its version); a missing key
    /// exits 1 (`--json` prints `null`).
    Get {
        /// The key.
        key: String,
    },
    /// Delete KEY; prints the delete's version.
    Del {
        /// The key.
        key: String,
    },
    /// One `KEY<TAB>JSON` line per live key starting with PREFIX, in key order.
    Scan {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Set KEY to a JSON value if it currently holds EXPECT (a JSON value,
    /// or `absent`); exits 3 when it does not.
    Cas {
        /// The key.
        key: String,
        /// The value KEY must hold, as JSON, or `absent`.
        #[arg(long, allow_hyphen_values = true, value_name = "JSON|absent")]
        expect: String,
        /// The new value as JSON.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Every write of KEY, oldest first: `VERSION<TAB>JSON` (or `(deleted)`).
    History {
        /// The key.
        key: String,
    },
    /// Stream writes to keys starting with PREFIX until interrupted.
    Watch {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// Stop after N changes.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

#[derive(Subcommand)]
pub enum HooksAction {
    /// Write post-checkout and post-merge hooks that fork a new branch's
    /// logs and merge a merged branch's logs (`git config larder.branchLogs true`).
    Install,
    /// What the installed hooks call (git passes ARGS).
    Run {
        /// post-checkout or post-merge.
        hook: String,
        /// The hook's arguments as git passed them.
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum CryptAction {
    /// Encrypt LOG from now on: create a random key in the git dir
    /// (larder/keys/LOG.key, mode 0600) and print its id.
    Init {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Print LOG's key as one line, for `crypt import` on another replica
    /// (or LARDER_LOG_KEY). Anyone with the line reads the log.
    Export {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Store a key line exported by another replica as LOG's key.
    Import {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// The line `crypt export` printed; `-` reads it from standard
        /// input (keeps it out of the process list and shell history).
        #[arg(value_name = "KEYLINE")]
        keyline: String,
    },
}

#[derive(Subcommand)]
pub enum KeyAction {
    /// Create a signing key for this replica's actor (a new 0600 file under
    /// the git dir, or where `git config larder.signingKey` says); appends
    /// are signed from then on. Prints the public key.
    Generate,
    /// Print the public key of this replica's signing key on one line.
    Show,
}

#[derive(Subcommand)]
pub enum TrustAction {
    /// Trust PUBKEY (as `larder key show` prints it) to sign ACTOR's events;
    /// an actor may have several keys.
    Add {
        /// The actor id.
        actor: String,
        /// The public key, `ed25519:<64 hex digits>`.
        pubkey: String,
    },
    /// Stop trusting PUBKEY (or every key, if none is given) for ACTOR;
    /// affects later pulls only.
    Remove {
        /// The actor id.
        actor: String,
        /// The public key; all of ACTOR's when absent.
        pubkey: Option<String>,
    },
    /// One `ACTOR PUBKEY` line per trusted key, and whether signatures are
    /// required (git config larder.requireSignatures).
    List,
}

#[derive(Subcommand)]
pub enum SnapshotAction {
    /// Snapshot every event of the log, with the key-value state.
    Create {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// List snapshots, newest first (exit 1 after the listing if some are
    /// malformed).
    List {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Show one snapshot: what it covers and what it holds.
    Show {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// The snapshot's name, as `snapshot list` prints it.
        name: String,
    },
    /// Delete all but the newest N snapshots.
    Gc {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// How many to keep.
        #[arg(long)]
        keep: usize,
    },
}

#[derive(Subcommand)]
pub enum LockAction {
    /// Acquire a lease; exit code 3 if another holder has it.
    // Every acquisition is its own holder, even from this clone: a second
    // `acquire` while the lease is live is refused (exit code 3). It prints
    // the fencing token that later `renew`/`release --token` calls name.
    Acquire {
        /// The resource.
        resource: String,
        /// Lease length, e.g. 30s, 5m, 1500ms.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: u64,
        /// Authority: a remote (path or URL); the local repository if absent.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Extend a lease you hold.
    Renew {
        /// The resource.
        resource: String,
        /// The lease's fencing token, as `acquire` printed it (default: the
        /// current one, if this replica holds it — whichever process took it).
        #[arg(long)]
        token: Option<u64>,
        /// New lease length from now.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: u64,
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Release a lease you hold (from any process acting as this replica).
    Release {
        /// The resource.
        resource: String,
        /// The lease's fencing token, as `acquire` printed it (default: the
        /// current one, if this replica holds it — whichever process took it).
        #[arg(long)]
        token: Option<u64>,
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Show one lock: holder, token, expiry (exit 0 whether held or free).
    Check {
        /// The resource.
        resource: String,
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Trim the history of every free or long-expired lock to one commit
    /// that keeps its token (tokens stay monotonic); prints how many.
    Gc {
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
    /// List every lock (exit 1 after the listing if some are malformed).
    List {
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
}

/// Parses `30s`, `5m`, `2h`, `1500ms` or plain milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 5m, 1500ms"))?;
    let factor = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?} (use ms, s, m, h)"
            ));
        }
    };
    Ok(n.saturating_mul(factor))
}

/// `compact --prune`: when unreachable objects are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prune {
    /// Never: every unreachable object is kept.
    Never,
    /// Once last written longer ago than this many milliseconds (0: now).
    OlderThanMs(u64),
}

fn parse_prune(text: &str) -> Result<Prune, String> {
    match text {
        "never" => return Ok(Prune::Never),
        "now" => return Ok(Prune::OlderThanMs(0)),
        _ => {}
    }
    // Digits, then a unit: a bare number is refused (`14` is not 14 days,
    // and taking it as milliseconds would drop everything at once).
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor = match unit {
        "d" => Some(86_400_000),
        "h" => Some(3_600_000),
        "m" => Some(60_000),
        "s" => Some(1_000),
        _ => None,
    };
    match (number.parse::<u64>(), factor) {
        (Ok(n), Some(factor)) => Ok(Prune::OlderThanMs(n.saturating_mul(factor))),
        _ => Err(format!(
            "{text:?} is not an age: --prune takes a number with a unit (14d, 12h, 30m, 90s), `now` or `never`"
        )),
    }
}

impl Cli {
    /// The directory to run in: `.` joined with every `-C` in order, as
    /// git does (an absolute one starts afresh).
    pub fn dir(&self) -> PathBuf {
        self.dirs
            .iter()
            .fold(PathBuf::from("."), |dir, next| dir.join(next))
    }
}
