//! The `git` binary as the oracle: what larder writes, plain git must read.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `git -C <dir> <args>` isolated from the machine's and user's config
/// (a fixed identity for commits and tags), without checking the result.
pub fn git_output(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "larder test")
        .env("GIT_AUTHOR_EMAIL", "test@larder.invalid")
        .env("GIT_COMMITTER_NAME", "larder test")
        .env("GIT_COMMITTER_EMAIL", "test@larder.invalid")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("the git binary runs: {e}"));
    if let Some(bytes) = stdin
        && let Some(mut input) = child.stdin.take()
    {
        input
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("git {args:?}: writing stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"))
}

/// Runs git (see [`git_output`]), asserts success, and returns its stdout
/// with surrounding whitespace trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_with_stdin(dir, args, None)
}

/// [`git`] with `stdin` fed to the command.
pub fn git_with_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = git_output(dir, args, stdin);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
