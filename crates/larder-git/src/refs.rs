//! References: reading, compare-and-swap updates, deletes, listings and
//! fsync of refs, with lock and conflict errors told apart.

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::refs::Target;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};

use crate::objects::unix_now;
use crate::repo::{DEFAULT_IDENTITY, Expected, GitRepo, sync_path};
use crate::{GitError, Result};

impl GitRepo {
    /// The object a reference points at, or `None` if it does not exist.
    pub fn ref_target(&self, name: &str) -> Result<Option<ObjectId>> {
        check_ref_name(name)?;
        match self.repo.try_find_reference(name) {
            Ok(Some(r)) => Ok(r.target().try_id().map(|id| id.to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(GitError::gix(format!("reading reference {name}"), e)),
        }
    }

    /// Points `name` at `new` if and only if it currently holds `expected`
    /// (compare-and-swap). A lost race is [`GitError::RefConflict`] with the
    /// value found; a held lock is [`GitError::RefLocked`].
    pub fn update_ref(
        &self,
        name: &str,
        expected: Expected,
        new: ObjectId,
        message: &str,
    ) -> Result<()> {
        self.update_ref_logged(name, expected, new, message, true)
    }

    /// [`GitRepo::update_ref`] without a reflog entry, whatever
    /// `core.logAllRefUpdates` says: for refs that only mirror another
    /// repository's (sync's staging refs under `refs/remotes/`), where git
    /// would append a line per update to a reflog nothing ever trims, and
    /// every old value it names would count as reachable.
    pub fn update_ref_unlogged(&self, name: &str, expected: Expected, new: ObjectId) -> Result<()> {
        self.update_ref_logged(name, expected, new, "", false)
    }

    fn update_ref_logged(
        &self,
        name: &str,
        expected: Expected,
        new: ObjectId,
        message: &str,
        reflog: bool,
    ) -> Result<()> {
        check_ref_name(name)?;
        let previous = match expected {
            Expected::MustNotExist => PreviousValue::MustNotExist,
            Expected::MustBe(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
        };
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: message.into(),
                },
                expected: previous,
                new: Target::Object(new),
            },
            name: full_name(name)?,
            deref: false,
        };
        if reflog {
            self.apply(&self.repo, name, expected, edit)
        } else {
            let mut unlogged = self.repo.clone();
            unlogged.refs.write_reflog = gix::refs::store::WriteReflog::Disable;
            self.apply(&unlogged, name, expected, edit)
        }
    }

    /// Deletes `name` if and only if it currently points at `expected`.
    pub fn delete_ref(&self, name: &str, expected: ObjectId) -> Result<()> {
        check_ref_name(name)?;
        let edit = RefEdit {
            change: Change::Delete {
                expected: PreviousValue::MustExistAndMatch(Target::Object(expected)),
                log: RefLog::AndReference,
            },
            name: full_name(name)?,
            deref: false,
        };
        self.apply(&self.repo, name, Expected::MustBe(expected), edit)
    }

    pub(crate) fn apply(
        &self,
        repo: &gix::Repository,
        name: &str,
        expected: Expected,
        edit: RefEdit,
    ) -> Result<()> {
        // Where git keeps reflogs (refs/remotes/* in a non-bare repository),
        // they need a committer; an unconfigured machine has none, so the
        // configured one is used if present, else larder's fixed identity.
        let (default_name, default_email) = DEFAULT_IDENTITY;
        let mut time_buf = gix::date::parse::TimeBuf::default();
        let now = gix::date::Time {
            seconds: unix_now(),
            offset: 0,
        };
        let fallback = gix::actor::SignatureRef {
            name: default_name.into(),
            email: default_email.into(),
            time: now.to_str(&mut time_buf),
        };
        let committer = match repo.committer() {
            Some(Ok(configured)) => configured,
            _ => fallback,
        };
        match repo.edit_references_as(Some(edit), Some(committer)) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_ref_error(name, expected, e)),
        }
    }

    /// Turns gix's ref-transaction error into a typed one through gix's
    /// own classification API (never by matching message strings).
    pub(crate) fn classify_ref_error(
        &self,
        name: &str,
        expected: Expected,
        e: gix::Error,
    ) -> GitError {
        use gix::refs::file::transaction::prepare;
        let conflict = |actual: Option<ObjectId>| GitError::RefConflict {
            name: name.into(),
            expected: expected.to_string(),
            actual,
        };
        if let Some(out_of_date) = e.downcast_any_ref::<prepare::ReferenceOutOfDate>() {
            return conflict(out_of_date.actual.try_id().map(ToOwned::to_owned));
        }
        if let Some(exists) = e.downcast_any_ref::<prepare::MustNotExist>() {
            return conflict(exists.actual.try_id().map(ToOwned::to_owned));
        }
        if e.is_conflict() {
            return conflict(self.ref_target(name).ok().flatten());
        }
        if e.is_not_found() && matches!(expected, Expected::MustBe(_)) {
            return conflict(None);
        }
        if e.is_retryable() {
            return GitError::RefLocked { name: name.into() };
        }
        GitError::gix(format!("updating reference {name}"), e)
    }

    /// Every reference whose full name starts with `prefix`, sorted by name.
    pub fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let platform = self
            .repo
            .references()
            .map_err(|e| GitError::gix("listing references", e))?;
        let iter = platform
            .prefixed(BStr::new(prefix.as_bytes()))
            .map_err(|e| GitError::gix(format!("listing references under {prefix}"), e))?;
        let mut out = Vec::new();
        for r in iter {
            let r =
                r.map_err(|e| GitError::gix(format!("listing references under {prefix}"), e))?;
            if let Some(id) = r.target().try_id() {
                out.push((
                    r.name().as_bstr().to_str_lossy().into_owned(),
                    id.to_owned(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Flushes a loose reference file and every directory from its own up
    /// to the git dir to disk: a ref written for the first time may have
    /// created its directories (`refs/larder/<log>/`), whose entries live
    /// in their parents.
    pub fn sync_ref(&self, name: &str) -> Result<()> {
        let file = self.git_dir().join(name);
        if file.exists() {
            sync_path(&file)?;
            let mut dir = file.parent();
            while let Some(d) = dir {
                sync_path(d)?;
                if d == self.git_dir() {
                    break;
                }
                dir = d.parent();
            }
        }
        Ok(())
    }

    /// Flushes every pack, its index and the pack directory to disk — after
    /// a transfer written by another writer (gix's network fetch), whose
    /// files were not flushed, under a durability that promises they are.
    pub fn sync_packs(&self) -> Result<()> {
        let dir = self.objects_dir().join("pack");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "pack" || x == "idx") {
                sync_path(&path)?;
            }
        }
        sync_path(&dir)
    }
}

/// `name` as gix's validated full reference name.
fn full_name(name: &str) -> Result<gix::refs::FullName> {
    name.try_into().map_err(
        |e: gix::validate::reference::name::Error| GitError::InvalidRefName {
            name: name.into(),
            reason: e.to_string(),
        },
    )
}

/// Rejects ref names that are not full `refs/...` names git would accept.
fn check_ref_name(name: &str) -> Result<()> {
    if !name.starts_with("refs/") {
        return Err(GitError::InvalidRefName {
            name: name.into(),
            reason: "must start with refs/".into(),
        });
    }
    gix::validate::reference::name(BStr::new(name.as_bytes())).map_err(|e| {
        GitError::InvalidRefName {
            name: name.into(),
            reason: e.to_string(),
        }
    })?;
    Ok(())
}
