//! Sixteen processes each append 200 events and sync through one bare
//! remote, concurrently. Afterwards every replica holds all 3,200 events,
//! the same ordered list and the same state hash.
//!
//! The test binary re-executes itself as the child processes.

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use larder_codec::ActorId;
use larder_crdt::{Hlc, SystemClock};
use larder_git::GitRepo;
use larder_sync::SyncManager;
use larder_testkit::harness;
use larder_wal::WalManager;

const ROLE: &str = "LARDER_SYNC_TEST_ROLE";
const PROCESSES: usize = 16;
const BATCHES: usize = 20;
const PER_BATCH: usize = 10;

fn main() {
    if harness::role(ROLE).as_deref() == Some("replica") {
        replica();
        return;
    }
    harness::run_tests(&[(
        "sixteen_processes_append_and_sync_concurrently",
        sixteen_processes,
    )]);
}

fn open(dir: &Path, actor: &str, remote: &Path) -> SyncManager {
    let wal = WalManager::new(GitRepo::init(dir).unwrap(), "kv").unwrap();
    SyncManager::new(
        wal,
        ActorId::new(actor).unwrap(),
        &remote.display().to_string(),
    )
    .unwrap()
}

/// Child: wait for "go", then append and sync in rounds.
fn replica() {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let (remote, dir) = (&args[0], &args[1]);
    let actor = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let sync = open(dir, &actor, remote);
    let mut hlc = Hlc::new(SystemClock);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let me = ActorId::new(actor.as_str()).unwrap();
    for b in 0..BATCHES {
        let batch: Vec<_> = (0..PER_BATCH)
            .map(|i| {
                let key = format!("{actor}-{}", (b * PER_BATCH + i) % 37);
                larder_codec::Envelope::new(
                    me.clone(),
                    hlc.now().unwrap(),
                    "kv.set",
                    larder_crdt::KvProjection::set_payload(&key, &(b * PER_BATCH + i)).unwrap(),
                )
                .unwrap()
            })
            .collect();
        sync.wal().append(&batch).unwrap();
        let before = sync.wal().head().unwrap();
        sync.sync().unwrap();
        if let Some(before) = before {
            for e in sync.wal().read_since(before).unwrap() {
                hlc.observe(e.timestamp(), e.actor().as_str()).unwrap();
            }
        }
    }
}

fn sixteen_processes() {
    let remote = common::bare_remote();
    let work = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..PROCESSES)
        .map(|p| work.path().join(format!("replica-{p:02}")))
        .collect();
    let mut children: Vec<_> = dirs
        .iter()
        .map(|d| {
            harness::child(ROLE, "replica")
                .args([remote.path(), d.as_path()])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a replica process failed");
    }
    // Everyone catches up until nothing changes.
    let syncs: Vec<SyncManager> = dirs
        .iter()
        .map(|d| open(d, d.file_name().unwrap().to_str().unwrap(), remote.path()))
        .collect();
    for _ in 0..4 {
        let mut changed = false;
        for s in &syncs {
            let report = s.sync().unwrap();
            changed |= report.pushed || report.commits_received > 0;
        }
        if !changed {
            break;
        }
    }
    let reference = {
        let mut e = syncs[0].wal().read_all().unwrap();
        larder_crdt::sort_events(&mut e);
        e
    };
    assert_eq!(reference.len(), PROCESSES * BATCHES * PER_BATCH);
    let hash = |events: &[larder_codec::Envelope]| {
        let mut p = larder_crdt::Projector::<larder_crdt::KvProjection>::default();
        p.apply_all(events).unwrap();
        larder_crdt::Projection::state_hash(p.state())
    };
    let reference_hash = hash(&reference);
    for (i, s) in syncs.iter().enumerate() {
        let mut events = s.wal().read_all().unwrap();
        assert_eq!(
            events.len(),
            PROCESSES * BATCHES * PER_BATCH,
            "replica {i}: every event exactly once"
        );
        larder_crdt::sort_events(&mut events);
        assert_eq!(events, reference, "replica {i}");
        assert_eq!(hash(&events), reference_hash, "replica {i}");
        assert_eq!(
            s.wal().head().unwrap(),
            syncs[0].wal().head().unwrap(),
            "replica {i} head"
        );
    }
}
