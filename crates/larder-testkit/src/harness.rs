//! Test binaries (`harness = false`) that re-execute themselves as child
//! processes: one build serves the parent and every child, and a child's
//! role travels in an environment variable.

use std::process::Command;

/// The role this process was started in (`None` in the parent).
pub fn role(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// A command re-executing this test binary in `role`.
pub fn child(var: &str, role: &str) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's own path: {e}"));
    let mut cmd = Command::new(exe);
    cmd.env(var, role);
    cmd
}

/// Runs `tests` in order, printing libtest-style lines (`test <name> ...
/// ok`, then `N passed, 0 failed`) so CI reads the result like any other
/// test binary's; a failing test prints `FAILED` and exits with 101.
pub fn run_tests(tests: &[(&str, fn())]) {
    let mut failed = 0;
    for (name, test) in tests {
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("\n{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(101);
    }
}
