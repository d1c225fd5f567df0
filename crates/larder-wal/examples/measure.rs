//! The measurements `cargo xtask bench` reports that are not timings, each
//! printed as one `<id> <bytes>` line:
//!
//! - `measure/compact_2000_single_appends_bytes`: bytes under `objects/`
//!   after 2,000 single-event appends (100-byte payloads) and `compact()`;
//! - `measure/read_1m_events_peak_rss`: peak resident memory (VmHWM) of a
//!   process that streams and verifies a 1M-event log (1,000-event commits).
//!
//! ```text
//! cargo run --release -p larder-wal --example measure            # both
//! cargo run --release -p larder-wal --example measure -- disk    # one
//! cargo run --release -p larder-wal --example measure -- rss
//! ```

use std::path::Path;

use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_git::GitRepo;
use larder_wal::WalManager;

fn event(
    actor: &ActorId,
    n: u64,
    payload_len: usize,
) -> Result<Envelope, Box<dyn std::error::Error>> {
    let prefix = format!("{n:08}-");
    let body = format!(
        "{prefix}{}",
        "x".repeat(payload_len.saturating_sub(prefix.len()))
    );
    Ok(Envelope::new(
        actor.clone(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "measure",
        Payload::from_serde(&body)?,
    )?)
}

/// Every byte of every file under `dir`.
fn bytes_under(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            bytes_under(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// A temporary directory under `$LARDER_BENCH_DIR` (what `cargo xtask
/// bench --dir` sets), else the system's.
fn scratch() -> std::io::Result<tempfile::TempDir> {
    match std::env::var_os("LARDER_BENCH_DIR") {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            tempfile::tempdir_in(dir)
        }
        None => tempfile::tempdir(),
    }
}

fn disk() -> Result<(), Box<dyn std::error::Error>> {
    let dir = scratch()?;
    let wal = WalManager::new(GitRepo::init_bare(dir.path())?, "measure")?;
    let actor = ActorId::new("actor-0")?;
    for n in 0..2_000 {
        wal.append(&[event(&actor, n, 100)?])?;
    }
    wal.compact()?;
    let bytes = bytes_under(&dir.path().join("objects"))?;
    println!("measure/compact_2000_single_appends_bytes {bytes}");
    Ok(())
}

fn rss() -> Result<(), Box<dyn std::error::Error>> {
    let dir = scratch()?;
    {
        let wal = WalManager::new(GitRepo::init_bare(dir.path())?, "measure")?;
        let actor = ActorId::new("actor-0")?;
        for c in 0..1_000u64 {
            let batch: Vec<Envelope> = (c * 1_000..(c + 1) * 1_000)
                .map(|n| event(&actor, n, 100))
                .collect::<Result<_, _>>()?;
            wal.append(&batch)?;
        }
        wal.compact()?;
    }
    // A fresh process reads, so the peak is the read's alone.
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("read")
        .arg(dir.path())
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

fn read(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let wal = WalManager::new(GitRepo::open(dir)?, "measure")?;
    let mut events = 0u64;
    for event in wal.events_since(None)? {
        event?;
        events += 1;
    }
    if events != 1_000_000 {
        return Err(format!("read {events} events, expected 1,000,000").into());
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    println!("measure/read_1m_events_peak_rss {}", kb * 1024);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {
            disk()?;
            rss()
        }
        Some("disk") => disk(),
        Some("rss") => rss(),
        Some("read") => read(Path::new(args.get(1).ok_or("read DIR")?)),
        Some(other) => Err(format!("unknown measurement {other:?}: disk | rss").into()),
    }
}
