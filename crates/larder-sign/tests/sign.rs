//! Keys, signatures and the trust policy, without git.

use std::path::Path;

use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_sign::{PublicKey, SignError, SignatureProblem, SigningKey, TrustPolicy};

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

fn event(actor: &str, n: u64) -> Envelope {
    Envelope::new(
        ActorId::new(actor).unwrap(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "note",
        Payload::from_serde(&n).unwrap(),
    )
    .unwrap()
}

fn policy(entries: &[(&str, &SigningKey)], required: bool) -> TrustPolicy {
    let mut p = TrustPolicy::new().require_signatures(required);
    for (actor, k) in entries {
        p.trust(ActorId::new(*actor).unwrap(), k.public_key());
    }
    p
}

#[test]
fn public_keys_round_trip_through_text() {
    let pk = key(1).public_key();
    let text = pk.to_string();
    assert!(
        text.starts_with("ed25519:") && text.len() == 8 + 64,
        "{text}"
    );
    assert_eq!(text.parse::<PublicKey>().unwrap(), pk);
    assert_eq!(text["ed25519:".len()..].parse::<PublicKey>().unwrap(), pk);
    assert_eq!(
        text.to_uppercase()
            .replace("ED25519:", "ed25519:")
            .parse::<PublicKey>()
            .unwrap(),
        pk
    );
    for bad in [
        "",
        "ed25519:",
        "ed25519:zz",
        &text[..text.len() - 2],
        &format!("{text}00"),
    ] {
        assert!(
            matches!(
                bad.parse::<PublicKey>(),
                Err(SignError::BadPublicKey { .. })
            ),
            "{bad:?}"
        );
    }
    // The identity point: small order, refused.
    let weak = format!("ed25519:01{}", "00".repeat(31));
    assert!(weak.parse::<PublicKey>().is_err());
}

#[test]
fn the_check_follows_the_table() {
    let (alice, mallory) = (key(1), key(2));
    let signed = alice.sign(event("alice", 1));
    let unsigned = event("alice", 2);
    assert_eq!(
        signed.id(),
        event("alice", 1).id(),
        "the id does not cover the signature"
    );

    let strict = policy(&[("alice", &alice)], true);
    assert_eq!(strict.check(&signed), Ok(Some(alice.public_key())));
    assert!(matches!(
        strict.check(&unsigned),
        Err(SignatureProblem::Unsigned { .. })
    ));
    let by_mallory = mallory.sign(event("alice", 3));
    assert!(matches!(
        strict.check(&by_mallory),
        Err(SignatureProblem::UntrustedKey { .. })
    ));
    let bob = alice.sign(event("bob", 4));
    assert!(matches!(
        strict.check(&bob),
        Err(SignatureProblem::UntrustedActor { .. })
    ));
    let mut flipped = alice.signature_for(event("alice", 5).id());
    flipped[20] ^= 1;
    let forged = event("alice", 5).with_signature(flipped);
    let problem = strict.check(&forged).unwrap_err();
    assert!(
        matches!(problem, SignatureProblem::BadSignature { .. }),
        "{problem}"
    );
    assert_eq!(problem.kind(), "bad-signature");
    // A signature moved to another event does not verify either.
    let moved = event("alice", 6).with_signature(alice.signature_for(event("alice", 7).id()));
    assert!(matches!(
        strict.check(&moved),
        Err(SignatureProblem::BadSignature { .. })
    ));
    let junk = event("alice", 8).with_signature(vec![0xde, 0xad]);
    assert!(matches!(
        strict.check(&junk),
        Err(SignatureProblem::Malformed { .. })
    ));

    let lax = policy(&[("alice", &alice)], false);
    assert_eq!(lax.check(&unsigned), Ok(None));
    assert_eq!(lax.check(&by_mallory), Ok(None));
    assert_eq!(lax.check(&bob), Ok(None));
    assert_eq!(lax.check(&junk), Ok(None));
    assert!(matches!(
        lax.check(&forged),
        Err(SignatureProblem::BadSignature { .. })
    ));
    assert!(!TrustPolicy::new().is_active());
}

#[test]
fn several_keys_per_actor_are_all_accepted() {
    let (old, new) = (key(1), key(3));
    let p = policy(&[("alice", &old), ("alice", &new)], true);
    assert_eq!(
        p.check(&old.sign(event("alice", 1))),
        Ok(Some(old.public_key()))
    );
    assert_eq!(
        p.check(&new.sign(event("alice", 2))),
        Ok(Some(new.public_key()))
    );
}

#[test]
fn policy_files_name_the_bad_line() {
    let path = Path::new("/srv/trust");
    let good = key(1).public_key();
    let text = format!("# comment\n\nalice {good}\nbob {good} extra\n");
    let err = TrustPolicy::parse(&text, path).unwrap_err();
    assert!(
        matches!(err, SignError::BadPolicyLine { line: 4, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("trust policy /srv/trust:4: "),
        "{err}"
    );
    for (text, line) in [
        (format!("alice {good}\n-bad {good}\n"), 2),
        ("alice ed25519:1234\n".to_string(), 1),
        ("alice\n".to_string(), 1),
    ] {
        match TrustPolicy::parse(&text, path) {
            Err(SignError::BadPolicyLine {
                line: l, path: p, ..
            }) => {
                assert_eq!((l, p.as_str()), (line, "/srv/trust"), "{text}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let p = TrustPolicy::parse(
        &format!("alice {good}\n  # indented comment\nbob\t{good}\n"),
        path,
    )
    .unwrap();
    assert_eq!(p.entries().len(), 2);
    assert_eq!(p.entries()[1].line, 3);
}

#[test]
fn policy_files_are_edited_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("larder/trust");
    let alice = ActorId::new("alice").unwrap();
    let (k1, k2) = (key(1).public_key(), key(2).public_key());
    assert!(TrustPolicy::add_to_file(&path, &alice, &k1).unwrap());
    assert!(!TrustPolicy::add_to_file(&path, &alice, &k1).unwrap());
    std::fs::write(
        &path,
        format!("# keep me\n{}", std::fs::read_to_string(&path).unwrap()),
    )
    .unwrap();
    assert!(TrustPolicy::add_to_file(&path, &alice, &k2).unwrap());
    assert_eq!(
        TrustPolicy::load(&path).unwrap().keys_for("alice").count(),
        2
    );
    assert_eq!(
        TrustPolicy::remove_from_file(&path, &alice, Some(&k1)).unwrap(),
        1
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("# keep me\nalice {k2}\n"));
    assert_eq!(
        TrustPolicy::remove_from_file(&path, &alice, None).unwrap(),
        1
    );
    assert!(TrustPolicy::load(&path).unwrap().entries().is_empty());
    // A missing file is an empty policy.
    assert!(
        TrustPolicy::load(&dir.path().join("none"))
            .unwrap()
            .entries()
            .is_empty()
    );
}

#[test]
fn key_files_are_private_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/alice");
    let k = key(9);
    k.save_new(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let loaded = SigningKey::load(&path).unwrap();
    assert_eq!(loaded.public_key(), k.public_key());
    assert!(matches!(
        key(10).save_new(&path),
        Err(SignError::KeyExists { .. })
    ));
    assert_eq!(
        SigningKey::load(&path).unwrap().public_key(),
        k.public_key()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SigningKey::load(&path),
            Err(SignError::KeyPermissions { mode: 0o644, .. })
        ));
    }
    let p = Path::new("/k");
    for (text, line) in [
        ("# only a comment\n", 1),
        ("# c\nssh-ed25519 AAAA\n", 2),
        ("ed25519-secret:00\n", 1),
        (
            &*format!("{}ed25519-secret:{}\n", k.to_file_text(), "11".repeat(32)),
            4,
        ),
        ("", 1),
    ] {
        match SigningKey::parse(text, p) {
            Err(SignError::MalformedKey { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert!(
        SigningKey::generate().unwrap().public_key()
            != SigningKey::generate().unwrap().public_key()
    );
}
