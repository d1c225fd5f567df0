//! What `append` accepts, every reader returns byte for byte; what no reader
//! would accept, `append` refuses; numbers read from git are checked before
//! arithmetic uses them.

mod common;

use common::{batch, wal_in, wal_in_format};
use larder_codec::{ActorId, CodecError, Envelope, Limits, MAX_DEPTH, Payload, Timestamp, Value};
use larder_git::{EntryKind, Expected, TreeEntry};
use larder_wal::{Meta, WalError, WalFormat, WalManager, WalOptions};
use proptest::prelude::*;

fn envelope(n: u64, payload: Payload) -> Envelope {
    Envelope::new(
        ActorId::new("actor-1").unwrap(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "test",
        payload,
    )
    .unwrap()
}

/// Arbitrary CBOR values, nested up to a little past the depth bound.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|i| Value::Integer(i.into())),
        ".{0,12}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        any::<f64>().prop_map(Value::Float),
    ];
    leaf.prop_recursive(MAX_DEPTH as u32 + 4, 256, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::vec((".{0,4}".prop_map(Value::Text), inner.clone()), 0..3)
                .prop_map(Value::Map),
            (0u64..1000, inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
        ]
    })
}

/// A chain of `depth` one-element arrays around `inner`.
fn wrap(depth: usize, inner: Value) -> Value {
    (0..depth).fold(inner, |v, _| Value::Array(vec![v]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Anything `append` accepts, `read_all` returns byte-identical — at every
    /// depth the generator reaches, including just over the bound.
    #[test]
    fn whatever_append_accepts_reads_back_identical(
        values in proptest::collection::vec((value(), 0usize..8), 1..4)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let wal = wal_in(dir.path(), true);
        let mut accepted = Vec::new();
        for (i, (v, extra)) in values.into_iter().enumerate() {
            // Push some values past the bound on purpose.
            let v = wrap(extra * 8, v);
            let Ok(payload) = Payload::from_value(v) else { continue };
            let e = envelope(i as u64, payload);
            if wal.append(std::slice::from_ref(&e)).is_ok() {
                accepted.push(e);
            }
        }
        let back = wal.read_all().unwrap();
        prop_assert_eq!(back.len(), accepted.len());
        for (a, b) in accepted.iter().zip(&back) {
            prop_assert_eq!(a.payload().as_bytes(), b.payload().as_bytes());
            prop_assert_eq!(a.id(), b.id());
        }
        prop_assert!(wal.verify().unwrap().is_ok());
    }
}

#[test]
fn the_deepest_payload_append_accepts_is_read_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    let deepest = Payload::from_value(wrap(MAX_DEPTH, Value::Integer(1.into()))).unwrap();
    wal.append(&[envelope(0, deepest.clone())]).unwrap();
    // The next append still works (it reads the head back), and so do reads.
    wal.append(&batch("actor-1", 1, 1)).unwrap();
    let back = wal.read_all().unwrap();
    assert_eq!(back[0].payload(), &deepest);
    assert!(wal.verify().unwrap().is_ok());
    // One level more is refused before anything is written.
    let head = wal.head().unwrap();
    assert!(matches!(
        Payload::from_value(wrap(MAX_DEPTH + 1, Value::Integer(1.into()))),
        Err(CodecError::PayloadTooDeep { depth, limit: MAX_DEPTH }) if depth == MAX_DEPTH + 1
    ));
    assert_eq!(wal.head().unwrap(), head);
}

#[test]
fn size_limits_refuse_at_append_and_leave_the_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let repo = larder_git::GitRepo::init_bare(dir.path()).unwrap();
    let options = WalOptions {
        limits: Limits::new(512, 4096).unwrap(),
        ..WalOptions::default()
    };
    let wal = WalManager::with_options(repo, "test", options).unwrap();
    wal.append(&batch("actor-1", 0, 1)).unwrap();
    let head = wal.head().unwrap();
    let big = envelope(1, Payload::from_serde(&"x".repeat(600)).unwrap());
    match wal.append(&[big]) {
        Err(WalError::Codec(e)) => assert!(
            matches!(
                *e,
                CodecError::EventTooLarge {
                    index: 0,
                    limit: 512,
                    ..
                }
            ),
            "{e:?}"
        ),
        other => panic!("expected EventTooLarge, got {other:?}"),
    }
    match wal.append(&batch("actor-1", 10, 100)) {
        Err(WalError::Codec(e)) => {
            assert!(matches!(*e, CodecError::ChunkTooLarge { limit: 4096, .. }))
        }
        other => panic!("expected ChunkTooLarge, got {other:?}"),
    }
    assert_eq!(wal.head().unwrap(), head);
    // The default limits are the documented ones.
    let defaults = Limits::default();
    assert_eq!(
        (defaults.max_event_bytes(), defaults.max_chunk_bytes()),
        (1 << 20, 64 << 20)
    );
}

/// Writes a commit on top of the log's head with `message` and the head's
/// tree, and moves the ref to it.
fn forge_head(wal: &WalManager, message: &str) -> larder_git::ObjectId {
    let repo = wal.repo();
    let head = wal.head().unwrap().unwrap();
    let info = repo.read_commit(head).unwrap();
    let forged = repo
        .write_commit(info.tree, &info.parents, message, None, info.time)
        .unwrap();
    repo.update_ref(wal.ref_name(), Expected::MustBe(head), forged, "forge")
        .unwrap();
    forged
}

#[test]
fn a_generation_of_u64_max_is_a_typed_error_not_an_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    wal.append(&batch("actor-1", 0, 1)).unwrap();
    let forged = forge_head(
        &wal,
        &format!(
            "larder: append 1 event by actor-1\n\nLarder-Generation: {}\n",
            u64::MAX
        ),
    );
    // Appending on top would need generation u64::MAX + 1.
    match wal.append(&batch("actor-1", 1, 1)) {
        Err(WalError::BadMeta { commit, reason }) => {
            assert_eq!(commit, forged);
            assert!(reason.contains("generation"), "{reason}");
        }
        other => panic!("expected BadMeta, got {other:?}"),
    }
    // Readers and verify report it too (the root claims a generation that
    // does not follow from having no parents).
    assert!(wal.read_all().is_err());
    let report = wal.verify().unwrap();
    assert!(!report.is_ok());
    // A child claiming a generation after u64::MAX cannot exist; one whose
    // parent claims u64::MAX is refused by the walk without overflowing.
    let repo = wal.repo();
    let info = repo.read_commit(forged).unwrap();
    let child = repo
        .write_commit(
            info.tree,
            &[forged],
            &format!("child\n\nLarder-Generation: {}\n", u64::MAX),
            None,
            info.time,
        )
        .unwrap();
    repo.update_ref(wal.ref_name(), Expected::MustBe(forged), child, "forge")
        .unwrap();
    assert!(wal.read_all().is_err());
    assert!(!wal.verify().unwrap().is_ok());
    // Verifying the forged pair as an incoming head (from a log that does
    // not hold it yet) is a typed error, not an overflow.
    let empty = WalManager::new(repo.clone(), "elsewhere").unwrap();
    assert!(
        matches!(empty.incoming(child), Err(WalError::BadMeta { .. })),
        "{:?}",
        empty.incoming(child)
    );
}

#[test]
fn a_merge_claiming_events_is_refused() {
    merge_claiming_events(WalFormat::V1);
    merge_claiming_events(WalFormat::V2);
}

fn merge_claiming_events(format: WalFormat) {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in_format(dir.path(), true, format);
    wal.append(&batch("actor-1", 0, 1)).unwrap();
    // A second line of history, then a real merge of both.
    let other_dir = tempfile::tempdir().unwrap();
    let other = wal_in_format(other_dir.path(), true, format);
    other.append(&batch("actor-2", 0, 1)).unwrap();
    let b = other.head().unwrap().unwrap();
    wal.repo().copy_reachable_from(other.repo(), &[b]).unwrap();
    let merge = match wal.merge(b).unwrap() {
        larder_wal::MergeOutcome::Merged(m) => m,
        other => panic!("expected a merge, got {other:?}"),
    };
    let repo = wal.repo();
    let info = repo.read_commit(merge).unwrap();
    let forged = match format {
        // Rewrite the merge's meta.json to claim a trillion events.
        WalFormat::V1 => {
            let mut root = repo.read_tree(info.tree).unwrap();
            let meta_entry = root.iter().find(|e| e.name == "meta.json").unwrap().id;
            let meta = Meta::parse(merge, &repo.read_blob(meta_entry).unwrap()).unwrap();
            let lying = Meta {
                events: Some(1_000_000_000_000),
                ..meta
            };
            let blob = repo.write_blob(&lying.to_bytes()).unwrap();
            root.iter_mut().find(|e| e.name == "meta.json").unwrap().id = blob;
            let tree = repo
                .write_tree(
                    &root
                        .iter()
                        .map(|e| TreeEntry {
                            name: e.name.clone(),
                            kind: EntryKind::Blob,
                            id: e.id,
                        })
                        .collect::<Vec<_>>(),
                )
                .unwrap();
            repo.write_commit(tree, &info.parents, &info.message, None, info.time)
                .unwrap()
        }
        // Add the trailers of an append claiming a trillion events.
        _ => {
            let message = info.message.replace(
                "Larder-Format: 2\n",
                "Larder-Format: 2\nLarder-Actor: actor-1\nLarder-Events: 1000000000000\n",
            );
            assert_ne!(message, info.message);
            repo.write_commit(info.tree, &info.parents, &message, None, info.time)
                .unwrap()
        }
    };
    repo.update_ref(wal.ref_name(), Expected::MustBe(merge), forged, "forge")
        .unwrap();
    let report = wal.verify().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, WalError::BadMeta { commit, .. } if *commit == forged)),
        "{:?}",
        report.problems
    );
    // Counting from the record refuses it too, instead of reporting 10^12.
    assert!(wal.count_between(forged, Some(b)).is_err());
}

#[test]
fn log_names_of_larders_own_refs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = larder_git::GitRepo::init_bare(dir.path()).unwrap();
    for name in larder_wal::RESERVED_LOG_NAMES {
        assert!(
            matches!(
                WalManager::new(repo.clone(), name),
                Err(WalError::InvalidName { .. })
            ),
            "{name}"
        );
    }
    assert!(WalManager::new(repo, "locksmith").is_ok());
}

#[test]
fn verify_reports_progress_per_commit() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    for n in 0..5 {
        wal.append(&batch("actor-1", n, 1)).unwrap();
    }
    let seen = std::cell::Cell::new(0);
    let report = wal.verify_with(&|n| seen.set(seen.get() + n)).unwrap();
    assert_eq!((seen.get(), report.commits), (5, 5));
}
