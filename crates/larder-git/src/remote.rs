//! Remote resolution: what a user's "remote" names and how it is reached.
//!
//! One resolver for every command that takes a remote (sync, pull, push,
//! locks), following git's rules:
//!
//! 1. A name with `remote.<name>.url` in the repository's git config is
//!    that URL (git-config names first, as `git fetch origin`).
//! 2. `<scheme>://…` is a URL: `file://` is a path; `ssh://` (also
//!    `git+ssh://`, `ssh+git://`), `git://`, `http://` and `https://` are
//!    network remotes; any other scheme is refused.
//! 3. Otherwise a `:` before any `/` makes it scp-style ssh
//!    (`user@host:path`, `host:path`), as git's `url_is_local_not_ssh` —
//!    except a drive prefix (`C:\…`, `C:/…`), which is a path.
//! 4. Everything else is a path. A relative path resolves as git resolves
//!    it: from the top of the work tree when the repository was found from
//!    inside it, else from the directory it was opened from (for the CLI,
//!    the `-C` directory) — never from an unrelated process directory.

use std::path::{Component, Path, PathBuf};

use crate::{GitError, GitRepo, Result};

/// Whether this build fetches `http://` and `https://` remotes with gix's
/// own client (the `https` cargo feature). Pushes and locks over http go
/// through the `git` binary and need no feature.
pub const HTTP_FETCH: bool = cfg!(feature = "https");

/// The network protocols larder speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkScheme {
    /// `ssh://…` or scp-style `user@host:path`: the `ssh` program (or
    /// `GIT_SSH_COMMAND`, `core.sshCommand`, `GIT_SSH`).
    Ssh,
    /// `git://…`: a git daemon, plain TCP.
    Git,
    /// `http://…`: git's smart HTTP protocol.
    Http,
    /// `https://…`: smart HTTP over TLS.
    Https,
}

impl NetworkScheme {
    /// Whether fetching needs the `https` cargo feature (gix's HTTP client).
    pub fn needs_http_client(self) -> bool {
        matches!(self, NetworkScheme::Http | NetworkScheme::Https)
    }
}

/// Where a remote lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteLocation {
    /// A repository on this machine's file system (a path or `file://`
    /// URL), made absolute and lexically normalised (`..` removed, no
    /// symlinks resolved). It may not exist.
    Local(PathBuf),
    /// A repository reached over the network.
    Network {
        /// The URL as given or configured.
        url: String,
        /// Its protocol.
        scheme: NetworkScheme,
    },
}

/// A remote as resolved from what the caller named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRemote {
    /// What the caller gave: a config name, a path or a URL.
    pub given: String,
    /// The git-config remote name, when `given` was one.
    pub name: Option<String>,
    /// The URL or path, as configured (for a name) or given.
    pub url: String,
    /// Where it lives.
    pub location: RemoteLocation,
}

impl ResolvedRemote {
    /// A stable text for the remote's location: the absolute path of a
    /// local remote, the URL of a network one. Two spellings of one path
    /// (`../r.git`, `/srv/r.git`, `file:///srv/r.git`) give the same key.
    pub fn key(&self) -> String {
        match &self.location {
            RemoteLocation::Local(path) => path.display().to_string(),
            RemoteLocation::Network { url, .. } => url.clone(),
        }
    }

    /// Opens a local remote's repository the way `git upload-pack` finds
    /// one: the path, else the path with `.git` appended. A path that holds
    /// no repository is [`GitError::RemoteNotFound`]; `known` lists the
    /// configured remotes to name in that error when `given` could have
    /// been meant as one of them (no `/`, not a configured name).
    pub fn open_local(&self, known: &[String]) -> Result<GitRepo> {
        let RemoteLocation::Local(path) = &self.location else {
            return Err(GitError::UnsupportedRemote {
                remote: self.given.clone(),
                reason: format!("{} is a network URL, not a path", self.url),
            });
        };
        if let Ok(repo) = GitRepo::open(path) {
            return Ok(repo);
        }
        let mut with_suffix = path.as_os_str().to_owned();
        with_suffix.push(".git");
        if !path.exists()
            && let Ok(repo) = GitRepo::open(Path::new(&with_suffix))
        {
            return Ok(repo);
        }
        let could_be_a_name = self.name.is_none() && !self.given.contains(['/', '\\']);
        Err(GitError::RemoteNotFound {
            remote: self.given.clone(),
            path: path.display().to_string(),
            known: if could_be_a_name {
                if known.is_empty() {
                    vec!["none".into()]
                } else {
                    known.to_vec()
                }
            } else {
                Vec::new()
            },
        })
    }
}

impl GitRepo {
    /// Resolves `remote` — a git-config remote name, a path or a URL — by
    /// git's rules (see the [module docs](self)). Nothing is opened or
    /// contacted: a local remote is only named here
    /// ([`ResolvedRemote::open_local`] opens it).
    pub fn resolve_remote(&self, remote: &str) -> Result<ResolvedRemote> {
        if remote.trim().is_empty() {
            return Err(GitError::UnsupportedRemote {
                remote: remote.into(),
                reason: "empty remote; give a remote name, a path or a URL".into(),
            });
        }
        let configured = self.configured_remote_url(remote);
        let (name, url) = match configured {
            Some(url) => (Some(remote.to_owned()), url),
            None => (None, remote.to_owned()),
        };
        let location =
            classify(&url, self.base_dir()).map_err(|reason| GitError::UnsupportedRemote {
                remote: remote.into(),
                reason,
            })?;
        Ok(ResolvedRemote {
            given: remote.into(),
            name,
            url,
            location,
        })
    }

    /// `remote.<name>.url` from the repository's git config.
    pub fn configured_remote_url(&self, name: &str) -> Option<String> {
        if name.contains(['\n', '"', '\\']) {
            return None;
        }
        self.gix()
            .config_snapshot()
            .string(format!("remote.{name}.url").as_str())
            .map(|u| u.to_string())
    }

    /// The names of the remotes in the repository's git config.
    pub fn configured_remotes(&self) -> Vec<String> {
        self.gix()
            .remote_names()
            .into_iter()
            .map(|n| n.to_string())
            .collect()
    }
}

/// Classifies `url` by git's rules; relative paths resolve against `base`.
/// The error is the reason, for [`GitError::UnsupportedRemote`].
pub fn classify(url: &str, base: &Path) -> std::result::Result<RemoteLocation, String> {
    if let Some((scheme, rest)) = url_scheme(url) {
        let network = |scheme| {
            Ok(RemoteLocation::Network {
                url: url.to_owned(),
                scheme,
            })
        };
        return match scheme.to_ascii_lowercase().as_str() {
            "file" => Ok(RemoteLocation::Local(resolve_path(
                Path::new(file_url_path(rest)),
                base,
            ))),
            "ssh" | "git+ssh" | "ssh+git" => network(NetworkScheme::Ssh),
            "git" => network(NetworkScheme::Git),
            "http" => network(NetworkScheme::Http),
            "https" => network(NetworkScheme::Https),
            other => Err(format!(
                "unsupported transport {other}://; use a path, file://, ssh://, user@host:path, git://, http:// or https://"
            )),
        };
    }
    if is_local_not_ssh(url) {
        return Ok(RemoteLocation::Local(resolve_path(Path::new(url), base)));
    }
    Ok(RemoteLocation::Network {
        url: url.to_owned(),
        scheme: NetworkScheme::Ssh,
    })
}

/// `Some((scheme, rest))` when `url` is `<scheme>://rest` and the scheme
/// is made of letters, digits, `+`, `-` and `.` only (git's `is_url`).
fn url_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// The path of a `file://` URL's remainder: `/abs` stays, `localhost/abs`
/// drops the host, anything else is taken as written (git does the same).
fn file_url_path(rest: &str) -> &str {
    rest.strip_prefix("localhost/")
        .map(|_| &rest["localhost".len()..])
        .unwrap_or(rest)
}

/// git's `url_is_local_not_ssh`: no `:`, or a `/` before the first `:`,
/// or a drive prefix (`C:\`, `C:/`).
fn is_local_not_ssh(url: &str) -> bool {
    let Some(colon) = url.find(':') else {
        return true;
    };
    if url.find('/').is_some_and(|slash| slash < colon) {
        return true;
    }
    let bytes = url.as_bytes();
    colon == 1 && bytes[0].is_ascii_alphabetic() && matches!(bytes.get(2), Some(b'\\' | b'/'))
}

/// `path` against `base` when relative, with `.` and `..` removed
/// lexically.
fn resolve_path(path: &Path, base: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(part);
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(url: &str) -> PathBuf {
        match classify(url, Path::new("/base/dir")) {
            Ok(RemoteLocation::Local(p)) => p,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn net(url: &str) -> NetworkScheme {
        match classify(url, Path::new("/base/dir")) {
            Ok(RemoteLocation::Network { scheme, .. }) => scheme,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn paths_resolve_against_the_base() {
        assert_eq!(local("../r.git"), PathBuf::from("/base/r.git"));
        assert_eq!(local("r.git"), PathBuf::from("/base/dir/r.git"));
        assert_eq!(local("./a:b"), PathBuf::from("/base/dir/a:b"));
        assert_eq!(local("/srv/x/../r.git"), PathBuf::from("/srv/r.git"));
        assert_eq!(local("file:///srv/r.git"), PathBuf::from("/srv/r.git"));
        assert_eq!(
            local("file://localhost/srv/r.git"),
            PathBuf::from("/srv/r.git")
        );
        assert_eq!(local("FILE:///srv/r.git"), PathBuf::from("/srv/r.git"));
        assert_eq!(local("sub/dir:x"), PathBuf::from("/base/dir/sub/dir:x"));
        assert_eq!(
            local("C:\\repos\\r.git"),
            PathBuf::from("/base/dir/C:\\repos\\r.git")
        );
        assert_eq!(
            local("C:/repos/r.git"),
            PathBuf::from("/base/dir/C:/repos/r.git")
        );
    }

    #[test]
    fn network_forms() {
        assert_eq!(net("git@host:org/r.git"), NetworkScheme::Ssh);
        assert_eq!(net("host:r.git"), NetworkScheme::Ssh);
        assert_eq!(net("host:/abs/r.git"), NetworkScheme::Ssh);
        assert_eq!(net("ssh://git@host:22/r.git"), NetworkScheme::Ssh);
        assert_eq!(net("git+ssh://host/r.git"), NetworkScheme::Ssh);
        assert_eq!(net("git://127.0.0.1:9418/r.git"), NetworkScheme::Git);
        assert_eq!(net("http://127.0.0.1:8080/r.git"), NetworkScheme::Http);
        assert_eq!(net("https://example.com/r.git"), NetworkScheme::Https);
    }

    #[test]
    fn unknown_schemes_are_refused() {
        let err = classify("ftp://host/r.git", Path::new("/")).unwrap_err();
        assert!(err.contains("ftp://"), "{err}");
        // Not a scheme (a `/` inside it): a path.
        assert_eq!(local("./x://y"), PathBuf::from("/base/dir/x:/y"));
    }
}
