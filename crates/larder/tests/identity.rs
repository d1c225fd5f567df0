//! Identity you can see and set: explicit, `LARDER_ACTOR`, `git config
//! larder.actor`, the actor file; a copied clone gets a fresh actor.
//!
//! Environment variables are process-wide, so the one test that sets
//! `LARDER_ACTOR` runs its cases in sequence inside one test function.

use larder::codec::ActorId;
use larder::{ActorSource, Larder};
use larder_testkit::git;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let out = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn sources_in_order_explicit_env_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_actor = Larder::init(dir.path()).unwrap().actor().unwrap().clone();
    let source = |l: &Larder| l.actor_source().unwrap();
    // SAFETY (edition 2024 marks these unsafe): no other test in this binary
    // reads or writes LARDER_ACTOR.
    unsafe { std::env::remove_var(larder::ACTOR_ENV) };
    let l = Larder::open(dir.path()).unwrap();
    assert_eq!(
        (l.actor().unwrap(), source(&l)),
        (&file_actor, ActorSource::File)
    );

    git(dir.path(), &["config", "larder.actor", "from-config"]);
    let l = Larder::open(dir.path()).unwrap();
    assert_eq!(l.actor().unwrap().as_str(), "from-config");
    assert_eq!(source(&l), ActorSource::GitConfig);

    unsafe { std::env::set_var(larder::ACTOR_ENV, "from-env") };
    let l = Larder::open(dir.path()).unwrap();
    assert_eq!(l.actor().unwrap().as_str(), "from-env");
    assert_eq!(source(&l), ActorSource::Environment);

    let l = Larder::open(dir.path())
        .unwrap()
        .with_actor(ActorId::new("explicit").unwrap());
    assert_eq!(l.actor().unwrap().as_str(), "explicit");
    assert_eq!(source(&l), ActorSource::Explicit);
    // Events carry the chosen actor.
    l.log("n").unwrap().append("k", &1).unwrap();
    assert_eq!(
        l.log("n").unwrap().events().unwrap()[0].actor().as_str(),
        "explicit"
    );

    // A bad id from the environment is a typed error naming the variable.
    unsafe { std::env::set_var(larder::ACTOR_ENV, "x".repeat(100)) };
    let err = Larder::open(dir.path()).unwrap().actor().unwrap_err();
    assert!(err.to_string().contains(larder::ACTOR_ENV), "{err}");
    unsafe { std::env::remove_var(larder::ACTOR_ENV) };

    // A copied clone: warned about, and a fresh actor on its first write.
    git(dir.path(), &["config", "--unset", "larder.actor"]);
    let top = tempfile::tempdir().unwrap();
    let copy = top.path().join("copy");
    copy_dir(dir.path(), &copy);
    let c = Larder::open(&copy).unwrap();
    let original = std::fs::canonicalize(dir.path().join(".git")).unwrap();
    assert_eq!(c.copied_from().unwrap(), Some(original));
    assert_eq!(
        c.existing_actor().unwrap(),
        None,
        "the copied id is not ours"
    );
    let fresh = c.actor().unwrap().clone();
    assert_ne!(fresh, file_actor);
    assert_eq!(Larder::open(&copy).unwrap().copied_from().unwrap(), None);
    assert_eq!(Larder::open(&copy).unwrap().actor().unwrap(), &fresh);
    // The original keeps its id.
    assert_eq!(
        Larder::open(dir.path()).unwrap().actor().unwrap(),
        &file_actor
    );
}
