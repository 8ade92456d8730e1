//! Resharing: recovering the credentials from a quorum and splitting them again, under a
//! new credential set id, for a new set of custodians or a new threshold.

use std::path::{Path, PathBuf};

use crate::fsutil::{WriteError, write_new};

use super::combine::{ShareInput, combine};
use super::error::ShareError;
use super::split::{CustodianRecipient, ShareContext, ShareFile, check_split_inputs, split};

/// A new share set made from a quorum of old shares, not yet written to disk.
#[derive(Debug)]
pub struct Reshared {
    /// Ceremony and fleet, kept from the old shares.
    pub context: ShareContext,
    /// Id of the old share set.
    pub previous_credential_set: String,
    /// Id of the new share set; its commitment covers this id.
    pub credential_set: String,
    /// Number of new shares needed to recombine.
    pub threshold: u8,
    /// One encrypted share per new custodian, in the order given.
    pub files: Vec<ShareFile>,
    /// The members whose PINs the set holds, as (member, token label), in the order the
    /// old set lists them. Resharing keeps exactly the old set's members.
    pub members: Vec<(String, String)>,
}

/// Recovers the credentials from `inputs`, then splits the same PINs again under a new
/// random credential set id, `threshold` of `custodians.len()`.
///
/// The threshold, custodian names and recipients are checked before any share is
/// decrypted. Recovery checks everything [`combine`] checks, the commitment included. The
/// new id changes the secret and its commitment, so [`combine`] rejects a mix of old and
/// new shares. It does not revoke the old shares: a quorum of them still recovers the
/// same PINs until they are destroyed or the PINs are changed in the HSMs.
pub fn reshare(
    inputs: &[ShareInput],
    custodians: &[CustodianRecipient],
    threshold: u8,
) -> Result<Reshared, ShareError> {
    check_split_inputs(custodians, threshold)?;
    let recovered = combine(inputs)?;
    let previous_credential_set = recovered.credential_set_id;

    let credentials = recovered.credentials.with_new_id();
    let members = credentials
        .members
        .iter()
        .map(|entry| (entry.member.clone(), entry.token_label.clone()))
        .collect();
    let files = split(&credentials, &recovered.context, custodians, threshold)?;
    tracing::info!(
        previous = %previous_credential_set,
        credential_set = %credentials.id,
        threshold,
        count = files.len(),
        "reshared the credentials under a new credential set id"
    );
    Ok(Reshared {
        context: recovered.context,
        previous_credential_set,
        credential_set: credentials.id.clone(),
        threshold,
        files,
        members,
    })
}

/// Writes each share as `<dir>/<custodian>.age`, mode 0600, creating `dir` if needed.
///
/// Fails before writing anything when one of the files exists. When a later write fails,
/// the files this call wrote are removed again, so the set on disk is all or nothing.
/// Returns the paths in the order of `files`.
pub fn write_share_files(dir: &Path, files: &[ShareFile]) -> Result<Vec<PathBuf>, ShareError> {
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|file| dir.join(format!("{}.age", file.custodian)))
        .collect();
    // symlink_metadata also detects a dangling symbolic link, which write_new misses.
    if let Some(existing) = paths.iter().find(|path| path.symlink_metadata().is_ok()) {
        return Err(WriteError::Exists {
            path: existing.clone(),
        }
        .into());
    }

    for (written, (file, path)) in files.iter().zip(&paths).enumerate() {
        if let Err(error) = write_new(path, &file.armored, true) {
            for earlier in &paths[..written] {
                if let Err(remove) = std::fs::remove_file(earlier) {
                    tracing::warn!(file = %earlier.display(), %remove, "cannot remove a partial share set file");
                }
            }
            return Err(error.into());
        }
        crate::fault::kill_point(&format!("after-share-file-{}", file.custodian));
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share_file(custodian: &str) -> ShareFile {
        ShareFile {
            custodian: custodian.to_string(),
            index: 1,
            armored: format!("share of {custodian}\n").into_bytes(),
        }
    }

    #[test]
    fn write_creates_folder_and_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/shares");
        let paths = write_share_files(&out, &[share_file("dave"), share_file("erin")]).unwrap();
        assert_eq!(paths, vec![out.join("dave.age"), out.join("erin.age")]);
        assert_eq!(std::fs::read(&paths[1]).unwrap(), b"share of erin\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&paths[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn write_rejects_existing_file_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("erin.age"), b"old").unwrap();
        let error =
            write_share_files(dir.path(), &[share_file("dave"), share_file("erin")]).unwrap_err();
        assert!(error.to_string().contains("erin.age"), "{error}");
        assert!(!dir.path().join("dave.age").exists());
        assert_eq!(std::fs::read(dir.path().join("erin.age")).unwrap(), b"old");
    }

    #[test]
    fn write_rejects_dangling_symlink() {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dave.age"))
                .unwrap();
            let error = write_share_files(dir.path(), &[share_file("dave")]).unwrap_err();
            assert!(error.to_string().contains("already exists"), "{error}");
        }
    }
}
