//! `larder demo`: a bare remote and two replicas in a temporary directory,
//! appends from both, sync, convergence, a snapshot, a lock, verify.

use larder::crdt::{KvProjection, Projection};
use larder::{Larder, LarderError};
use serde_json::json;

use crate::output::{CliError, out_line};

fn say(json_mode: bool, step: &str, text: String, value: serde_json::Value) {
    if json_mode {
        out_line(&json!({ "step": step, "detail": value }));
    } else {
        out_line(&text);
    }
}

/// Where the demo runs: a temporary directory removed afterwards, or the
/// `--keep` directory, left for inspection.
enum Place {
    Temp(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

impl Place {
    fn path(&self) -> &std::path::Path {
        match self {
            Place::Temp(t) => t.path(),
            Place::Kept(p) => p,
        }
    }
}

/// Runs the demo, printing each step; with `keep`, in that directory
/// (which must be new or empty), left there afterwards.
pub fn run(json_mode: bool, keep: Option<&std::path::Path>) -> Result<(), CliError> {
    let tmp =
        match keep {
            Some(dir) => {
                let fail = |e: std::io::Error| {
                    CliError::Failed(format!("cannot use {} for the demo: {e}", dir.display()))
                };
                std::fs::create_dir_all(dir).map_err(fail)?;
                if std::fs::read_dir(dir).map_err(fail)?.next().is_some() {
                    return Err(CliError::usage(format!(
                        "--keep {}: the directory is not empty; give a new or empty one",
                        dir.display()
                    )));
                }
                Place::Kept(std::path::absolute(dir).map_err(fail)?)
            }
            None => Place::Temp(tempfile::tempdir().map_err(|e| {
                CliError::Failed(format!("cannot create a temporary directory: {e}"))
            })?),
        };
    let remote_path = tmp.path().join("remote.git");
    Larder::init_bare(&remote_path)?;
    let remote = remote_path.display().to_string();
    let alice = Larder::init(tmp.path().join("alice"))?;
    let bob = Larder::init(tmp.path().join("bob"))?;
    say(
        json_mode,
        "setup",
        format!(
            "1. created a bare remote and two replicas in {}\n   alice is {}, bob is {}",
            tmp.path().display(),
            alice.actor()?,
            bob.actor()?
        ),
        json!({ "dir": tmp.path().display().to_string(), "alice": alice.actor()?.as_str(), "bob": bob.actor()?.as_str() }),
    );

    let set = |l: &Larder, k: &str, v: &str| -> Result<(), LarderError> {
        let payload = KvProjection::set_payload(k, &v)?;
        l.log("kv")?.append_batch(&[("kv.set", payload)])?;
        Ok(())
    };
    set(&alice, "colour", "red")?;
    set(&alice, "size", "large")?;
    set(&bob, "colour", "blue")?;
    set(&bob, "owner", "bob")?;
    say(
        json_mode,
        "append",
        "2. alice appended 2 events, bob appended 2 (both wrote `colour`)".into(),
        json!({ "alice": 2, "bob": 2 }),
    );

    let mut received = 0;
    for _ in 0..2 {
        received += alice.sync("kv", &remote)?.sync()?.events_received;
        received += bob.sync("kv", &remote)?.sync()?.events_received;
    }
    say(
        json_mode,
        "sync",
        format!(
            "3. synced both replicas through the remote twice ({received} events received in all)"
        ),
        json!({ "events_received": received }),
    );

    let a = alice.log("kv")?.project::<KvProjection>()?;
    let b = bob.log("kv")?.project::<KvProjection>()?;
    let (ha, hb) = (a.state_hash(), b.state_hash());
    let colour = a
        .get("colour")
        .and_then(|p| p.deserialize::<String>().ok())
        .unwrap_or_default();
    say(
        json_mode,
        "converge",
        format!(
            "4. converged: {} events each, state hash {}…{}, colour = {colour} (last writer wins)",
            alice.log("kv")?.events()?.len(),
            &ha.to_string()[..12],
            if ha == hb { " on both" } else { " MISMATCH" }
        ),
        json!({ "alice_hash": ha.to_string(), "bob_hash": hb.to_string(), "equal": ha == hb, "colour": colour }),
    );
    if ha != hb {
        return Err(CliError::Failed("demo: replicas did not converge".into()));
    }

    let snap = alice.snapshots("kv")?.create_with::<KvProjection>()?;
    say(
        json_mode,
        "snapshot",
        format!(
            "5. alice took snapshot {} covering {} events",
            snap.name, snap.meta.event_count
        ),
        json!({ "name": snap.name, "events": snap.meta.event_count }),
    );

    let locks = alice.locks_on(&remote)?;
    let lease = locks.acquire("deploy", 30_000)?;
    let held = bob.locks_on(&remote)?.acquire("deploy", 30_000).is_err();
    locks.release(&lease)?;
    let next = bob.locks_on(&remote)?.acquire("deploy", 30_000)?;
    say(
        json_mode,
        "lock",
        format!(
            "6. alice took lock `deploy` with fencing token {} (bob was refused: {held}); after release bob got token {}",
            lease.token, next.token
        ),
        json!({ "alice_token": lease.token, "bob_refused": held, "bob_token": next.token }),
    );

    let report = bob.log("kv")?.wal().verify()?;
    say(
        json_mode,
        "verify",
        format!(
            "7. verify: {} commits, {} events, {} problems",
            report.commits,
            report.events,
            report.problems.len()
        ),
        json!({ "commits": report.commits, "events": report.events, "problems": report.problems.len() }),
    );
    if let Place::Kept(dir) = &tmp {
        say(
            json_mode,
            "kept",
            format!(
                "8. kept everything in {}: remote.git (bare), alice, bob — try `larder -C {}/alice log kv`",
                dir.display(),
                dir.display()
            ),
            json!({ "dir": dir.display().to_string() }),
        );
    }
    Ok(())
}
