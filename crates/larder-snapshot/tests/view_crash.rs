//! A process killed (SIGKILL) in the middle of view updates leaves a view
//! whose state is exactly the fold of the events up to its recorded
//! position — never half a batch — and the next update catches up.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use larder_codec::{ActorId, Envelope, Timestamp};
use larder_crdt::{KvProjection, Projection, Projector, sort_events};
use larder_git::GitRepo;
use larder_snapshot::{SnapshotManager, View};
use larder_testkit::{harness, run_seeds};
use larder_wal::{WalManager, commits_between};

const ROLE: &str = "LARDER_VIEW_TEST_ROLE";

fn main() {
    if harness::role(ROLE).as_deref() == Some("updater") {
        updater(Path::new(&std::env::args().nth(1).unwrap()));
        return;
    }
    harness::run_tests(&[("killed_view_updates_leave_a_consistent_view", || {
        run_seeds("LARDER_VIEW_CRASH_SEED", 0..8, crash_once)
    })]);
}

fn wal(path: &Path) -> WalManager {
    WalManager::new(GitRepo::open(path).unwrap(), "kv").unwrap()
}

fn updater(path: &Path) {
    let wal = wal(path);
    let mut view = View::<KvProjection>::open(SnapshotManager::new(wal.clone())).unwrap();
    let actor = ActorId::new("writer").unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let batch: Vec<Envelope> = (0..20)
            .map(|j| {
                let n = i * 20 + j;
                Envelope::new(
                    actor.clone(),
                    Timestamp::new(1_700_000_000_000 + n, 0),
                    "kv.set",
                    KvProjection::set_payload(&format!("k{}", n % 50), &n).unwrap(),
                )
                .unwrap()
            })
            .collect();
        wal.append(&batch).unwrap();
        view.update().unwrap();
        writeln!(out, "updated {i}").unwrap();
        out.flush().unwrap();
    }
}

fn crash_once(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    GitRepo::init(dir.path()).unwrap();
    let mut child = harness::child(ROLE, "updater")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..(1 + seed * 3) {
        lines.next().unwrap().unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let wal = wal(dir.path());
    let mut view = View::<KvProjection>::open(SnapshotManager::new(wal.clone())).unwrap();
    let position = view.position().expect("at least one update committed");
    let mut upto: Vec<Envelope> = commits_between(wal.repo(), position, None, wal.ref_name())
        .unwrap()
        .flat_map(|c| c.unwrap().events)
        .collect();
    sort_events(&mut upto);
    let mut expected = Projector::<KvProjection>::default();
    expected.apply_all(&upto).unwrap();
    assert_eq!(
        view.state().state_hash(),
        expected.state().state_hash(),
        "seed {seed}: state != fold up to position"
    );
    view.update().unwrap();
    let mut all = wal.read_all().unwrap();
    sort_events(&mut all);
    let mut full = Projector::<KvProjection>::default();
    full.apply_all(&all).unwrap();
    assert_eq!(
        view.state().state_hash(),
        full.state().state_hash(),
        "seed {seed}: catch-up"
    );
}
