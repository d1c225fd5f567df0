//! A log both signed and encrypted: appends seal the payload, then sign the
//! event id of the sealed event — so a strict replica without the log key
//! still verifies every signature, merges the events and sees them as
//! encrypted, and a replica with the key reads the plaintext.

use larder::codec::ActorId;
use larder::sign::SigningKey;
use larder::{Data, Larder};
use larder_testkit::git;

#[test]
fn a_strict_replica_without_the_log_key_verifies_and_merges_sealed_events() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    Larder::init_bare(&remote).unwrap();
    let remote = remote.display().to_string();
    let open = |name: &str| {
        Larder::init(top.path().join(name))
            .unwrap()
            .with_actor(ActorId::new(name).unwrap())
    };
    let alice = open("alice");
    let key = SigningKey::from_seed([9; 32]);
    key.save_new(&alice.signing_key_path().unwrap()).unwrap();
    let log = alice.log("secret").unwrap();
    log.crypt_init().unwrap();
    log.append("note", &"the launch code").unwrap();
    alice.sync("secret", &remote).unwrap().push().unwrap();

    // bob requires signatures and trusts alice's key, but has no log key.
    let bob = open("bob");
    bob.trust(&ActorId::new("alice").unwrap(), &key.public_key())
        .unwrap();
    git(
        bob.repo().git_dir(),
        &["config", "larder.requireSignatures", "true"],
    );
    let bob = Larder::open(bob.repo().git_dir())
        .unwrap()
        .with_actor(ActorId::new("bob").unwrap());
    let report = bob.sync("secret", &remote).unwrap().pull().unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.events_received, 1);
    let events = bob.log("secret").unwrap().read().unwrap();
    assert!(matches!(events[0].data, Data::Encrypted { .. }));
    let verified = bob.verify_signatures("secret").unwrap();
    assert_eq!(verified.verified, 1);
    assert!(verified.problems.is_empty());

    // carol imports the log key and reads the plaintext.
    let carol = open("carol");
    carol.sync("secret", &remote).unwrap().pull().unwrap();
    let carol_log = carol.log("secret").unwrap();
    carol_log.import_key(&log.export_key().unwrap()).unwrap();
    match &carol_log.read().unwrap()[0].data {
        Data::Plain(p) => assert_eq!(p.deserialize::<String>().unwrap(), "the launch code"),
        other => panic!("expected plaintext, got {other:?}"),
    }
}
