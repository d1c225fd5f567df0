//! Group commit: appends that wait on the log's ref at the same time, from
//! threads sharing one [`WalManager`] (through its clones), are written
//! together — one pack, one compare-and-swap of the ref — instead of each
//! paying for its own pack files and ref lock.
//!
//! The protocol is a leader/follower queue. Every append first builds its
//! own chunk and trees (in parallel, outside any lock), then joins the
//! queue. If no append of the group is being written, it becomes the
//! *leader*: it takes everything queued, writes it, moves the ref once and
//! hands each member its result; meanwhile later arrivals queue up for the
//! next leader. Followers sleep on a condition variable until their result
//! is there, or until no leader is left while they are still queued (then
//! one of them leads).
//!
//! A group is written as a **linear chain: one commit per queued append**,
//! in queue order, each exactly the commit a lone append would have
//! written on its predecessor (its own chunk, its own actor, its own
//! record), so the commit format, readers and verifiers are unchanged
//! and actors are never mixed in a chunk. Every caller gets the id of its
//! own commit. The ref moves once, from the old head to the last commit of
//! the chain, so a reader sees the whole group or none of it.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use larder_git::{Expected, ObjectBatch, ObjectId};

use crate::append::next_generation;
use crate::meta::{Meta, WalFormat};
use crate::wal::{Committed, Durability, WalManager};
use crate::{Result, WalError};

/// The parts of an append that do not depend on the head: the chunk and its
/// trees, the commit message (without the generation trailer), the record
/// without `previous`, and the tree the commit builds on — in format 1 the
/// `events` tree (the root, with `meta.json`, depends on the parent), in
/// format 2 the root tree itself.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) objects: ObjectBatch,
    pub(crate) message: String,
    pub(crate) meta: Meta,
    pub(crate) tree: ObjectId,
    pub(crate) format: WalFormat,
}

/// The queue shared by a [`WalManager`] and its clones.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    turn: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Appends waiting for a leader, in arrival order, by ticket.
    queue: Vec<(u64, Prepared)>,
    /// Whether a leader is writing a group now.
    leading: bool,
    /// Results for followers, by ticket.
    done: HashMap<u64, Outcome>,
    next_ticket: u64,
    /// The head this log's handles last wrote or read, with its
    /// generation: the next leader builds on it without reading its commit
    /// back (which could mean rescanning the pack directory for the pack a
    /// clone just wrote).
    known_head: Option<(ObjectId, u64)>,
}

#[derive(Debug)]
enum Outcome {
    /// The append is on the ref, in this commit, on this parent.
    Committed(ObjectId, Option<ObjectId>),
    /// The group failed before the ref moved: the append is written alone,
    /// so that its caller gets its own error (or success).
    Alone(Prepared),
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached generation of `head`, if it is the head last seen.
    pub(crate) fn known_generation(&self, head: ObjectId) -> Option<u64> {
        match self.lock().known_head {
            Some((known, generation)) if known == head => Some(generation),
            _ => None,
        }
    }

    /// Remembers `head` and its generation.
    pub(crate) fn set_known_head(&self, head: ObjectId, generation: u64) {
        self.lock().known_head = Some((head, generation));
    }
}

/// The leader's hold on a group: if the leader unwinds before it handed
/// out results, every member still gets an answer (it is written alone)
/// and leadership passes on, so no follower waits forever.
struct Leading<'a> {
    shared: &'a GroupCommit,
    ticket: u64,
    group: Vec<(u64, Prepared)>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        for (ticket, prepared) in self.group.drain(..) {
            if ticket != self.ticket {
                state.done.insert(ticket, Outcome::Alone(prepared));
            }
        }
        state.leading = false;
        drop(state);
        self.shared.turn.notify_all();
    }
}

impl WalManager {
    /// Queues a prepared append and returns once it is on the ref (or
    /// failed): as the leader of a group, or as a follower woken with its
    /// result. See the module docs.
    pub(crate) fn commit_grouped(&self, prepared: Prepared) -> Result<Committed> {
        let shared = &*self.group;
        let mut state = shared.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, prepared));
        loop {
            if let Some(outcome) = state.done.remove(&ticket) {
                drop(state);
                return match outcome {
                    Outcome::Committed(commit, parent) => Ok(self.committed(commit, parent)),
                    Outcome::Alone(prepared) => {
                        let ids = self.commit_chain(std::slice::from_ref(&prepared))?;
                        let (commit, parent) = ids.last().copied().ok_or(WalError::EmptyBatch)?;
                        Ok(self.committed(commit, parent))
                    }
                };
            }
            if !state.leading {
                break;
            }
            state = shared.turn.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        // No leader and this append still queued (results are handed out
        // before a leader steps down): lead the group of everything queued.
        state.leading = true;
        let group = std::mem::take(&mut state.queue);
        drop(state);
        let mut leading = Leading {
            shared,
            ticket,
            group,
        };
        let members: Vec<&Prepared> = leading.group.iter().map(|(_, p)| p).collect();
        let written = self.commit_chain_refs(&members);
        drop(members);
        let mine = {
            let mut state = shared.lock();
            let result = match written {
                Ok(ids) => {
                    let mut mine = Err(WalError::EmptyBatch);
                    for ((t, _), (id, parent)) in leading.group.drain(..).zip(ids) {
                        if t == ticket {
                            mine = Ok((id, parent));
                        } else {
                            state.done.insert(t, Outcome::Committed(id, parent));
                        }
                    }
                    mine
                }
                // The ref did not move: the others are written alone (by
                // their own threads, through `Leading`'s drop), each getting
                // its own error or success.
                Err(e) => Err(e),
            };
            drop(state);
            result
        };
        // Hands out the remaining members (on failure) and passes on
        // leadership.
        drop(leading);
        let (commit, parent) = mine?;
        Ok(self.committed(commit, parent))
    }

    /// The result of an append whose commit is on the ref: the ref's fsync
    /// (with [`Durability::Fsync`]) is done by each caller for itself, so a
    /// failure there reaches every caller of the group as its own
    /// `after_commit`, never as an error.
    fn committed(&self, commit: ObjectId, parent: Option<ObjectId>) -> Committed {
        Committed {
            commit,
            parent,
            after_commit: self.sync_ref_if_durable().err(),
        }
    }

    /// [`WalManager::commit_chain_refs`] for owned members.
    fn commit_chain(&self, members: &[Prepared]) -> Result<Vec<(ObjectId, Option<ObjectId>)>> {
        let refs: Vec<&Prepared> = members.iter().collect();
        self.commit_chain_refs(&refs)
    }

    /// Writes `members` as a chain of append commits on the current head
    /// (one pack for all of them) and moves the ref once, by
    /// compare-and-swap, to the last; on a lost race rebuilds the chain on
    /// the new head. Returns each member's commit and its parent, in order.
    fn commit_chain_refs(
        &self,
        members: &[&Prepared],
    ) -> Result<Vec<(ObjectId, Option<ObjectId>)>> {
        let mut attempts = 0;
        let mut lock_waits = 0;
        loop {
            attempts += 1;
            let head = self.head()?;
            let mut generation = match head {
                Some(h) => next_generation(h, self.generation_of(h)?)?,
                None => 1,
            };
            let first_generation = generation;
            let mut parent = head;
            // The chunks and their trees stay in the members' batches; only
            // the parts that depend on the head are rebuilt per attempt.
            let mut commit_objects = ObjectBatch::new();
            let mut ids = Vec::with_capacity(members.len());
            for (i, p) in members.iter().enumerate() {
                if i > 0 {
                    let previous = parent.ok_or(WalError::EmptyBatch)?;
                    generation = next_generation(previous, generation)?;
                }
                let commit = self.append_commit(&mut commit_objects, p, parent, generation)?;
                ids.push((commit, parent));
                parent = Some(commit);
            }
            let last = parent.ok_or(WalError::EmptyBatch)?;
            let mut batches: Vec<&ObjectBatch> = members.iter().map(|p| &p.objects).collect();
            batches.push(&commit_objects);
            self.repo
                .write_batches(&batches, self.options.durability == Durability::Fsync)?;
            let expected = head.map_or(Expected::MustNotExist, Expected::MustBe);
            let message = members
                .last()
                .and_then(|p| p.message.lines().next())
                .unwrap_or("");
            match self
                .repo
                .update_ref(&self.ref_name, expected, last, message)
            {
                Ok(()) => {
                    // The chain is on the ref: from here on nothing may turn
                    // these appends into errors.
                    self.group.set_known_head(last, generation);
                    self.consolidate_after(first_generation, generation);
                    return Ok(ids);
                }
                Err(e) => self.retry_or_fail(e, attempts, &mut lock_waits)?,
            }
        }
    }
}
