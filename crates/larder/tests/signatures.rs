//! Signed logs: real repositories, a real bare remote. A replica that
//! requires signatures quarantines heads carrying unsigned, wrongly signed
//! or untrusted events, naming them with reasons, and merges the rest.

use std::path::Path;
use std::process::Command;

use larder::codec::{ActorId, Envelope, Payload, Timestamp};
use larder::sign::{SignError, SignatureProblem, SigningKey};
use larder::{Larder, LarderError};

const LOG: &str = "notes";

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A replica acting as `actor`, with signing key `seed` if given.
fn replica(top: &Path, actor: &str, seed: Option<u8>) -> Larder {
    let larder = Larder::init(top.join(actor))
        .unwrap()
        .with_actor(ActorId::new(actor).unwrap());
    if let Some(seed) = seed {
        key(seed)
            .save_new(&larder.signing_key_path().unwrap())
            .unwrap();
    }
    larder
}

/// An event by `actor` written straight into the WAL (no facade signing),
/// so a test can craft any signature slot.
fn crafted(larder: &Larder, actor: &str, n: u64, signature: impl Fn(&Envelope) -> Option<Vec<u8>>) {
    let event = Envelope::new(
        ActorId::new(actor).unwrap(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "note",
        Payload::from_serde(&format!("{actor} {n}")).unwrap(),
    )
    .unwrap();
    let event = match signature(&event) {
        Some(sig) => event.with_signature(sig),
        None => event,
    };
    larder.log(LOG).unwrap().wal().append(&[event]).unwrap();
}

fn push(larder: &Larder, remote: &str) {
    let report = larder.sync(LOG, remote).unwrap().push().unwrap();
    assert!(report.pushed);
}

fn texts(larder: &Larder) -> Vec<String> {
    let mut t: Vec<String> = larder
        .log(LOG)
        .unwrap()
        .events()
        .unwrap()
        .iter()
        .map(|e| e.payload().deserialize::<String>().unwrap())
        .collect();
    t.sort();
    t
}

#[test]
fn appends_are_signed_when_the_actor_has_a_key() {
    let top = tempfile::tempdir().unwrap();
    let a = replica(top.path(), "alice", None);
    let log = a.log(LOG).unwrap();
    log.append("note", &"before").unwrap();
    let (path, public) = a.generate_signing_key().unwrap();
    assert_eq!(path, a.repo().git_dir().join("larder/keys/alice"));
    assert_eq!(a.signing_key().unwrap().unwrap().public_key(), public);
    log.append("note", &"after").unwrap();
    // A second key for the same actor is refused, the first kept.
    assert!(matches!(
        a.generate_signing_key(),
        Err(LarderError::Sign(SignError::KeyExists { .. }))
    ));

    assert!(a.trust(&ActorId::new("alice").unwrap(), &public).unwrap());
    let report = a.verify_signatures(LOG).unwrap();
    assert_eq!((report.events, report.verified, report.unsigned), (2, 1, 1));
    assert!(report.problems.is_empty(), "not required: unsigned is fine");

    git(
        a.repo().git_dir(),
        &["config", "larder.requireSignatures", "true"],
    );
    let a = Larder::open(a.repo().git_dir())
        .unwrap()
        .with_actor(ActorId::new("alice").unwrap());
    let report = a.verify_signatures(LOG).unwrap();
    assert!(report.required);
    assert_eq!(report.problems.len(), 1);
    assert!(matches!(
        report.problems[0].problem,
        SignatureProblem::Unsigned { .. }
    ));
    assert!(
        report.problems[0]
            .to_string()
            .contains("unsigned event by alice"),
        "{}",
        report.problems[0]
    );
}

#[test]
fn a_strict_replica_quarantines_bad_heads_and_merges_the_rest() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    Larder::init_bare(&remote).unwrap();
    let remote = remote.display().to_string();

    // alice signs with key 1; erin rotates from key 5 to key 6 (both trusted).
    let alice = replica(top.path(), "alice", Some(1));
    alice.log(LOG).unwrap().append("note", &"alice 1").unwrap();
    push(&alice, &remote);
    let erin = replica(top.path(), "erin", Some(5));
    erin.log(LOG).unwrap().append("note", &"erin old").unwrap();
    std::fs::remove_file(erin.signing_key_path().unwrap()).unwrap();
    key(6).save_new(&erin.signing_key_path().unwrap()).unwrap();
    let erin = Larder::open(erin.repo().git_dir())
        .unwrap()
        .with_actor(ActorId::new("erin").unwrap());
    erin.log(LOG).unwrap().append("note", &"erin new").unwrap();
    push(&erin, &remote);
    // bob does not sign.
    let bob = replica(top.path(), "bob", None);
    bob.log(LOG).unwrap().append("note", &"bob 1").unwrap();
    push(&bob, &remote);
    // carol's event carries her trusted key's signature with a flipped byte.
    let carol = replica(top.path(), "carol", None);
    crafted(&carol, "carol", 1, |e| {
        let mut sig = key(3).signature_for(e.id());
        sig[40] ^= 0x01;
        Some(sig)
    });
    push(&carol, &remote);
    // dave signs with key 9, but the reader trusts key 4 for dave.
    let dave = replica(top.path(), "dave", Some(9));
    dave.log(LOG).unwrap().append("note", &"dave 1").unwrap();
    push(&dave, &remote);

    let reader = replica(top.path(), "reader", None);
    git(
        reader.repo().git_dir(),
        &["config", "larder.requireSignatures", "true"],
    );
    let reader = Larder::open(reader.repo().git_dir())
        .unwrap()
        .with_actor(ActorId::new("reader").unwrap());
    for (actor, seed) in [
        ("alice", 1),
        ("carol", 3),
        ("dave", 4),
        ("erin", 5),
        ("erin", 6),
    ] {
        assert!(
            reader
                .trust(&ActorId::new(actor).unwrap(), &key(seed).public_key())
                .unwrap()
        );
    }
    let report = reader.sync(LOG, &remote).unwrap().pull().unwrap();
    let mut rejected: Vec<(String, String)> = report
        .rejected
        .iter()
        .map(|r| (r.actor.clone(), r.reason.clone()))
        .collect();
    rejected.sort();
    let actors: Vec<&str> = rejected.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actors, ["bob", "carol", "dave"], "{rejected:#?}");
    assert!(
        rejected[0].1.contains("unsigned event by bob"),
        "{}",
        rejected[0].1
    );
    assert!(
        rejected[1].1.contains("bad signature: event by carol"),
        "{}",
        rejected[1].1
    );
    assert!(
        rejected[2].1.contains("not trusted for dave"),
        "{}",
        rejected[2].1
    );
    for r in &report.rejected {
        assert!(
            // The chunk's path: `<chunk-id>.bin` (format 2).
            r.commit.is_some() && r.path.as_deref().is_some_and(|p| p.ends_with(".bin")),
            "{r}"
        );
        assert!(r.head_ref.ends_with(&format!("/heads/{}", r.actor)), "{r}");
    }
    assert_eq!(texts(&reader), ["alice 1", "erin new", "erin old"]);
    assert!(reader.verify_signatures(LOG).unwrap().problems.is_empty());

    // Removing alice's key affects future pulls only: her new head is
    // quarantined, her merged event stays (and verify now reports it).
    assert_eq!(
        reader
            .untrust(&ActorId::new("alice").unwrap(), None)
            .unwrap(),
        1
    );
    alice.log(LOG).unwrap().append("note", &"alice 2").unwrap();
    push(&alice, &remote);
    let report = reader.sync(LOG, &remote).unwrap().pull().unwrap();
    let actors: Vec<&str> = report.rejected.iter().map(|r| r.actor.as_str()).collect();
    assert!(actors.contains(&"alice"), "{:#?}", report.rejected);
    let alice_reason = &report
        .rejected
        .iter()
        .find(|r| r.actor == "alice")
        .unwrap()
        .reason;
    assert!(
        alice_reason.contains("no key is trusted for alice"),
        "{alice_reason}"
    );
    assert_eq!(texts(&reader), ["alice 1", "erin new", "erin old"]);
    let verified = reader.verify_signatures(LOG).unwrap();
    assert_eq!(verified.problems.len(), 1);
    assert!(matches!(
        verified.problems[0].problem,
        SignatureProblem::UntrustedActor { .. }
    ));

    // A lax replica (no requirement, no keys) takes everything.
    let lax = replica(top.path(), "lax", None);
    let report = lax.sync(LOG, &remote).unwrap().pull().unwrap();
    assert!(report.rejected.is_empty(), "{:#?}", report.rejected);
    assert_eq!(texts(&lax).len(), 7);
}

#[test]
fn malformed_keys_and_policy_lines_are_typed_errors_naming_file_and_line() {
    let top = tempfile::tempdir().unwrap();
    let a = replica(top.path(), "alice", None);
    let key_path = a.signing_key_path().unwrap();
    std::fs::create_dir_all(key_path.parent().unwrap()).unwrap();
    std::fs::write(&key_path, "# my key\ned25519-secret:nothex\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let err = a.log(LOG).unwrap().append("note", &"x").unwrap_err();
    match &err {
        LarderError::Sign(SignError::MalformedKey { path, line, .. }) => {
            assert_eq!(
                (path.as_str(), *line),
                (&*key_path.display().to_string(), 2)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        a.log(LOG).unwrap().wal().head().unwrap().is_none(),
        "nothing written"
    );
    std::fs::remove_file(&key_path).unwrap();

    std::fs::write(a.trust_file(), "# trusted\nalice ed25519:00\n").unwrap();
    let err = a
        .sync(LOG, &top.path().join("nowhere").display().to_string())
        .err();
    // Remote resolution may fail first; the policy error shows on a real remote.
    drop(err);
    let remote = top.path().join("r.git");
    Larder::init_bare(&remote).unwrap();
    match a.sync(LOG, &remote.display().to_string()) {
        Err(LarderError::Sign(SignError::BadPolicyLine { path, line, .. })) => {
            assert_eq!((path, line), (a.trust_file().display().to_string(), 2));
        }
        other => panic!("{other:?}"),
    }
    match a.trust_policy() {
        Err(e) => assert!(
            e.to_string()
                .starts_with(&format!("trust policy {}:2: ", a.trust_file().display())),
            "{e}"
        ),
        Ok(_) => panic!("accepted"),
    }
    git(
        a.repo().git_dir(),
        &["config", "larder.requireSignatures", "maybe"],
    );
    std::fs::remove_file(a.trust_file()).unwrap();
    let a = Larder::open(a.repo().git_dir()).unwrap();
    assert!(matches!(a.trust_policy(), Err(LarderError::Config { .. })));
}

#[test]
fn a_configured_signing_key_is_used_and_must_exist() {
    let top = tempfile::tempdir().unwrap();
    let a = replica(top.path(), "alice", None);
    git(
        a.repo().git_dir(),
        &["config", "larder.signingKey", "my.key"],
    );
    let a = Larder::open(a.repo().git_dir())
        .unwrap()
        .with_actor(ActorId::new("alice").unwrap());
    assert_eq!(
        a.signing_key_path().unwrap(),
        a.repo().git_dir().join("my.key")
    );
    assert!(matches!(
        a.log(LOG).unwrap().append("note", &"x"),
        Err(LarderError::Sign(SignError::Io { .. }))
    ));
    key(7).save_new(&a.signing_key_path().unwrap()).unwrap();
    a.log(LOG).unwrap().append("note", &"x").unwrap();
    let events = a.log(LOG).unwrap().events().unwrap();
    let mut policy = larder::sign::TrustPolicy::new().require_signatures(true);
    policy.trust(ActorId::new("alice").unwrap(), key(7).public_key());
    assert_eq!(policy.check(&events[0]), Ok(Some(key(7).public_key())));
}
