//! `larder status`: every log with its head, what is unpushed per remote
//! and how fresh its view is — from local refs only, no network.
//!
//! "Unpushed" compares the log's head with this replica's own head on each
//! remote: read directly from a remote on this file system (a configured
//! absolute path or `file://` URL), else from its staging ref
//! (`refs/remotes/<remote>/larder/<log>/heads/<actor>`), which is what the
//! remote held at the last pull. Remotes come from git config and from
//! staging refs (path and URL remotes are staged as `url-<hash>`).

use std::collections::BTreeSet;
use std::process::ExitCode;

use larder::Larder;
use larder::git::ObjectId;
use serde_json::{Value, json};

use super::{CmdResult, Ctx, configured_remotes, remote_url};
use crate::output::EXIT_FAILURE;

/// Runs `status`.
pub fn run(ctx: &Ctx) -> CmdResult {
    let larder = ctx.open()?;
    let actor = larder.existing_actor()?;
    let logs = larder.logs()?;
    let staged = larder.repo().list_refs("refs/remotes/")?;
    let mut failed = false;
    if logs.is_empty() {
        ctx.out.emit(json!({ "logs": 0 }), || {
            "no logs yet: `larder append --log <name> --data <json>` starts one".into()
        });
    }
    for name in &logs {
        match log_status(&larder, name, actor.as_ref().map(|a| a.as_str()), &staged) {
            Ok((value, text)) => ctx.out.emit(value, || text),
            Err(e) => {
                failed = true;
                ctx.out.bad_entry(&format!("log {name}: {e}"));
            }
        }
    }
    if failed {
        Ok(ExitCode::from(EXIT_FAILURE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// One log's status as a JSON value and as text.
fn log_status(
    larder: &Larder,
    name: &str,
    actor: Option<&str>,
    staged: &[(String, ObjectId)],
) -> Result<(Value, String), crate::output::CliError> {
    let log = larder.log(name)?;
    let wal = log.wal();
    let Some(head) = wal.head()? else {
        // A hub: no log ref, the heads replicas published.
        let heads = wal.published_heads()?;
        let commits = wal.commits_since(None)?.remaining();
        let listed: Vec<Value> = heads
            .iter()
            .map(|(r, id)| json!({ "ref": r, "head": id.to_string() }))
            .collect();
        let mut text = format!(
            "{name}: {} published head(s), {commits} commits (a hub: no log ref of its own)",
            heads.len()
        );
        for (r, id) in &heads {
            text.push_str(&format!("\n  {r} {}", &id.to_string()[..12]));
        }
        return Ok((
            json!({ "log": name, "head": null, "commits": commits, "published_heads": listed }),
            text,
        ));
    };
    let commits = wal.commits_since(None)?.remaining();
    let mut text = format!(
        "{name}: head {} ({commits} commits)",
        &head.to_string()[..12]
    );

    // Remotes: configured ones, and any with staging refs for this log.
    let marker = format!("/larder/{name}/heads/");
    let mut remotes: BTreeSet<String> = configured_remotes(larder).into_iter().collect();
    for (r, _) in staged {
        if let Some(rest) = r.strip_prefix("refs/remotes/")
            && let Some(i) = rest.find(&marker)
        {
            remotes.insert(rest[..i].to_owned());
        }
    }
    let mut per_remote = Vec::new();
    for remote in &remotes {
        // A remote on this file system is read directly; any other by
        // what the last pull staged.
        let own = actor.and_then(|a| match file_remote(larder, remote) {
            Some(repo) => repo
                .ref_target(&format!("refs/larder/{name}/heads/{a}"))
                .ok()
                .flatten(),
            None => {
                let r = format!("refs/remotes/{remote}{marker}{a}");
                staged.iter().find(|(n, _)| *n == r).map(|(_, id)| *id)
            }
        });
        let (state, commits_ahead, events_ahead) = match own {
            Some(o) if o == head => ("up to date".to_owned(), 0, 0),
            Some(o) if wal.is_ancestor(o, head)? => {
                let (c, e) = wal.count_between(head, Some(o))?;
                (format!("{c} commits ({e} events) unpushed"), c, e)
            }
            Some(_) => (
                "its copy of our head is not in our log: pull first".to_owned(),
                0,
                0,
            ),
            None => {
                let (c, e) = wal.count_between(head, None)?;
                (
                    format!("never pushed here: {c} commits ({e} events) unpushed"),
                    c,
                    e,
                )
            }
        };
        text.push_str(&format!("\n  remote {remote}: {state}"));
        per_remote.push(json!({ "remote": remote, "state": state, "unpushed_commits": commits_ahead, "unpushed_events": events_ahead }));
    }
    if remotes.is_empty() {
        text.push_str("\n  no remotes");
    }

    let view_path =
        larder::snapshot::View::<larder::crdt::KvProjection>::path_for(&larder.snapshots(name)?);
    let view = if !view_path.exists() {
        json!({ "path": view_path.display().to_string(), "state": "none" })
    } else {
        match larder::snapshot::View::<larder::crdt::KvProjection>::open(larder.snapshots(name)?) {
            Ok(v) => match v.position() {
                Some(p) if p == head => json!({ "state": "fresh", "position": p.to_string() }),
                Some(p) => {
                    let behind = if wal.is_ancestor(p, head).unwrap_or(false) {
                        wal.count_between(head, Some(p)).map(|(c, _)| c).ok()
                    } else {
                        None
                    };
                    json!({ "state": "behind", "position": p.to_string(), "commits_behind": behind })
                }
                None => json!({ "state": "empty" }),
            },
            Err(e) => json!({ "state": "unreadable", "error": e.to_string() }),
        }
    };
    text.push_str(&format!(
        "\n  view: {}",
        match view["state"].as_str().unwrap_or_default() {
            "none" => "none".to_owned(),
            "fresh" => "at the head".to_owned(),
            "behind" => match view["commits_behind"].as_u64() {
                Some(n) => format!("{n} commits behind (updates on its next read)"),
                None => "at a commit not in the log (rebuilds on its next read)".to_owned(),
            },
            "empty" => "empty, or of another projection".to_owned(),
            other => format!("{other}: {}", view["error"].as_str().unwrap_or_default()),
        }
    ));
    Ok((
        json!({ "log": name, "head": head.to_string(), "commits": commits, "remotes": per_remote, "view": view }),
        text,
    ))
}

/// The configured remote `remote` when its URL is a path (or `file://`)
/// that opens as a repository: read directly, no network.
fn file_remote(larder: &Larder, remote: &str) -> Option<larder::git::GitRepo> {
    let url = remote_url(larder, remote)?;
    if url.contains("://") && !url.starts_with("file://") {
        return None;
    }
    let path = std::path::PathBuf::from(url.strip_prefix("file://").unwrap_or(&url));
    if path.is_relative() {
        return None;
    }
    larder::git::GitRepo::open(path).ok()
}
