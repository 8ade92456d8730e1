//! Decrypting custodian share files, checking them, and recombining the credential set.

use std::io::Read;
use std::path::{Path, PathBuf};

use age::armor::ArmoredReader;
use blahaj::Share;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::credentials::CredentialSet;
use super::error::ShareError;
use super::recipients::{load_identities, read_secret_file};
use super::record::{ShareRecord, commitment};
use super::shamir::recover_secret;
use super::split::ShareContext;

/// Largest share file read, in bytes; a share of a 100-member credential set is about
/// 40 KiB armored.
const MAX_SHARE_FILE_BYTES: u64 = 1024 * 1024;

/// Most threshold-sized subsets tried when looking for the corrupted share among extra
/// shares.
const MAX_LOCATE_SUBSETS: usize = 1000;

/// A share file and the identity file of its custodian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareInput {
    /// The age-encrypted share file.
    pub path: PathBuf,
    /// The custodian's age identity file or unencrypted OpenSSH private key.
    pub identity: PathBuf,
}

/// The non-secret facts of one decrypted share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSummary {
    /// Ceremony id.
    pub ceremony: String,
    /// Fleet name.
    pub fleet: String,
    /// Id of the shared credential set.
    pub credential_set: String,
    /// Custodian the share belongs to.
    pub custodian: String,
    /// x-coordinate of the share.
    pub index: u8,
    /// Number of shares needed to recombine.
    pub threshold: u8,
    /// Number of shares made.
    pub count: u8,
}

/// A recombined credential set and the split it came from.
#[derive(Debug)]
pub struct Recovered {
    /// Ceremony and fleet recorded in the shares.
    pub context: ShareContext,
    /// Id of the credential set, as recorded in the shares.
    pub credential_set_id: String,
    /// Number of shares needed to recombine.
    pub threshold: u8,
    /// Number of shares made.
    pub count: u8,
    /// The recovered credentials.
    pub credentials: CredentialSet,
}

/// A decrypted share and where it came from.
struct OpenedShare {
    path: PathBuf,
    record: ShareRecord,
    ciphertext_sha256: [u8; 32],
}

/// Decrypts one share file with its identity and checks the record's structure.
///
/// Checks what [`ShareRecord::from_json`] checks. It cannot tell whether the share
/// itself was altered: only [`combine`] detects that, through the commitment.
pub fn verify_share(input: &ShareInput) -> Result<ShareSummary, ShareError> {
    let opened = open_share(input)?;
    let record = &opened.record;
    tracing::debug!(
        path = %input.path.display(),
        custodian = %record.custodian,
        index = record.index,
        "share file decrypts and is well formed"
    );
    Ok(ShareSummary {
        ceremony: record.ceremony.clone(),
        fleet: record.fleet.clone(),
        credential_set: record.credential_set.clone(),
        custodian: record.custodian.clone(),
        index: record.index,
        threshold: record.threshold,
        count: record.count,
    })
}

/// Decrypts share files, checks that they belong together, and recombines the
/// credential set.
///
/// Each of these errors names the offending file:
/// - a file that does not decrypt with its identity, or is not a share record;
/// - the same file given twice, by path, hard link or byte-identical copy;
/// - two shares with the same index or custodian;
/// - a ceremony, fleet, credential set, threshold, count, commitment or share length
///   that differs from the first file's.
///
/// It also rejects fewer shares than the threshold, and a result that does not match the
/// commitment. When more shares than the threshold were given, that error names the
/// shares that lie outside a consistent subset.
pub fn combine(inputs: &[ShareInput]) -> Result<Recovered, ShareError> {
    if inputs.is_empty() {
        return Err(ShareError::NotEnoughShares {
            given: 0,
            threshold: 0,
        });
    }
    check_distinct_paths(inputs)?;

    let mut opened: Vec<OpenedShare> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let share = open_share(input)?;
        check_against_earlier(&share, &opened)?;
        opened.push(share);
    }

    let first = &opened[0].record;
    let threshold = first.threshold;
    if opened.len() < usize::from(threshold) {
        return Err(ShareError::NotEnoughShares {
            given: opened.len(),
            threshold,
        });
    }

    let shares = opened
        .iter()
        .map(to_blahaj_share)
        .collect::<Result<Vec<_>, _>>()?;
    // check_against_earlier rejected differing lengths and repeated indexes, and the
    // count is at least the threshold, so blahaj has no reason left to fail.
    let secret = recover_secret(&shares, threshold).ok_or(ShareError::NotEnoughShares {
        given: opened.len(),
        threshold,
    })?;
    if commitment(&first.credential_set, &secret) != first.commitment {
        return Err(commitment_mismatch(&opened, &shares));
    }

    let credentials = CredentialSet::from_secret_bytes(&secret)?;
    if credentials.id != first.credential_set {
        return Err(ShareError::InvalidCredentials {
            reason: format!(
                "the recombined set has id {}, but the shares name {}",
                credentials.id, first.credential_set
            ),
        });
    }
    tracing::info!(
        credential_set = %credentials.id,
        shares = opened.len(),
        threshold,
        "recombined the credential set and matched its commitment"
    );
    Ok(Recovered {
        context: ShareContext {
            ceremony: first.ceremony.clone(),
            fleet: first.fleet.clone(),
        },
        credential_set_id: first.credential_set.clone(),
        threshold,
        count: first.count,
        credentials,
    })
}

/// Reads, decrypts and parses one share file.
fn open_share(input: &ShareInput) -> Result<OpenedShare, ShareError> {
    let ciphertext = read_secret_file(&input.path, MAX_SHARE_FILE_BYTES)?;
    let identities = load_identities(&input.identity)?;
    let plaintext = decrypt(&ciphertext, &identities).map_err(|failure| match failure {
        DecryptFailure::Damaged(reason) => ShareError::InvalidShareFile {
            path: input.path.clone(),
            reason: format!(
                "{reason}\nhint: the file is damaged or truncated; ask the custodian for the copy the ceremony wrote"
            ),
        },
        DecryptFailure::Identity(reason) => ShareError::Decrypt {
            path: input.path.clone(),
            identity: input.identity.clone(),
            reason,
        },
    })?;
    let invalid = |reason: String| ShareError::InvalidShareFile {
        path: input.path.clone(),
        reason,
    };
    let recipients = recipient_count(&ciphertext).map_err(invalid)?;
    if recipients != 1 {
        return Err(invalid(format!(
            "it is encrypted to {recipients} recipients, but a share must be readable by its \
             custodian alone\nhint: use the share file as the ceremony wrote it; a custodian \
             who received this copy should assume the other recipients can read the share"
        )));
    }
    let record = ShareRecord::from_json(&plaintext).map_err(|error| match error {
        ShareError::InvalidRecord { reason } => ShareError::InvalidShareFile {
            path: input.path.clone(),
            reason,
        },
        other => other,
    })?;
    Ok(OpenedShare {
        path: input.path.clone(),
        record,
        ciphertext_sha256: Sha256::digest(ciphertext.as_slice()).into(),
    })
}

/// Decrypts armored or binary age ciphertext into a buffer wiped on drop.
fn decrypt(
    ciphertext: &[u8],
    identities: &[Box<dyn age::Identity>],
) -> Result<Zeroizing<Vec<u8>>, DecryptFailure> {
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(ciphertext))
        .map_err(|error| DecryptFailure::Damaged(format!("it is not an age file ({error})")))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|identity| identity.as_ref()))
        .map_err(|error| DecryptFailure::Identity(error.to_string()))?;

    // The plaintext is shorter than the ciphertext, so the buffer never reallocates.
    let mut plaintext = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader.read_to_end(&mut plaintext).map_err(|error| {
        DecryptFailure::Damaged(format!("its ciphertext is corrupted ({error})"))
    })?;
    Ok(plaintext)
}

/// The reason a share file did not decrypt.
enum DecryptFailure {
    /// The file is not intact age ciphertext, whatever the identity.
    Damaged(String),
    /// The file is intact, but no identity given opens it.
    Identity(String),
}

/// Largest age header read when counting recipients. A share's header is a few hundred
/// bytes.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// Counts the recipient stanzas in the header of armored or binary age ciphertext. Grease
/// stanzas, whose type ends in `-grease` and which age writers add to keep readers
/// tolerant of unknown types, are not recipients.
fn recipient_count(ciphertext: &[u8]) -> Result<usize, String> {
    let mut header = Vec::new();
    ArmoredReader::new(ciphertext)
        .take(MAX_HEADER_BYTES)
        .read_to_end(&mut header)
        .map_err(|error| format!("not an age file ({error})"))?;
    let mut lines = header.split(|byte| *byte == b'\n');
    if lines.next() != Some(b"age-encryption.org/v1".as_slice()) {
        return Err("its age header does not start with the version line".to_owned());
    }
    let mut count = 0;
    for line in lines {
        if line.starts_with(b"---") {
            return Ok(count);
        }
        if let Some(stanza) = line.strip_prefix(b"-> ") {
            let kind = stanza
                .split(|byte| *byte == b' ')
                .next()
                .unwrap_or_default();
            if !kind.ends_with(b"-grease") {
                count += 1;
            }
        }
    }
    Err(format!(
        "its age header is longer than {MAX_HEADER_BYTES} bytes or has no end line"
    ))
}

/// Rejects a file given twice under the same path, another spelling or a hard link.
fn check_distinct_paths(inputs: &[ShareInput]) -> Result<(), ShareError> {
    let mut seen: Vec<(FileIdentity, &Path)> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let identity = file_identity(&input.path)?;
        if let Some((_, first)) = seen.iter().find(|(other, _)| *other == identity) {
            return Err(ShareError::DuplicateFile {
                path: input.path.clone(),
                first: first.to_path_buf(),
            });
        }
        seen.push((identity, &input.path));
    }
    Ok(())
}

/// Identity of a file on disk: device and inode on Unix, else the canonical path.
#[derive(PartialEq, Eq)]
enum FileIdentity {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg(not(unix))]
    Canonical(PathBuf),
}

/// Looks up the [`FileIdentity`] of `path`.
fn file_identity(path: &Path) -> Result<FileIdentity, ShareError> {
    let read_error = |source| ShareError::Read {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path).map_err(read_error)?;
        Ok(FileIdentity::Inode(metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        Ok(FileIdentity::Canonical(
            std::fs::canonicalize(path).map_err(read_error)?,
        ))
    }
}

/// Checks a newly opened share against the shares opened before it.
fn check_against_earlier(share: &OpenedShare, earlier: &[OpenedShare]) -> Result<(), ShareError> {
    let Some(first) = earlier.first() else {
        return Ok(());
    };
    for other in earlier {
        if other.ciphertext_sha256 == share.ciphertext_sha256 {
            return Err(ShareError::DuplicateFile {
                path: share.path.clone(),
                first: other.path.clone(),
            });
        }
    }

    let expected = &first.record;
    let found = &share.record;
    let fields = [
        (
            "ceremony",
            expected.ceremony.clone(),
            found.ceremony.clone(),
        ),
        ("fleet", expected.fleet.clone(), found.fleet.clone()),
        (
            "credential_set",
            expected.credential_set.clone(),
            found.credential_set.clone(),
        ),
        (
            "threshold",
            expected.threshold.to_string(),
            found.threshold.to_string(),
        ),
        ("count", expected.count.to_string(), found.count.to_string()),
        (
            "commitment",
            hex::encode(expected.commitment),
            hex::encode(found.commitment),
        ),
        (
            "share length",
            expected.share.len().to_string(),
            found.share.len().to_string(),
        ),
    ];
    for (field, expected, found) in fields {
        if expected != found {
            return Err(ShareError::Mismatch {
                path: share.path.clone(),
                first: first.path.clone(),
                field,
                expected,
                found,
            });
        }
    }

    for other in earlier {
        if other.record.index == found.index {
            return Err(ShareError::DuplicateIndex {
                path: share.path.clone(),
                first: other.path.clone(),
                index: found.index,
            });
        }
        if other.record.custodian == found.custodian {
            return Err(ShareError::DuplicateShareCustodian {
                path: share.path.clone(),
                first: other.path.clone(),
                custodian: found.custodian.clone(),
            });
        }
    }
    Ok(())
}

/// Converts a record's share bytes to a blahaj share.
fn to_blahaj_share(share: &OpenedShare) -> Result<Share, ShareError> {
    Share::try_from(share.record.share.as_slice()).map_err(|reason| ShareError::InvalidShareFile {
        path: share.path.clone(),
        reason: reason.to_string(),
    })
}

/// Builds the error for a result that fails the commitment, naming the corrupted shares
/// when extra shares make it possible to find them.
fn commitment_mismatch(opened: &[OpenedShare], shares: &[Share]) -> ShareError {
    let all_paths = || opened.iter().map(|share| share.path.clone()).collect();
    let record = &opened[0].record;
    let threshold = usize::from(record.threshold);
    if shares.len() == threshold {
        return ShareError::CommitmentMismatch {
            paths: all_paths(),
            hint: "add the share of one more custodian to find the corrupted one",
        };
    }

    let matches = |positions: &[usize]| {
        recover_secret(
            positions.iter().map(|&position| &shares[position]),
            record.threshold,
        )
        .is_some_and(|secret| commitment(&record.credential_set, &secret) == record.commitment)
    };
    let consistent = threshold_subsets(shares.len(), threshold)
        .take(MAX_LOCATE_SUBSETS)
        .find(|subset| matches(subset));
    let Some(consistent) = consistent else {
        return ShareError::CommitmentMismatch {
            paths: all_paths(),
            hint: "more than one share is corrupted, or too many to search; try other shares",
        };
    };

    // A share lies on the committed polynomial exactly when it can replace a member of
    // a consistent subset.
    let corrupted = (0..shares.len())
        .filter(|position| !consistent.contains(position))
        .filter(|&position| {
            let mut trial = consistent.clone();
            trial[0] = position;
            !matches(&trial)
        })
        .map(|position| opened[position].path.clone())
        .collect();
    ShareError::CommitmentMismatch {
        paths: corrupted,
        hint: "leave out these files and combine again; the other shares are consistent",
    }
}

/// Iterates over the `size`-element subsets of `0..count` in lexicographic order.
fn threshold_subsets(count: usize, size: usize) -> impl Iterator<Item = Vec<usize>> {
    let mut next = (size <= count).then(|| (0..size).collect::<Vec<usize>>());
    std::iter::from_fn(move || {
        let current = next.take()?;
        let mut following = current.clone();
        // Advance the rightmost position that can still move right.
        let movable = (0..size)
            .rev()
            .find(|&slot| following[slot] < count - size + slot);
        if let Some(slot) = movable {
            following[slot] += 1;
            for later in slot + 1..size {
                following[later] = following[later - 1] + 1;
            }
            next = Some(following);
        }
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_in_lexicographic_order() {
        let subsets: Vec<_> = threshold_subsets(4, 2).collect();
        assert_eq!(
            subsets,
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(threshold_subsets(10, 5).count(), 252);
        assert_eq!(threshold_subsets(3, 4).count(), 0);
    }

    #[test]
    fn combine_rejects_empty_input() {
        let error = combine(&[]).unwrap_err();
        assert!(matches!(
            error,
            ShareError::NotEnoughShares { given: 0, .. }
        ));
    }
}
