//! Temporary repositories, made by the `git` binary so no larder code is
//! trusted to set up the scene it is tested in.

use std::path::Path;

use crate::git;

/// An empty temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"))
}

/// The environment variable naming the directory benches keep their
/// repositories in (see [`bench_tempdir`]).
pub const BENCH_DIR_VAR: &str = "LARDER_BENCH_DIR";

/// An empty temporary directory for a bench's repositories: under
/// `$LARDER_BENCH_DIR/<name>` when that variable is set (`cargo xtask bench
/// --dir`), else under `<default_base>/<name>` — a bench passes cargo's
/// `CARGO_TARGET_TMPDIR`, so nothing lands in `/tmp`. Which file system a
/// bench writes to decides much of what a write costs, so it is a choice
/// of whoever measures, not of the bench.
pub fn bench_tempdir(default_base: &str, name: &str) -> tempfile::TempDir {
    let base = std::env::var_os(BENCH_DIR_VAR)
        .map_or_else(|| Path::new(default_base).to_path_buf(), Into::into)
        .join(name);
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    tempfile::tempdir_in(&base).unwrap_or_else(|e| panic!("{}: {e}", base.display()))
}

/// A temporary bare repository (a remote), made by `git init --bare`.
pub fn bare_repo() -> tempfile::TempDir {
    let dir = tempdir();
    git(dir.path(), &["init", "--quiet", "--bare"]);
    dir
}

/// A temporary repository with a work tree, made by `git init`.
pub fn work_repo() -> tempfile::TempDir {
    let dir = tempdir();
    git(dir.path(), &["init", "--quiet"]);
    dir
}

/// `git fsck --full --strict` on `dir` must pass.
pub fn assert_fsck(dir: &Path) {
    git(dir, &["fsck", "--full", "--strict"]);
}

/// `git count-objects -v` of the repository at `dir` as (loose objects,
/// packs): how tests check that writers leave packs, not loose files.
pub fn count_objects(dir: &Path) -> (usize, usize) {
    let out = git(dir, &["count-objects", "-v"]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("git count-objects -v printed no {name} line: {out}"))
    };
    (field("count:"), field("packs:"))
}

/// Every file under `dir`, sorted: compare before and after an operation
/// to prove it wrote nothing.
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap_or_else(|e| panic!("{}: {e}", d.display())).path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
