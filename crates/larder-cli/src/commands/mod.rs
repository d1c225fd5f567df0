//! One module per command; each takes the shared [`Ctx`] and its own
//! arguments and returns the exit code (or an error, which `main` renders).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use larder::{Larder, LarderError};

use crate::output::{CliError, Output};

pub mod append;
pub mod compact;
pub mod crypt;
pub mod demo;
pub mod hooks;
pub mod import;
pub mod init;
pub mod key;
pub mod kv;
pub mod lock;
pub mod log;
pub mod man;
pub mod merge_log;
pub mod snapshot;
pub mod stats;
pub mod status;
pub mod sync;
pub mod trust;
pub mod verify;
pub mod watch;
pub mod whoami;

/// A command's result: its exit code, or the error `main` renders.
pub type CmdResult = Result<ExitCode, CliError>;

/// Log names larder keeps for its own refs (the WAL refuses them too).
pub use larder::wal::RESERVED_LOG_NAMES;

/// What every command needs: where to run and how to print.
pub struct Ctx {
    /// The `-C` directory.
    pub dir: PathBuf,
    /// `--actor`, if given.
    pub actor: Option<String>,
    /// `--fsync`: every write durable against power loss.
    pub fsync: bool,
    /// Text or JSON output.
    pub out: Output,
}

impl Ctx {
    /// The repository, found as `git -C <dir>` finds it: `GIT_DIR` (and
    /// `GIT_WORK_TREE`) relative to the `-C` directory when set, else the
    /// `-C` directory or its nearest parent that is a work tree or a git
    /// dir. Relative remote paths then resolve from the work tree's top
    /// (or, outside a work tree, the `-C` directory).
    pub fn open(&self) -> Result<Larder, LarderError> {
        self.identify(Larder::open_from_env(&self.dir)?)
    }

    /// Applies `--actor`, and warns when the repository is a copy of
    /// another (it will get a fresh actor on its first write).
    pub fn identify(&self, larder: Larder) -> Result<Larder, LarderError> {
        let larder = match &self.actor {
            Some(id) => larder.with_actor(larder::codec::ActorId::new(id.as_str())?),
            None => larder,
        };
        let larder = if self.fsync {
            larder.with_durability(larder::wal::Durability::Fsync)
        } else {
            larder
        };
        if let Some(original) = larder.copied_from()? {
            self.out.warn(&format!(
                "this repository is a copy of {}: it gets a fresh actor id on its first write",
                original.display()
            ));
        }
        Ok(larder)
    }

    /// The log `name`, which must exist: reading a misspelt log says so,
    /// with a "did you mean" and, when a remote has it, the pull to run.
    pub fn existing_log(&self, larder: &Larder, name: &str) -> Result<larder::Log, CliError> {
        check_log_name(larder, name)?;
        match larder.existing_log(name) {
            Ok(log) => Ok(log),
            Err(LarderError::NoSuchLog { .. }) => Err(no_such_log(larder, name, None)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Refuses a name that is reserved or that larder cannot store, naming
/// the rule broken.
pub fn check_log_name(larder: &Larder, name: &str) -> Result<(), CliError> {
    if RESERVED_LOG_NAMES.contains(&name) {
        return Err(CliError::usage(format!(
            "invalid log name {name:?}: reserved for larder's own refs ({}); choose another name",
            RESERVED_LOG_NAMES.join(", ")
        )));
    }
    if let Err(e) = larder::wal::WalManager::new(larder.repo().clone(), name) {
        return Err(CliError::usage(format!("{e}; choose another name")));
    }
    Ok(())
}

/// The "no such log" error for `name`: a suggestion by edit distance over
/// the logs known here (local logs, logs staged from remotes, heads
/// published in a hub), and the pull to run when a remote has it.
/// `remote` narrows the message to a remote the command just asked.
pub fn no_such_log(larder: &Larder, name: &str, remote: Option<&str>) -> CliError {
    let known = known_logs(larder);
    let mut msg = match remote {
        Some(r) => format!("no log named {name} here or on remote {r}"),
        None => format!("no log named {name} in this repository"),
    };
    if remote.is_none()
        && let Some(r) = remote_with_log(larder, name)
    {
        msg.push_str(&format!(
            "; remote {r} has it: run `larder pull --log {name} --remote {r}` first"
        ));
        return CliError::usage(msg);
    }
    match suggest(name, known.iter().map(String::as_str)) {
        Some(s) => msg.push_str(&format!("; did you mean {s}?")),
        None if known.is_empty() => msg.push_str("; there are no logs yet: append to one first"),
        None => msg.push_str(&format!(
            "; known logs: {}",
            known.iter().cloned().collect::<Vec<_>>().join(", ")
        )),
    }
    CliError::usage(msg)
}

/// Every log name this repository knows of: its logs, the logs of heads
/// published in it (a hub), and the logs staged from remotes.
pub fn known_logs(larder: &Larder) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = larder.logs().unwrap_or_default().into_iter().collect();
    let refs = larder.repo().list_refs("refs/").unwrap_or_default();
    for (r, _) in refs {
        let rest = if let Some(rest) = r.strip_prefix("refs/larder/") {
            rest
        } else if let Some(rest) = r.strip_prefix("refs/remotes/") {
            match rest.find("/larder/") {
                Some(i) => &rest[i + "/larder/".len()..],
                None => continue,
            }
        } else {
            continue;
        };
        if let Some((log, _)) = rest.split_once("/heads/")
            && !log.contains('/')
            && !RESERVED_LOG_NAMES.contains(&log)
        {
            known.insert(log.to_owned());
        }
    }
    known
}

/// A configured remote (git config `remote.<name>.url`) known to hold
/// log `name`: from staging refs of an earlier fetch, or, for a remote on
/// this file system, from its published heads. No network.
pub fn remote_with_log(larder: &Larder, name: &str) -> Option<String> {
    let staged = larder.repo().list_refs("refs/remotes/").ok()?;
    let suffix = format!("/larder/{name}/heads/");
    for (r, _) in &staged {
        if let Some(rest) = r.strip_prefix("refs/remotes/")
            && let Some(i) = rest.find(&suffix)
        {
            return Some(rest[..i].to_owned());
        }
    }
    for remote in configured_remotes(larder) {
        // The shared resolver: git's rules for names, paths and URLs.
        let Ok(resolved) = larder.repo().resolve_remote(&remote) else {
            continue;
        };
        let larder::git::RemoteLocation::Local(path) = resolved.location else {
            continue;
        };
        if let Ok(repo) = larder::git::GitRepo::open(&path)
            && repo
                .list_refs(&format!("refs/larder/{name}/"))
                .is_ok_and(|refs| !refs.is_empty())
        {
            return Some(remote);
        }
    }
    None
}

/// The names of the remotes in git config.
pub fn configured_remotes(larder: &Larder) -> Vec<String> {
    larder
        .repo()
        .gix()
        .remote_names()
        .into_iter()
        .map(|n| n.to_string())
        .collect()
}

/// `remote.<name>.url` from git config.
pub fn remote_url(larder: &Larder, name: &str) -> Option<String> {
    larder
        .repo()
        .gix()
        .config_snapshot()
        .string(format!("remote.{name}.url").as_str())
        .map(|u| u.to_string())
}

/// The known name closest to `name` by edit distance, if close enough to
/// be a likely typo: 1 edit for names of up to 3 characters, else a third
/// of the length but at least 2.
pub fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = if len <= 3 { 1 } else { (len / 3).max(2) };
    known
        .filter(|k| *k != name)
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Success (with any error type, for commands still returning
/// [`LarderError`] as well as [`CmdResult`]).
pub fn ok<E>() -> Result<ExitCode, E> {
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        let known = ["issues", "notes", "kv"];
        assert_eq!(suggest("isues", known.iter().copied()), Some("issues"));
        assert_eq!(suggest("note", known.iter().copied()), Some("notes"));
        assert_eq!(suggest("isue", known.iter().copied()), Some("issues"));
        assert_eq!(suggest("zzzzzz", known.iter().copied()), None);
        assert_eq!(suggest("xy", known.iter().copied()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
