//! [`Log`]: appends stamped with the replica's actor and hybrid logical
//! clock; [`ViewedLog`]: a log whose projection view follows every write;
//! [`Committed`]: what a write that reached its ref reports.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::codec::{self, Envelope, Payload};
use crate::crdt::{self, Clock, Hlc};
use crate::crypt::{self, Decryptor, KeyId, KeyStore, LogEvent, LogKey};
use crate::git::ObjectId;
use crate::identity::Identity;
use crate::{Larder, LarderError, Result, snapshot, sync, wal};

/// The hybrid logical clock shared by a [`Larder`] and its logs.
pub(crate) type SharedHlc = Arc<Mutex<Hlc<Arc<dyn Clock>>>>;

/// A write whose commit is on its ref: it happened, whatever
/// `after_commit` says. Retrying it would write it again.
///
/// `after_commit` holds what failed once the commit was in place — the
/// ref's fsync, the view refresh, the snapshot policy. The log is fine;
/// derived state catches up on the next refresh (or rebuild).
#[derive(Debug)]
#[must_use = "a write that reached its ref may still report a later failure"]
pub struct Committed<T> {
    /// The commit id (appends) or the sync report.
    pub value: T,
    /// The first failure after the commit, if any.
    pub after_commit: Option<LarderError>,
}

impl<T> Committed<T> {
    /// The value, logging (not returning) a failure after the commit.
    pub fn value(self) -> T {
        if let Some(e) = &self.after_commit {
            tracing::warn!(error = %e, "committed, then failed");
        }
        self.value
    }
}

/// One log, appending as this replica's actor with its clock.
pub struct Log {
    pub(crate) wal: wal::WalManager,
    pub(crate) identity: Arc<Identity>,
    pub(crate) keys: Arc<crate::signing::Keys>,
    pub(crate) clock: SharedHlc,
    /// This handle's copy of the clock cache (see [`Log::clock_file`]).
    pub(crate) clock_cache: Arc<std::sync::Mutex<ClockCache>>,
}

/// The clock cache as this handle last stored it, and how many appends
/// stored it since the file was last written. The file is written on a
/// handle's first append and then every [`CLOCK_FILE_EVERY`]th: it is only a
/// starting point (a stale one costs a reread of the commits after it), and
/// writing it on every append was one more file created per append.
#[derive(Debug, Default)]
pub(crate) struct ClockCache {
    entry: Option<(ObjectId, codec::Timestamp)>,
    unsaved: u32,
}

/// How many appends of one handle may pass between writes of the clock file.
const CLOCK_FILE_EVERY: u32 = 16;

impl Log {
    /// Appends one event of `kind` with any serde `data`; returns the commit.
    pub fn append<T: Serialize + ?Sized>(&self, kind: &str, data: &T) -> Result<ObjectId> {
        self.append_batch(&[(kind, Payload::from_serde(data)?)])
    }

    /// Appends several events as one batch (one chunk, one commit).
    ///
    /// When the actor has a signing key (`larder key generate`, or `git
    /// config larder.signingKey`), every event is signed; a key file that
    /// cannot be read fails the append before anything is written.
    ///
    /// Before stamping, the clock observes every event the log has gained
    /// since it last looked — whether it came from this handle, a sync, or
    /// another process — so a new event always sorts after every event the
    /// replica already holds (causality, whatever the wall clocks say).
    ///
    /// Once the commit is on the ref the call succeeds; a failure after
    /// that (the ref's fsync) is logged — [`Log::append_committed`]
    /// returns it instead.
    pub fn append_batch(&self, events: &[(&str, Payload)]) -> Result<ObjectId> {
        Ok(self.append_committed(events)?.value())
    }

    /// [`Log::append_batch`], reporting a failure after the commit in
    /// [`Committed::after_commit`].
    pub fn append_committed(&self, events: &[(&str, Payload)]) -> Result<Committed<ObjectId>> {
        let actor = self.identity.get()?;
        let signing = self.keys.for_actor(actor)?;
        let key = self.write_key()?;
        let mut envelopes = Vec::with_capacity(events.len());
        let observed_head;
        let last;
        {
            let mut clock = self
                .clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut saw_sealed = false;
            observed_head = self.observe_log(&mut clock, &mut saw_sealed)?;
            if saw_sealed && key.is_none() {
                return Err(self.key_missing_now());
            }
            for (kind, payload) in events {
                let ts = clock.now()?;
                // Sealed first, then signed: the signature covers the event
                // id, which is computed over the stored (sealed) payload,
                // so replicas without the log key verify it too.
                let payload = match &key {
                    Some(k) => crypt::seal(k, self.wal.log(), actor, ts, kind, payload)?,
                    None => payload.clone(),
                };
                let event = Envelope::new(actor.clone(), ts, *kind, payload)?;
                envelopes.push(match &signing {
                    Some(sk) => sk.sign(event),
                    None => event,
                });
            }
            last = clock.last();
        }
        let done = self.wal.append_committed(&envelopes)?;
        // Covered: everything up to the head observed before appending, and
        // this commit too when it sits right on that head (its events are
        // the clock's own) — so the next append reads nothing back, not even
        // the pack just written. Otherwise the next append reads from the
        // observed head (including this commit).
        if done.parent == observed_head {
            self.store_clock(done.commit, last);
        } else if let Some(head) = observed_head {
            self.store_clock(head, last);
        }
        Ok(Committed {
            value: done.commit,
            after_commit: done.after_commit.map(LarderError::from),
        })
    }

    /// `<git dir>/larder/<namespace>/<log>/clock`: the head the clock last
    /// observed and the clock's reading then.
    pub fn clock_file(&self) -> PathBuf {
        state_dir(&self.wal).join("clock")
    }

    /// Stores the clock cache in this handle, and in its file (atomically:
    /// temp file + rename) on the handle's first store and every
    /// [`CLOCK_FILE_EVERY`]th after. It is a cache: failing to write it
    /// costs the next append a reread, so the failure is a warning, never
    /// an error of the append.
    fn store_clock(&self, head: ObjectId, last: codec::Timestamp) {
        {
            let mut cache = self
                .clock_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let first = cache.entry.is_none();
            cache.entry = Some((head, last));
            cache.unsaved += 1;
            if !first && cache.unsaved < CLOCK_FILE_EVERY {
                return;
            }
            cache.unsaved = 0;
        }
        let path = self.clock_file();
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(&path);
            std::fs::create_dir_all(dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            let line = format!("{head} {} {}", last.millis, last.counter);
            std::io::Write::write_all(
                &mut tmp,
                format!("{line} {}\n", clock_checksum(&line)).as_bytes(),
            )?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the clock cache");
        }
    }

    /// The cached (head, clock reading), if the file holds one whose
    /// checksum matches: a changed byte (a lower clock reading would let new
    /// events sort before old ones) means "reread", like no cache at all.
    fn load_clock(&self) -> Option<(ObjectId, codec::Timestamp)> {
        if let Some(entry) = self
            .clock_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry
        {
            return Some(entry);
        }
        let text = std::fs::read_to_string(self.clock_file()).ok()?;
        let (line, sum) = text.trim_end().rsplit_once(' ')?;
        if sum != clock_checksum(line) {
            return None;
        }
        let mut parts = line.split(' ');
        let commit = ObjectId::from_hex(parts.next()?.as_bytes()).ok()?;
        let millis = parts.next()?.parse().ok()?;
        let counter = parts.next()?.parse().ok()?;
        Some((commit, codec::Timestamp::new(millis, counter)))
    }

    /// Moves `clock` past every event in the log that it has not seen yet
    /// and returns the head it covered. Timestamps beyond the clock's drift
    /// bound are not adopted (the drift guard), and do not block appends.
    ///
    /// The cache is only a starting point: a cached head that is no longer
    /// in the history, or that `git gc` pruned, means "read everything".
    /// Sets `saw_sealed` when an event it reads is sealed (the log is
    /// encrypted).
    fn observe_log(
        &self,
        clock: &mut Hlc<Arc<dyn Clock>>,
        saw_sealed: &mut bool,
    ) -> Result<Option<ObjectId>> {
        let Some(head) = self.wal.head()? else {
            return Ok(None);
        };
        let since = match self.load_clock() {
            Some((commit, ts)) => {
                let _ = clock.observe(ts, "clock cache");
                Some(commit)
            }
            None => None,
        };
        if since == Some(head) {
            return Ok(Some(head));
        }
        let repo = self.wal.repo();
        let commits = match since {
            Some(commit) => {
                match wal::commits_between(repo, head, Some(commit), self.wal.ref_name()) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(%commit, error = %e, "clock cache position unusable; rereading the log");
                        wal::commits_between(repo, head, None, self.wal.ref_name())?
                    }
                }
            }
            None => wal::commits_between(repo, head, None, self.wal.ref_name())?,
        };
        for commit in commits {
            for e in commit?.events {
                let _ = clock.observe(e.timestamp(), e.actor().as_str());
                *saw_sealed |= crypt::is_sealed(e.payload());
            }
        }
        Ok(Some(head))
    }

    /// Every event in the CRDT total order (the same on every replica).
    pub fn events(&self) -> Result<Vec<Envelope>> {
        let mut events = self.wal.read_all()?;
        crdt::sort_events(&mut events);
        Ok(events)
    }

    /// Folds every event, in the total order, into projection `P`.
    ///
    /// In an encrypted log, with the key, `P` sees each sealed event
    /// decrypted ([`Envelope::opened`]: the stored id, the plaintext
    /// payload); without the key it sees the sealed payloads as stored
    /// ([`crypt::is_sealed`] tells them apart). A wrong key is an error.
    pub fn project<P: crdt::Projection + Default>(&self) -> Result<P> {
        let decryptor = self.decryptor()?;
        let events = self
            .events()?
            .iter()
            .map(|e| decryptor.view(e))
            .collect::<Result<Vec<_>>>()?;
        let mut p = crdt::Projector::<P>::default();
        p.apply_all(&events)?;
        Ok(p.into_state())
    }

    /// Every event in the total order with its data as this replica reads
    /// it: plaintext (stored in the clear, or decrypted with the log key),
    /// or [`crypt::Data::Encrypted`] when the event is sealed and this replica
    /// has no key — never an error for lack of a key. With a key, an event
    /// sealed under another key is [`LarderError::WrongKey`] and one that
    /// fails authentication is [`LarderError::Decrypt`], both naming it.
    pub fn read(&self) -> Result<Vec<LogEvent>> {
        let decryptor = self.decryptor()?;
        self.events()?
            .into_iter()
            .map(|envelope| {
                let data = decryptor.open(&envelope)?;
                Ok(LogEvent { envelope, data })
            })
            .collect()
    }

    /// Opens events of this log with the key this replica holds for it,
    /// if any (for readers that walk the WAL themselves).
    pub fn decryptor(&self) -> Result<Decryptor> {
        Ok(Decryptor {
            log: self.wal.log().to_owned(),
            key: self.key()?,
        })
    }

    /// This replica's key for the log: the `LARDER_LOG_KEY` entry naming
    /// it, else `<git dir>/larder/keys/<log>.key`; `None` if neither.
    /// A malformed one is [`LarderError::KeyMalformed`] naming it.
    pub fn key(&self) -> Result<Option<LogKey>> {
        self.key_store().load()
    }

    /// Where this log's key file is (or would be).
    pub fn key_file(&self) -> PathBuf {
        self.key_store().key_path()
    }

    /// Whether this replica knows the log is encrypted: it holds its key,
    /// or has recorded (on `crypt init`/import, or on seeing a sealed
    /// event while appending) that the log is encrypted.
    pub fn is_encrypted(&self) -> Result<bool> {
        Ok(self.key()?.is_some() || self.key_store().marked())
    }

    /// Makes the log encrypted: creates a random key, stores it in the
    /// key file (0600) and returns its id. From then on every append
    /// through this replica is sealed; events already in the log stay as
    /// they are. A key already there is [`LarderError::KeyExists`].
    pub fn crypt_init(&self) -> Result<KeyId> {
        let store = self.key_store();
        if store.key_path().exists() {
            return Err(LarderError::KeyExists {
                log: self.wal.log().to_owned(),
                path: store.key_path().display().to_string(),
            });
        }
        let key = LogKey::generate()?;
        store.install(&key)?;
        Ok(key.id())
    }

    /// The log's key as one line of text (`larder-key-v1:<log>:<hex>`)
    /// for [`Log::import_key`] on another replica.
    pub fn export_key(&self) -> Result<String> {
        match self.key()? {
            Some(key) => Ok(key.to_line(self.wal.log())),
            None => Err(self.key_missing()),
        }
    }

    /// Stores a key line exported by another replica as this log's key and
    /// returns its id. The line must be for this log
    /// ([`LarderError::KeyMalformed`] otherwise); the same key again is
    /// fine, another key where one exists is [`LarderError::KeyExists`].
    pub fn import_key(&self, line: &str) -> Result<KeyId> {
        let (log, key) = LogKey::parse_line(line, "the key line given")?;
        if log != self.wal.log() {
            return Err(LarderError::KeyMalformed {
                origin: "the key line given".into(),
                reason: format!("it is the key of log {log:?}, not of {:?}", self.wal.log()),
            });
        }
        self.key_store().install(&key)?;
        Ok(key.id())
    }

    fn key_store(&self) -> KeyStore {
        KeyStore::new(self.wal.repo().git_dir(), self.wal.log())
    }

    /// The key to seal new events with: this replica's key, or `None` for
    /// a log it does not know to be encrypted; [`LarderError::KeyMissing`]
    /// for one it knows is encrypted but has no key for.
    pub(crate) fn write_key(&self) -> Result<Option<LogKey>> {
        match self.key()? {
            Some(key) => Ok(Some(key)),
            None if self.key_store().marked() => Err(self.key_missing()),
            None => Ok(None),
        }
    }

    fn key_missing(&self) -> LarderError {
        LarderError::KeyMissing {
            log: self.wal.log().to_owned(),
            path: self.key_file().display().to_string(),
        }
    }

    /// Sealed events were just seen in a log this replica has no key for:
    /// remember that it is encrypted (so later appends fail at once) and
    /// report it.
    pub(crate) fn key_missing_now(&self) -> LarderError {
        if let Err(e) = self.key_store().mark() {
            tracing::warn!(error = %e, "cannot record that the log is encrypted");
        }
        self.key_missing()
    }

    /// The write-ahead log underneath.
    pub fn wal(&self) -> &wal::WalManager {
        &self.wal
    }
}

/// The clock cache line's checksum: 16 hex digits of its BLAKE2b-256.
fn clock_checksum(line: &str) -> String {
    codec::to_hex(&codec::blake2b256(&[b"larder clock cache\0", line.as_bytes()])[..8])
}

/// `<git dir>/larder/<namespace>/<log>`: where a log's derived state
/// (clock cache, view) lives, apart from logs of other namespaces.
pub(crate) fn state_dir(wal: &wal::WalManager) -> PathBuf {
    wal.repo()
        .git_dir()
        .join("larder")
        .join(&wal.options().namespace)
        .join(wal.log())
}

/// A log with a registered projection whose redb view is kept up to date
/// (see [`Larder::log_with_view`]).
pub struct ViewedLog<P: crdt::Projection> {
    pub(crate) log: Log,
    pub(crate) view: snapshot::View<P>,
    pub(crate) snapshots: snapshot::SnapshotManager,
}

impl<P: crdt::Projection + Default> ViewedLog<P> {
    /// Appends one event, then updates the view (and snapshots if due).
    /// See [`ViewedLog::append_batch`].
    pub fn append<T: Serialize + ?Sized>(
        &mut self,
        kind: &str,
        data: &T,
    ) -> Result<Committed<ObjectId>> {
        self.append_batch(&[(kind, Payload::from_serde(data)?)])
    }

    /// Appends a batch, then updates the view (and snapshots if due).
    ///
    /// `Err` means nothing was written. Once the commit is on the log, the
    /// call returns it; if the view refresh or the snapshot policy then
    /// fails, that failure is in [`Committed::after_commit`] — the event is
    /// in the log, so do not append it again.
    pub fn append_batch(&mut self, events: &[(&str, Payload)]) -> Result<Committed<ObjectId>> {
        let done = self.log.append_committed(events)?;
        let refreshed = self.refresh().err();
        Ok(Committed {
            value: done.value,
            after_commit: done.after_commit.or(refreshed),
        })
    }

    /// Syncs with `remote`, then updates the view. A failed view refresh
    /// after the pull merged is in [`Committed::after_commit`].
    ///
    /// A push that fails after the pull merged is reported the same way:
    /// the view still follows what the pull brought, the report is the
    /// pull's, and the push's error is in [`Committed::after_commit`].
    pub fn sync(&mut self, larder: &Larder, remote: &str) -> Result<Committed<sync::SyncReport>> {
        let manager = larder.sync_manager(self.log.wal.clone(), remote)?;
        let (report, push_error) = match manager.sync() {
            Ok(report) => (report, None),
            Err(sync::SyncError::PushAfterPull { pulled, source }) => {
                (*pulled, Some(LarderError::from(*source)))
            }
            Err(e) => return Err(e.into()),
        };
        let refreshed = self.refresh().err();
        Ok(Committed {
            value: report,
            after_commit: push_error.or(refreshed),
        })
    }

    /// Folds whatever the log gained into the view; snapshots per policy.
    pub fn refresh(&mut self) -> Result<u64> {
        let applied = self.view.update()?;
        self.snapshots.maybe_create::<P>()?;
        Ok(applied)
    }

    /// The projection's current state.
    pub fn state(&self) -> &P {
        self.view.state()
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The view (position, rebuild).
    pub fn view_mut(&mut self) -> &mut snapshot::View<P> {
        &mut self.view
    }
}
