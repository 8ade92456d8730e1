//! Differences between the fleet keys of two consecutive epochs of a namespace.

use std::fmt;

use super::document::{FleetKeyDocument, KeyEntry};

/// Two documents that are not consecutive epochs of one namespace.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiffError {
    /// The documents are of different namespaces.
    #[error("namespaces differ: old is \"{old}\", new is \"{new}\"")]
    Namespace {
        /// The old document's namespace.
        old: String,
        /// The new document's namespace.
        new: String,
    },
    /// The new epoch is not the old epoch plus one.
    #[error("new epoch {new} does not follow old epoch {old}; expected epoch {expected}", expected = old.saturating_add(1))]
    Epoch {
        /// The old epoch.
        old: u64,
        /// The new epoch.
        new: u64,
    },
}

/// The keys added, removed and changed from one epoch to the next, matched by label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyDiff {
    /// The namespace.
    pub namespace: String,
    /// The old epoch.
    pub old_epoch: u64,
    /// The new epoch.
    pub new_epoch: u64,
    /// Keys whose label is only in the new document.
    pub added: Vec<KeyEntry>,
    /// Keys whose label is only in the old document.
    pub removed: Vec<KeyEntry>,
    /// Keys with the same label but another algorithm or fingerprint: (old, new).
    pub changed: Vec<(KeyEntry, KeyEntry)>,
    /// Labels of keys present and equal in both.
    pub unchanged: Vec<String>,
}

/// Compares the keys of `old` and `new`, which must be of one namespace with `new`'s
/// epoch one more than `old`'s. Compares the listed keys only, not members or custodians.
pub fn diff_documents(
    old: &FleetKeyDocument,
    new: &FleetKeyDocument,
) -> Result<KeyDiff, DiffError> {
    if old.namespace != new.namespace {
        return Err(DiffError::Namespace {
            old: old.namespace.clone(),
            new: new.namespace.clone(),
        });
    }
    if old.epoch.checked_add(1) != Some(new.epoch) {
        return Err(DiffError::Epoch {
            old: old.epoch,
            new: new.epoch,
        });
    }

    let mut diff = KeyDiff {
        namespace: new.namespace.clone(),
        old_epoch: old.epoch,
        new_epoch: new.epoch,
        ..KeyDiff::default()
    };
    for key in &new.keys {
        match old.keys.iter().find(|old_key| old_key.label == key.label) {
            None => diff.added.push(key.clone()),
            Some(old_key) if same_key(old_key, key) => diff.unchanged.push(key.label.clone()),
            Some(old_key) => diff.changed.push((old_key.clone(), key.clone())),
        }
    }
    for key in &old.keys {
        if !new.keys.iter().any(|new_key| new_key.label == key.label) {
            diff.removed.push(key.clone());
        }
    }
    Ok(diff)
}

fn same_key(a: &KeyEntry, b: &KeyEntry) -> bool {
    a.algorithm == b.algorithm && a.fingerprint == b.fingerprint && a.role == b.role
}

impl fmt::Display for KeyDiff {
    /// Writes one line per key: `+` added, `-` removed, `~` changed, `=` unchanged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "namespace {}: epoch {} -> {}",
            self.namespace, self.old_epoch, self.new_epoch
        )?;
        for key in &self.added {
            writeln!(
                f,
                "+ {} {} sha256 {}",
                key.label, key.algorithm, key.fingerprint
            )?;
        }
        for key in &self.removed {
            writeln!(
                f,
                "- {} {} sha256 {}",
                key.label, key.algorithm, key.fingerprint
            )?;
        }
        for (old, new) in &self.changed {
            writeln!(
                f,
                "~ {} {} sha256 {} -> {} sha256 {}",
                new.label, old.algorithm, old.fingerprint, new.algorithm, new.fingerprint
            )?;
        }
        for label in &self.unchanged {
            writeln!(f, "= {label}")?;
        }
        Ok(())
    }
}
