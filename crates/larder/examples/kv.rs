//! The key-value store end to end: two replicas of one store, each writing
//! offline, converging through a bare remote; compare-and-set, batches,
//! history, a point in the past, and a watch — then the linearizable mode:
//! two replicas racing compare-and-sets through an authoritative remote,
//! no increment lost, every read seeing every acknowledged write.
//!
//! Run with `cargo run -p larder --example kv`.

use std::time::Duration;

use larder::Larder;
use larder::codec::ActorId;
use larder::kv::{At, Batch, Consistency, Expect, KvOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    replicas: u32,
    region: String,
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let remote = tmp.path().join("remote.git");
    Larder::init_bare(&remote)?;
    let remote = remote.to_str().ok_or("non-UTF-8 temp path")?;
    let alice = open(&tmp.path().join("alice"), "alice")?;
    let bob = open(&tmp.path().join("bob"), "bob")?;
    let (a, b) = (alice.kv("kv")?, bob.kv("kv")?);

    // Offline writes on both replicas.
    let cfg = Config {
        replicas: 3,
        region: "eu".into(),
    };
    let v = a.set("service/api", &cfg)?;
    println!("alice set service/api at {}", v.timestamp);
    let mut batch = Batch::new();
    batch
        .set("flags/dark-mode", &true)?
        .set("flags/beta", &false)?;
    b.write(batch)?;
    println!("bob wrote two flags in one commit");

    // A watch on alice sees what the sync brings in.
    let mut watch = a.watch::<bool>("flags/")?;
    for kv in [&a, &b, &a] {
        kv.sync(remote)?;
    }
    while let Some(change) = watch.next_timeout(Duration::from_millis(200))? {
        println!("alice saw {} = {:?}", change.key, change.value);
    }
    assert_eq!(a.state_hash()?, b.state_hash()?);
    println!("replicas converged: state {}", a.state_hash()?);

    // Compare-and-set against the version read.
    let current = b
        .get::<Config>("service/api")?
        .ok_or("service/api missing")?;
    let before = b.position();
    let cas = b.compare_and_set(
        "service/api",
        Expect::Version(current.version),
        &Config {
            replicas: 5,
            ..current.value.clone()
        },
    )?;
    println!("bob's CAS swapped: {}", cas.swapped);
    let stale = b.compare_and_set("service/api", Expect::Value(current.value), &cfg)?;
    println!("a CAS against the old value swapped: {}", stale.swapped);

    // History and a point in the past.
    for change in b.history::<Config>("service/api")? {
        println!("history: {:?} by {}", change.value, change.version.actor);
    }
    if let Some(commit) = before {
        let old = b.get_at::<Config>("service/api", At::Commit(commit))?;
        println!("as of {commit}: {:?}", old.map(|e| e.value));
    }

    // Linearizable: one chain ref on an authority orders every operation.
    let authority = tmp.path().join("authority.git");
    Larder::init_bare(&authority)?;
    let options = KvOptions {
        consistency: Consistency::Linearizable {
            authority: authority.to_str().ok_or("non-UTF-8 temp path")?.into(),
        },
        ..KvOptions::default()
    };
    let (la, lb) = (
        alice.kv_with("counters", options.clone())?,
        bob.kv_with("counters", options)?,
    );
    la.compare_and_set("visits", Expect::Absent, &0u64)?;
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        let workers: Vec<_> = [&la, &lb]
            .into_iter()
            .map(|kv| {
                s.spawn(move || -> larder::kv::Result<()> {
                    for _ in 0..10 {
                        // Read, then swap against the version read; retry on a race.
                        loop {
                            let n = kv
                                .get::<u64>("visits")?
                                .map_or((0, None), |e| (e.value, Some(e.version)));
                            let expect = n.1.map_or(Expect::Absent, Expect::Version);
                            if kv.compare_and_set("visits", expect, &(n.0 + 1))?.swapped {
                                break;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a worker panicked")??;
        }
        Ok(())
    })?;
    // No sync: bob's read asks the authority.
    let visits = lb.get::<u64>("visits")?.map(|e| e.value);
    println!("linearizable counter after 20 racing increments: {visits:?}");
    assert_eq!(visits, Some(20));
    Ok(())
}

fn open(path: &std::path::Path, actor: &str) -> Result<Larder, Box<dyn std::error::Error>> {
    Ok(Larder::init(path)?.with_actor(ActorId::new(actor)?))
}
