//! History walks ordered by generation number.
//!
//! Every WAL commit carries a `Larder-Generation: N` trailer in its message:
//! 1 for a root, else 1 + the largest generation among its parents. Walking
//! commits in decreasing generation and painting them "new" (reachable from
//! the head) or "old" (reachable from `since`) lets a walk stop as soon as no
//! purely new commit is left to visit — so `read_since` costs O(new commits),
//! not O(log), even when the log is a DAG of merges. A walk reads each
//! commit object once (a reader of format-2 records reads each commit
//! again for its record; see docs/wal.md); generations are checked against
//! parents as they are read.

use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};

use larder_git::{CommitInfo, GitRepo, ObjectId};

use crate::meta::WalFormat;
use crate::trailers::{canonical_number, format_of, trailer_lines};
use crate::{Result, WalError};

/// The trailer key carrying a commit's generation number.
pub const GENERATION_TRAILER: &str = "Larder-Generation";

const NEW: u8 = 1;
const OLD: u8 = 2;

/// What a walk needs of a commit, read once.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub id: ObjectId,
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub generation: u64,
    /// The commit's format, from its message (format 2 names it in a
    /// trailer), so a reader knows where the record is.
    pub format: WalFormat,
}

/// Parses the generation trailer of a commit message: the last line of its
/// trailer paragraph (the last paragraph) in both formats, a number as
/// larder writes it, at least 1.
pub(crate) fn parse_generation(id: ObjectId, message: &str) -> Result<u64> {
    let prefix = format!("{GENERATION_TRAILER}: ");
    trailer_lines(message)
        .last()
        .and_then(|l| l.strip_prefix(&prefix))
        .and_then(canonical_number)
        .filter(|&n| n >= 1)
        .ok_or_else(|| WalError::BadMeta {
            commit: id,
            reason: format!("commit message has no valid `{GENERATION_TRAILER}: N` trailer"),
        })
}

/// Reads a commit's node (tree, parents, generation, format).
pub(crate) fn load_node(repo: &GitRepo, id: ObjectId) -> Result<Node> {
    let info: CommitInfo = repo
        .read_commit(id)
        .map_err(|e| crate::read::object_error(id, "<commit>", id, e))?;
    let generation = parse_generation(id, &info.message)?;
    let format = format_of(id, &info.message)?;
    Ok(Node {
        id,
        tree: info.tree,
        parents: info.parents,
        generation,
        format,
    })
}

/// The result of painting history between a head and an optional base.
pub(crate) struct Painted {
    /// Commits reachable from the head but not from the base, parents first
    /// (increasing generation, ties by id).
    pub new: Vec<Node>,
    /// Whether the base is the head or one of its ancestors.
    pub base_reached: bool,
}

/// Paints history from `head` (new) and `base` (old), in decreasing
/// generation, until no purely new commit remains queued.
pub(crate) fn paint(repo: &GitRepo, head: ObjectId, base: Option<ObjectId>) -> Result<Painted> {
    paint_many(repo, &[head], base)
}

/// [`paint`] from several heads at once: the commits reachable from any of
/// `heads` but not from `base`, each visited once.
pub(crate) fn paint_many(
    repo: &GitRepo,
    heads: &[ObjectId],
    base: Option<ObjectId>,
) -> Result<Painted> {
    paint_skipping(repo, heads, base, &HashMap::new())
}

/// [`paint_many`], treating the commits in `skip` (id → generation) as not
/// new and not visiting them. `skip` together with the history of `base` must be
/// closed under ancestry (every parent of a known commit is known or
/// reachable from `base`) — true of the commits earlier walks found new
/// since the same base — so skipping them hides nothing new.
pub(crate) fn paint_skipping(
    repo: &GitRepo,
    heads: &[ObjectId],
    base: Option<ObjectId>,
    skip: &HashMap<ObjectId, u64>,
) -> Result<Painted> {
    let mut nodes: HashMap<ObjectId, Node> = HashMap::new();
    let mut colour: HashMap<ObjectId, u8> = HashMap::new();
    let mut queue: BinaryHeap<(u64, ObjectId)> = BinaryHeap::new();
    let mut new_only = 0usize;

    for &head in heads {
        if colour.contains_key(&head) || skip.contains_key(&head) {
            continue;
        }
        let head_node = load_node(repo, head)?;
        queue.push((head_node.generation, head));
        nodes.insert(head, head_node);
        colour.insert(head, NEW);
        new_only += 1;
    }
    if let Some(b) = base {
        match colour.entry(b) {
            Entry::Occupied(mut e) => {
                *e.get_mut() |= OLD;
                new_only -= 1;
            }
            Entry::Vacant(e) => {
                e.insert(OLD);
                let node = load_node(repo, b)?;
                queue.push((node.generation, b));
                nodes.insert(b, node);
            }
        }
    }

    let mut new_ids = Vec::new();
    while new_only > 0 {
        let Some((generation, id)) = queue.pop() else {
            break;
        };
        let c = colour[&id];
        if c == NEW {
            new_only -= 1;
            new_ids.push(id);
        }
        let parents = nodes[&id].parents.clone();
        let mut max_parent = 0;
        for p in parents {
            let known = match colour.get(&p) {
                Some(&old) => {
                    let merged = old | c;
                    if merged != old {
                        colour.insert(p, merged);
                        if old == NEW {
                            new_only -= 1;
                        }
                    }
                    true
                }
                None => false,
            };
            if let (false, Some(&g)) = (known, skip.get(&p)) {
                // Already verified, with all its history: not visited; its
                // generation still bounds ours from below.
                max_parent = max_parent.max(g);
                continue;
            }
            if !known {
                let node = load_node(repo, p)?;
                queue.push((node.generation, p));
                nodes.insert(p, node);
                colour.insert(p, c);
                if c == NEW {
                    new_only += 1;
                }
            }
            max_parent = max_parent.max(nodes[&p].generation);
        }
        if Some(generation) != max_parent.checked_add(1) {
            return Err(WalError::BadMeta {
                commit: id,
                reason: format!(
                    "generation {generation}, but its parents' largest is {max_parent}"
                ),
            });
        }
    }
    let base_reached = base.is_none_or(|b| colour.get(&b).is_some_and(|c| c & NEW != 0));
    new_ids.reverse();
    let new = new_ids
        .into_iter()
        .filter_map(|id| nodes.remove(&id))
        .collect();
    Ok(Painted { new, base_reached })
}

/// Of `candidates`, those no other candidate reaches (git's "independent"
/// heads): one walk from every candidate's parents, in decreasing
/// generation, stopping below the lowest candidate's generation — instead
/// of an ancestry walk per pair, which made a merge of a thousand heads
/// take seconds. Returned in the order given.
pub(crate) fn independent(repo: &GitRepo, candidates: &[ObjectId]) -> Result<Vec<ObjectId>> {
    let mut generation: HashMap<ObjectId, u64> = HashMap::new();
    let mut queue: BinaryHeap<(u64, ObjectId)> = BinaryHeap::new();
    let mut seen: std::collections::HashSet<ObjectId> = std::collections::HashSet::new();
    let mut starts = Vec::new();
    for &c in candidates {
        if generation.contains_key(&c) {
            continue;
        }
        let node = load_node(repo, c)?;
        generation.insert(c, node.generation);
        starts.push(node);
    }
    let Some(&lowest) = generation.values().min() else {
        return Ok(Vec::new());
    };
    for node in starts {
        for p in node.parents {
            if seen.insert(p) {
                let n = load_node(repo, p)?;
                queue.push((n.generation, p));
            }
        }
    }
    let mut covered: std::collections::HashSet<ObjectId> = std::collections::HashSet::new();
    while let Some((g, id)) = queue.pop() {
        if g < lowest {
            break;
        }
        if generation.contains_key(&id) {
            covered.insert(id);
        }
        for p in load_node(repo, id)?.parents {
            if seen.insert(p) {
                let n = load_node(repo, p)?;
                queue.push((n.generation, p));
            }
        }
    }
    let mut out = Vec::new();
    for &c in candidates {
        if !covered.contains(&c) && !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}
