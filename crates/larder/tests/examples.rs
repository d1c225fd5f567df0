//! Every facade example runs to its end: each is compiled here as a module
//! and its `main` called, so an example that no longer matches the library
//! (a format change, a renamed call) fails the tests, not a reader.

#[path = "../examples/audit_log.rs"]
mod audit_log;
#[path = "../examples/issue_tracker.rs"]
mod issue_tracker;
#[path = "../examples/kv.rs"]
mod kv;
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[test]
fn audit_log_detects_the_tampering() {
    audit_log::main().unwrap();
}

#[test]
fn issue_tracker_replicas_agree() {
    issue_tracker::main().unwrap();
}

#[test]
fn kv_example_runs() {
    kv::main().unwrap();
}

#[test]
fn quickstart_runs() {
    quickstart::main().unwrap();
}
