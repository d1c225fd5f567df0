//! The linearizable mode's protocol (`docs/kv.md`, "The linearizable
//! mode"): every operation takes effect at one compare-and-swap of the
//! chain ref `refs/<ns>/<log>/chain` on the authority.
//!
//! - **Write** (and compare-and-set): evaluate against the state at the
//!   chain head this replica last saw, write the commit on it locally,
//!   swap the chain ref from that head to the commit. A lost swap means
//!   another writer went first: fetch the chain, fold it, re-check the
//!   preconditions against the new state, retry — at most
//!   `max_attempts` times, then [`KvError::Contention`].
//! - **Read** (the ReadIndex analogue): fetch the chain (learning its head
//!   at an instant inside the read), fast-forward the local log and the
//!   view to it, answer from the view.
//! - **Group commit**: concurrent writers of one process queue their
//!   requests; one of them (the leader) takes everything queued, evaluates
//!   it in order on one state and swaps once; each caller gets its own
//!   outcome.
//!
//! The local log (`refs/<ns>/<log>/wal`) only ever fast-forwards to chain
//! heads, after every new commit has been verified and found to be a
//! linear append; so the view, which folds the local log, is always the
//! state at some chain head.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use larder_codec::{Envelope, Payload};
use larder_crdt::EventKey;
use larder_git::{Expected, ObjectId};

use crate::authority::{Authority, Swap};
use crate::inner::Inner;
use crate::kv::{Core, lock};
use crate::record::{Record, parse_event};
use crate::types::Version;
use crate::{KvError, Result};

/// Most requests one leader takes into one commit.
const MAX_GROUP: usize = 1024;

/// How often a fetched head that is behind the local log (another process
/// of this clone fetched a newer one meanwhile) is fetched again before the
/// local log counts as diverged.
const MAX_BEHIND: u32 = 20;

/// One caller's operation, queued for the leader.
pub(crate) enum Request {
    /// Sets and deletes of one batch: `(kind, key, payload)`.
    Write(Vec<(&'static str, String, Payload)>),
    /// Write `payload` (a `kv.set` of `key`) if `key` matches `expect`.
    Cas {
        key: String,
        expect: RawExpect,
        payload: Payload,
    },
    /// Take, renew (`ttl_ms > 0`) or give up (`ttl_ms == 0`) the read
    /// lease for `holder`.
    Lease { holder: String, ttl_ms: u64 },
}

/// [`crate::Expect`] with the value as canonical CBOR.
pub(crate) enum RawExpect {
    Absent,
    Value(Vec<u8>),
    Version(Version),
}

impl RawExpect {
    /// Whether `current` (the key's record, `None` if never written)
    /// matches.
    pub(crate) fn matches(&self, current: Option<&Record>) -> bool {
        let live = current.filter(|r| r.value.is_some());
        match self {
            RawExpect::Absent => live.is_none(),
            RawExpect::Value(v) => live.and_then(|r| r.value.as_ref()) == Some(v),
            RawExpect::Version(v) => live.is_some_and(|r| r.version == *v),
        }
    }
}

/// What a request did.
pub(crate) enum Outcome {
    /// The versions of a batch's writes.
    Written(Vec<Version>),
    /// A compare-and-set: whether it wrote, and the key's record afterwards.
    Cas {
        swapped: bool,
        current: Option<Record>,
    },
    /// A lease request's result: the lease now recorded on the chain.
    Lease(LeaseRecord),
    /// A write refused because another holder's lease is live.
    LeaseHeld(LeaseRecord),
}

/// The read lease as recorded on the chain, under [`LEASE_KEY`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LeaseRecord {
    /// The holding handle (actor and a per-handle id).
    pub(crate) holder: String,
    /// Fencing token: one more for every new holder.
    pub(crate) token: u64,
    /// When it expires, by the holder's wall clock (ms since the epoch);
    /// 0 once released.
    pub(crate) expires_ms: u64,
}

/// The reserved key the read lease is stored under. It holds a control
/// character, which no user key may ([`crate::types`]'s key check), so
/// it never collides with one; reads, scans and watches leave it out.
pub(crate) const LEASE_KEY: &str = "\u{1}larder/kv-lease";

/// The linearizable mode of one [`crate::Kv`]: its authority, chain ref and
/// group-commit queue.
pub(crate) struct Linear {
    /// Used under the view's lock (one request to the authority at a time
    /// per handle; a `Mutex` because gix handles are not `Sync`).
    authority: Mutex<Box<dyn Authority>>,
    /// The authority's name, for errors.
    pub(crate) name: String,
    /// The chain head this handle's last swap made (`Some(None)`: it found
    /// no chain), so a lone writer swaps without fetching first; cleared
    /// by a lost swap.
    known: Mutex<Option<Option<ObjectId>>>,
    pub(crate) chain: String,
    pub(crate) max_attempts: u32,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Group commits made and requests they carried (for tests and
    /// benches: how well grouping works).
    pub(crate) stats: Mutex<(u64, u64)>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(u64, Request)>,
    leading: bool,
    done: HashMap<u64, Result<Outcome>>,
    next: u64,
}

impl Linear {
    pub(crate) fn new(authority: Box<dyn Authority>, chain: String, max_attempts: u32) -> Self {
        Self {
            name: authority.name().to_owned(),
            authority: Mutex::new(authority),
            known: Mutex::new(None),
            chain,
            max_attempts: max_attempts.max(1),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            stats: Mutex::new((0, 0)),
        }
    }

    /// Queues `request` and returns its outcome once a group carrying it
    /// has been decided (this caller may be the one that leads it).
    pub(crate) fn submit(&self, core: &Core, request: Request) -> Result<Outcome> {
        let mut queue = lock(&self.queue);
        let id = queue.next;
        queue.next += 1;
        queue.waiting.push((id, request));
        loop {
            if let Some(outcome) = queue.done.remove(&id) {
                return outcome;
            }
            if !queue.leading {
                queue.leading = true;
                let take = queue.waiting.len().min(MAX_GROUP);
                let group: Vec<(u64, Request)> = queue.waiting.drain(..take).collect();
                drop(queue);
                // Resets `leading` and answers every request of the group
                // even if the group panics, so followers never wait forever.
                let mut guard = Leading {
                    linear: self,
                    leader: id,
                    ids: group.iter().map(|(id, _)| *id).collect(),
                    results: None,
                };
                let requests: Vec<&Request> = group.iter().map(|(_, r)| r).collect();
                guard.results = Some(self.run_group(core, &requests));
                drop(guard);
                queue = lock(&self.queue);
                continue;
            }
            queue = self
                .ready
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Whether a read may be answered from the view without asking the
    /// authority: this handle holds the read lease, live by its own clock
    /// with the skew margin to spare, and the view is at the chain head
    /// this handle's last swap made (so nothing it wrote is missing).
    pub(crate) fn lease_read_ok(&self, core: &Core, inner: &Inner) -> bool {
        let Some(held) = lock(&core.lease).clone() else {
            return false;
        };
        let wall = lock(&core.clock).clock().now_millis();
        let skew = core.options.max_skew.as_millis() as u64;
        if wall.saturating_add(skew) >= held.expires_ms {
            return false;
        }
        matches!(*lock(&self.known), Some(Some(k)) if inner.store.position == Some(k))
    }

    /// Decides one group: evaluates every request in order against the
    /// state at the chain head, writes one commit with all their writes and
    /// swaps the chain ref to it, retrying on a lost race.
    fn run_group(&self, core: &Core, requests: &[&Request]) -> Result<Vec<Outcome>> {
        {
            let mut stats = lock(&self.stats);
            stats.0 += 1;
            stats.1 += requests.len() as u64;
        }
        let mut inner = lock(&core.inner);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let leased = self.lease_read_ok(core, &inner);
            let known = lock(&self.known).take();
            let (old, fresh) = match known {
                // The view is at the head our last swap made: no need to
                // ask (a lost swap will tell if someone went since).
                Some(Some(k)) if inner.store.position == Some(k) => (Some(k), false),
                _ => (self.read_index(core, &mut inner)?.0, true),
            };
            let base = inner.store.position;
            let (events, outcomes) = self.evaluate(core, &mut inner, requests)?;
            if events.is_empty() {
                // Nothing to write (compare-and-sets that did not match,
                // writes a lease refused): these are reads, decided on the
                // state at `old`. That is the chain's head only if
                // `read_index` just learned it, or our lease keeps others
                // from moving it; otherwise ask and decide again.
                if fresh || leased {
                    *lock(&self.known) = if fresh { Some(old) } else { known };
                    return Ok(outcomes);
                }
                continue;
            }
            let commit = inner.wal.write_append(&events, base)?;
            let swapped = lock(&self.authority).swap(inner.wal.repo(), &self.chain, old, commit)?;
            match swapped {
                Swap::Done => {
                    *lock(&self.known) = Some(Some(commit));
                    // The write happened; nothing below may fail it.
                    self.settle(core, &mut inner, base, commit, &events);
                    return Ok(outcomes);
                }
                Swap::Lost { .. } => {
                    if attempts >= self.max_attempts {
                        return Err(KvError::Contention {
                            authority: self.name.clone(),
                            chain: self.chain.clone(),
                            attempts,
                        });
                    }
                }
            }
        }
    }

    /// Evaluates `requests` in order on the view's state (at its position)
    /// plus the group's earlier writes, stamping each write with the clock.
    fn evaluate(
        &self,
        core: &Core,
        inner: &mut Inner,
        requests: &[&Request],
    ) -> Result<(Vec<Envelope>, Vec<Outcome>)> {
        let mut overlay: HashMap<String, Record> = HashMap::new();
        let mut events = Vec::new();
        let mut outcomes = Vec::with_capacity(requests.len());
        let lease = match inner.read(|s| s.get(LEASE_KEY))? {
            Some(r) => r
                .value
                .and_then(|v| ciborium::from_reader::<LeaseRecord, _>(&v[..]).ok()),
            None => None,
        };
        let mut lease = lease;
        let mut clock = lock(&core.clock);
        let wall = clock.clock().now_millis();
        let skew = core.options.max_skew.as_millis() as u64;
        // A lease another handle holds, live (with the skew margin) by
        // this writer's clock: it refuses this write.
        let foreign = |lease: &Option<LeaseRecord>, me: Option<&str>| -> Option<LeaseRecord> {
            lease
                .as_ref()
                .filter(|l| {
                    Some(l.holder.as_str()) != me && wall < l.expires_ms.saturating_add(skew)
                })
                .cloned()
        };
        let me = core.lease_holder.as_str();
        let frontier = inner.store.frontier.clone();
        let mut stamp = |kind: &'static str, payload: &Payload| -> Result<Envelope> {
            let e = Envelope::new(core.actor.clone(), clock.now()?, kind, payload.clone())?;
            // The chain's order must be last-writer-wins' order: a write
            // sorts after every write the state holds.
            if let Some(f) = &frontier
                && EventKey::of(&e) <= *f
            {
                return Err(KvError::ClockBehind {
                    timestamp: e.timestamp().to_string(),
                    frontier: f.timestamp.to_string(),
                });
            }
            Ok(e)
        };
        for request in requests {
            if !matches!(request, Request::Lease { .. })
                && let Some(held) = foreign(&lease, Some(me))
            {
                outcomes.push(Outcome::LeaseHeld(held));
                continue;
            }
            match request {
                Request::Lease { holder, ttl_ms } => {
                    if let Some(held) = foreign(&lease, Some(holder)) {
                        outcomes.push(Outcome::LeaseHeld(held));
                        continue;
                    }
                    let token = match &lease {
                        Some(l) if l.holder == *holder => l.token,
                        Some(l) => l.token.saturating_add(1),
                        None => 1,
                    };
                    let record = LeaseRecord {
                        holder: holder.clone(),
                        token,
                        expires_ms: if *ttl_ms == 0 {
                            0
                        } else {
                            wall.saturating_add(*ttl_ms)
                        },
                    };
                    let payload = larder_crdt::KvProjection::set_payload(LEASE_KEY, &record)
                        .map_err(|e| KvError::Encode {
                            key: LEASE_KEY.escape_debug().to_string(),
                            reason: e.to_string(),
                        })?;
                    let e = stamp(larder_crdt::KV_SET, &payload)?;
                    events.push(e);
                    lease = Some(record.clone());
                    outcomes.push(Outcome::Lease(record));
                }
                Request::Write(ops) => {
                    let mut versions = Vec::with_capacity(ops.len());
                    for (kind, _, payload) in ops {
                        let e = stamp(kind, payload)?;
                        versions.push(EventKey::of(&e));
                        if let Some((key, record)) = parse_event(&e) {
                            overlay.insert(key, record);
                        }
                        events.push(e);
                    }
                    outcomes.push(Outcome::Written(versions));
                }
                Request::Cas {
                    key,
                    expect,
                    payload,
                } => {
                    let current = match overlay.get(key) {
                        Some(r) => Some(r.clone()),
                        None => inner.read(|s| s.get(key))?,
                    };
                    if expect.matches(current.as_ref()) {
                        let e = stamp(larder_crdt::KV_SET, payload)?;
                        let written = parse_event(&e).map(|(_, r)| r);
                        if let Some(r) = &written {
                            overlay.insert(key.clone(), r.clone());
                        }
                        events.push(e);
                        outcomes.push(Outcome::Cas {
                            swapped: true,
                            current: written,
                        });
                    } else {
                        outcomes.push(Outcome::Cas {
                            swapped: false,
                            current,
                        });
                    }
                }
            }
        }
        Ok((events, outcomes))
    }

    /// After a successful swap: fast-forwards the local log to `commit`
    /// and folds it. Failures are warnings (the next operation fetches the
    /// chain and repairs both), never errors: the write has happened.
    fn settle(
        &self,
        core: &Core,
        inner: &mut Inner,
        base: Option<ObjectId>,
        commit: ObjectId,
        events: &[Envelope],
    ) {
        if let Err(e) = self.fast_forward(inner, commit) {
            tracing::warn!(chain = %self.chain, %commit, error = %e,
                "linearizable write committed; moving the local log failed (repaired on next use)");
            return;
        }
        // The commit was written on `base`.
        if let Err(e) = inner.fold_own(core, commit, base, base, events) {
            tracing::warn!(chain = %self.chain, %commit, error = %e,
                "linearizable write committed; folding it into the view failed (retried on next use)");
        }
    }

    /// The ReadIndex step: fetches the chain, verifies what is new, moves
    /// the local log and the view to the chain's head, and returns that
    /// head (`None`: no chain yet — the view then reflects the local log).
    pub(crate) fn read_index(
        &self,
        core: &Core,
        inner: &mut Inner,
    ) -> Result<(Option<ObjectId>, usize)> {
        let mut behind = 0;
        let mut folded = 0;
        loop {
            let head = lock(&self.authority).fetch(inner.wal.repo(), &self.chain)?;
            let local = inner.wal.head()?;
            match head {
                None => {
                    folded += inner.catch_up(core)?;
                    return Ok((None, folded));
                }
                Some(h) if Some(h) == local => {}
                Some(h) => {
                    // Verified before anything else looks at it: the
                    // generation walk behind `is_ancestor` trusts commits.
                    let count = self.verify_new(inner, h)?;
                    if let Some(l) = local
                        && count == 0
                        && inner.wal.is_ancestor(h, l)?
                    {
                        // Another process of this clone fetched a newer
                        // head since: fetch again (the chain only grows).
                        behind += 1;
                        if behind > MAX_BEHIND {
                            return Err(self.diverged(inner, l, h));
                        }
                        continue;
                    }
                    self.verify_linear(inner, local, h, count)?;
                    self.fast_forward(inner, h)?;
                }
            }
            folded += inner.catch_up(core)?;
            let position = inner.store.position;
            // The view may be past `head` when another process of this
            // clone fetched a newer chain head meanwhile: that head was the
            // chain's after `head` was, so it too is a head inside this
            // read's interval.
            match (head, position) {
                (Some(h), Some(p)) if h == p || inner.wal.is_ancestor(h, p)? => {
                    return Ok((position, folded));
                }
                _ => {
                    behind += 1;
                    if behind > MAX_BEHIND {
                        return Err(KvError::Contention {
                            authority: self.name.clone(),
                            chain: self.chain.clone(),
                            attempts: behind,
                        });
                    }
                }
            }
        }
    }

    /// Verifies every commit reachable from the chain head `head` that the
    /// local log lacks as a WAL commit (chunk and event ids, layout, meta);
    /// returns how many there are.
    fn verify_new(&self, inner: &Inner, head: ObjectId) -> Result<u64> {
        inner
            .wal
            .incoming(head)
            .map(|(commits, _)| commits)
            .map_err(|e| self.foreign(e.commit().unwrap_or(head), e.to_string()))
    }

    fn foreign(&self, commit: ObjectId, reason: String) -> KvError {
        KvError::ForeignCommit {
            chain: format!("{} on {}", self.chain, self.name),
            commit: commit.to_string(),
            reason,
        }
    }

    /// Checks that the `count` new commits below the chain head `head` are
    /// a linear run of appends on the local head (when there is one).
    fn verify_linear(
        &self,
        inner: &Inner,
        local: Option<ObjectId>,
        head: ObjectId,
        count: u64,
    ) -> Result<()> {
        let Some(local) = local else {
            return Ok(());
        };
        let repo = inner.wal.repo();
        let mut at = head;
        for _ in 0..count {
            let info = repo
                .read_commit(at)
                .map_err(|e| self.foreign(at, e.to_string()))?;
            match info.parents.as_slice() {
                [parent] => at = *parent,
                // The chain began elsewhere: the local log is not on it.
                [] => break,
                _ => {
                    return Err(self.foreign(
                        at,
                        format!(
                            "{} parents: a chain is linear, one append on another",
                            info.parents.len()
                        ),
                    ));
                }
            }
            if at == local {
                return Ok(());
            }
        }
        Err(self.diverged(inner, local, head))
    }

    fn diverged(&self, inner: &Inner, local: ObjectId, chain: ObjectId) -> KvError {
        KvError::Diverged {
            log: inner.wal.ref_name().to_owned(),
            local: local.to_string(),
            chain: format!("{} on {}", self.chain, self.name),
            chain_head: chain.to_string(),
        }
    }

    /// Moves the local log forward to the chain commit `to` (verified),
    /// by compare-and-swap; a head already at or past it stays.
    fn fast_forward(&self, inner: &Inner, to: ObjectId) -> Result<()> {
        let wal = &inner.wal;
        for _ in 0..100 {
            let local = wal.head()?;
            if local == Some(to) {
                return Ok(());
            }
            if let Some(l) = local {
                if wal.is_ancestor(to, l)? {
                    return Ok(());
                }
                if !wal.is_ancestor(l, to)? {
                    return Err(self.diverged(inner, l, to));
                }
            }
            let expected = local.map_or(Expected::MustNotExist, Expected::MustBe);
            match wal
                .repo()
                .update_ref(wal.ref_name(), expected, to, "larder-kv: follow chain")
            {
                Ok(()) => return Ok(()),
                Err(e) if e.is_conflict() || e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KvError::Contention {
            authority: wal.repo().git_dir().display().to_string(),
            chain: wal.ref_name().to_owned(),
            attempts: 100,
        })
    }
}

/// Marks the end of a leader's turn: answers every request of its group
/// (with an error if the group did not finish) and wakes the followers.
struct Leading<'a> {
    linear: &'a Linear,
    /// The leader's own request, which receives the error itself.
    leader: u64,
    ids: Vec<u64>,
    results: Option<Result<Vec<Outcome>>>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut queue = lock(&self.linear.queue);
        queue.leading = false;
        match self.results.take() {
            Some(Ok(outcomes)) => {
                for (id, outcome) in self.ids.iter().zip(outcomes) {
                    queue.done.insert(*id, Ok(outcome));
                }
            }
            Some(Err(e)) => {
                let leads_own = self.ids.contains(&self.leader);
                for id in &self.ids {
                    if *id != self.leader || !leads_own {
                        queue
                            .done
                            .insert(*id, Err(e.for_another(&self.linear.name)));
                    }
                }
                if leads_own {
                    queue.done.insert(self.leader, Err(e));
                }
            }
            None => {
                for id in &self.ids {
                    queue.done.insert(
                        *id,
                        Err(KvError::Authority {
                            authority: self.linear.name.clone(),
                            reason: "the group commit carrying this write panicked".into(),
                            outcome_unknown: true,
                        }),
                    );
                }
            }
        }
        drop(queue);
        self.linear.ready.notify_all();
    }
}
