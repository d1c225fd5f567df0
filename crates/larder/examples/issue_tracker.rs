//! An issue tracker whose issues travel with the code: create, comment,
//! label and close issues on two replicas, sync, and both see the same.
//!
//! `cargo run -p larder --example issue_tracker`

use std::collections::{BTreeMap, BTreeSet};

use larder::codec::Envelope;
use larder::crdt::{CrdtError, Projection};
use larder::{Larder, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Issue {
    title: String,
    comments: Vec<String>,
    labels: BTreeSet<String>,
    closed: bool,
}

/// The tracker's state: a fold of issue events in the total order.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tracker {
    issues: BTreeMap<u32, Issue>,
}

#[derive(Deserialize)]
struct Created {
    id: u32,
    title: String,
}

#[derive(Deserialize)]
struct Note {
    id: u32,
    text: String,
}

impl Projection for Tracker {
    const NAME: &'static str = "example.issues";
    const VERSION: u32 = 1;

    fn apply(&mut self, event: &Envelope) -> larder::crdt::Result<()> {
        let bad = |e: larder::codec::CodecError| CrdtError::BadEvent {
            event: event.id().to_hex(),
            kind: event.kind().into(),
            reason: e.to_string(),
        };
        match event.kind() {
            "issue.created" => {
                let c: Created = event.payload().deserialize().map_err(bad)?;
                self.issues.entry(c.id).or_default().title = c.title;
            }
            "issue.commented" => {
                let n: Note = event.payload().deserialize().map_err(bad)?;
                self.issues.entry(n.id).or_default().comments.push(n.text);
            }
            "issue.labelled" => {
                let n: Note = event.payload().deserialize().map_err(bad)?;
                self.issues.entry(n.id).or_default().labels.insert(n.text);
            }
            "issue.closed" => {
                let id: u32 = event.payload().deserialize().map_err(bad)?;
                self.issues.entry(id).or_default().closed = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode_state(bytes: &[u8]) -> larder::crdt::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| CrdtError::StateDecode {
            projection: Self::NAME,
            reason: e.to_string(),
        })
    }
}

pub fn main() -> Result<()> {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let origin = tmp.path().join("origin.git");
    Larder::init_bare(&origin)?;
    let origin = origin.display().to_string();
    let alice = Larder::init(tmp.path().join("alice"))?;
    let bob = Larder::init(tmp.path().join("bob"))?;

    let issues = alice.log("issues")?;
    issues.append(
        "issue.created",
        &serde_json::json!({ "id": 1, "title": "build fails on ARM" }),
    )?;
    issues.append(
        "issue.labelled",
        &serde_json::json!({ "id": 1, "text": "bug" }),
    )?;
    alice.sync("issues", &origin)?.sync()?;

    bob.sync("issues", &origin)?.sync()?;
    let theirs = bob.log("issues")?;
    theirs.append(
        "issue.commented",
        &serde_json::json!({ "id": 1, "text": "fixed in 4b1e" }),
    )?;
    theirs.append("issue.closed", &1)?;
    // Meanwhile alice files another one.
    issues.append(
        "issue.created",
        &serde_json::json!({ "id": 2, "title": "docs typo" }),
    )?;

    for _ in 0..2 {
        bob.sync("issues", &origin)?.sync()?;
        alice.sync("issues", &origin)?.sync()?;
    }
    let a: Tracker = alice.log("issues")?.project()?;
    let b: Tracker = bob.log("issues")?.project()?;
    assert_eq!(a.state_hash(), b.state_hash(), "both replicas agree");
    for (id, issue) in &a.issues {
        println!(
            "#{id} {:<20} {} labels={:?} comments={:?}",
            issue.title,
            if issue.closed { "closed" } else { "open  " },
            issue.labels,
            issue.comments
        );
    }
    Ok(())
}
