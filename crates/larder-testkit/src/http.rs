//! A loopback smart-HTTP git server: a std `TcpListener` thread that runs
//! `git http-backend` as a CGI program for every request (one request per
//! connection, `Connection: close`). Fetch and push both work; request
//! bodies may be sent with `Content-Length` or `Transfer-Encoding: chunked`
//! (git sends large pushes chunked), and gzip request bodies are passed to
//! the backend, which decodes them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// A running server; stopped (and its thread joined) when dropped.
pub struct HttpGitServer {
    port: u16,
    root: PathBuf,
    stop: Arc<AtomicBool>,
    chunked: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl HttpGitServer {
    /// Serves every repository under `root` (`GIT_PROJECT_ROOT`) on a
    /// loopback port. The listener is bound before this returns, so the
    /// server is ready at once.
    pub fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("binding a loopback port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the bound port: {e}"))
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let chunked = Arc::new(AtomicUsize::new(0));
        let (root_dir, flag, counter) = (root.to_path_buf(), stop.clone(), chunked.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, counter) = (root_dir.clone(), counter.clone());
                std::thread::spawn(move || {
                    // A client that hangs up mid-request is its own problem.
                    let _ = serve(stream, &root, &counter);
                });
            }
        });
        Self {
            port,
            root: root.to_path_buf(),
            stop,
            chunked,
            thread: Some(thread),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many requests so far came with a chunked body.
    pub fn chunked_requests(&self) -> usize {
        self.chunked.load(Ordering::SeqCst)
    }

    /// The `http://` URL of `repo`, a directory under the root.
    pub fn url(&self, repo: &Path) -> String {
        let relative = repo.strip_prefix(&self.root).unwrap_or(repo);
        format!("http://127.0.0.1:{}/{}", self.port, relative.display())
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: parse it, run the backend, send its answer.
fn serve(stream: TcpStream, root: &Path, chunked: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        chunked.fetch_add(1, Ordering::SeqCst);
        read_chunked(&mut reader)?
    } else {
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", "larder-test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(encoding) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(protocol) = header("git-protocol") {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    let mut child = cmd.spawn()?;
    // Feed the body from another thread: the backend may answer before it
    // has read everything.
    let feeder = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        })
    });
    let mut output = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_end(&mut output)?;
    }
    child.wait()?;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    respond(stream, &output)
}

/// Reads a `Transfer-Encoding: chunked` body.
fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

/// Turns the CGI output (headers, a blank line, the body) into an HTTP
/// response: `Status:` becomes the status line.
fn respond(mut stream: TcpStream, cgi: &[u8]) -> std::io::Result<()> {
    let (head, body) = split_cgi(cgi);
    let mut status = "200 OK".to_owned();
    let mut headers = String::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(s) = line.strip_prefix("Status:") {
            status = s.trim().to_owned();
        } else if !line.is_empty() {
            headers.push_str(line);
            headers.push_str("\r\n");
        }
    }
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

/// The CGI header block (as text) and the body after the first blank line.
fn split_cgi(cgi: &[u8]) -> (String, &[u8]) {
    for (i, w) in cgi.windows(2).enumerate() {
        if w == b"\n\n" {
            return (
                String::from_utf8_lossy(&cgi[..i]).into_owned(),
                &cgi[i + 2..],
            );
        }
        if w == b"\r\n" && cgi[i + 2..].starts_with(b"\r\n") {
            return (
                String::from_utf8_lossy(&cgi[..i]).into_owned(),
                &cgi[i + 4..],
            );
        }
    }
    (String::from_utf8_lossy(cgi).into_owned(), &[])
}
