//! Real network remotes on loopback: `git daemon` for `git://`, and the
//! free-port and readiness helpers the other servers share.
//!
//! Readiness is an event, not a delay: a server counts as up once a TCP
//! connect to its port succeeds, polled a bounded number of times.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A loopback port nothing listens on right now: bind port 0, read the
/// port, drop the listener. (Another process may take it before the
/// caller does; [`GitDaemon::start`] retries with a new port then.)
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("the bound port: {e}"))
        .port()
}

/// Polls a TCP connect to `127.0.0.1:port` up to `tries` times, 20 ms
/// apart; true once one succeeds. `alive` is asked between tries, so a
/// server that died is noticed at once instead of after every try.
pub fn wait_for_port(port: u16, tries: u32, mut alive: impl FnMut() -> bool) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..tries {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if !alive() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `git daemon` serving every repository under `base` on a loopback port,
/// pushes enabled (`--enable=receive-pack`). Killed when dropped.
pub struct GitDaemon {
    child: Child,
    port: u16,
    base: PathBuf,
}

impl GitDaemon {
    /// Starts the daemon and returns once it accepts connections (at most
    /// 500 polls of its port per attempt, 5 attempts on fresh ports).
    pub fn start(base: &Path) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("git")
                .arg("daemon")
                .arg("--reuseaddr")
                .arg(format!("--base-path={}", base.display()))
                .arg("--export-all")
                .arg("--enable=receive-pack")
                .arg("--informative-errors")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(base)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting git daemon: {e}"));
            let ready = wait_for_port(port, 500, || matches!(child.try_wait(), Ok(None)));
            if ready {
                return Self {
                    child,
                    port,
                    base: base.to_path_buf(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("git daemon did not start on any of 5 loopback ports");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `git://` URL of `repo`, a directory under the base.
    pub fn url(&self, repo: &Path) -> String {
        let relative = repo.strip_prefix(&self.base).unwrap_or(repo);
        format!("git://127.0.0.1:{}/{}", self.port, relative.display())
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in for `ssh`, for `GIT_SSH_COMMAND` / `core.sshCommand`: it
/// drops the options and the host and runs the remote command (the rest of
/// its arguments, e.g. `git-upload-pack '/srv/r.git'`) here with `sh -c`. It
/// answers `-G` (the OpenSSH probe git and gix run) with success, so both
/// pass OpenSSH's arguments. Written into `dir`; returns its path.
pub fn fake_ssh(dir: &Path) -> PathBuf {
    write_script(
        dir,
        "fake-ssh",
        "#!/bin/sh\n\
         # larder test stand-in for ssh: skip the options and the host, run\n\
         # the remote command (one argument from git, several from gix) here.\n\
         if [ \"$1\" = -G ]; then exit 0; fi\n\
         while [ $# -gt 0 ]; do\n\
           case \"$1\" in\n\
             -o|-p|-i|-l|-F|-J) shift 2 ;;\n\
             -*) shift ;;\n\
             *) break ;;\n\
           esac\n\
         done\n\
         shift\n\
         exec sh -c \"$*\"\n",
    )
}

/// An `ssh` that always fails as an unreachable host does (exit 255,
/// `Connection refused` on stderr). Written into `dir`; returns its path.
pub fn failing_ssh(dir: &Path) -> PathBuf {
    write_script(
        dir,
        "failing-ssh",
        "#!/bin/sh\n\
         if [ \"$1\" = -G ]; then exit 0; fi\n\
         echo 'ssh: connect to host nowhere.invalid port 22: Connection refused' >&2\n\
         exit 255\n",
    )
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    path
}
