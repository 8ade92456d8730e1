//! Splitting a credential set k-of-n and encrypting each share to one custodian.

use std::collections::HashMap;
use std::io::Write;

use age::armor::{ArmoredWriter, Format};
use zeroize::Zeroizing;

use super::credentials::CredentialSet;
use super::error::ShareError;
use super::recipients::parse_recipient;
use super::record::{ShareRecord, commitment};
use super::shamir::{check_recombination, deal_shares};

/// Maximum custodian name length in bytes, so that `<name>.age` fits a file name.
const MAX_CUSTODIAN_NAME_BYTES: usize = 200;

/// The ceremony and fleet a split belongs to, recorded in every share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareContext {
    /// Ceremony id.
    pub ceremony: String,
    /// Fleet name.
    pub fleet: String,
}

/// A custodian and the age recipient their share is encrypted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodianRecipient {
    /// Custodian name; the share file is written as `<name>.age`.
    pub name: String,
    /// age X25519 recipient (`age1...`) or SSH public key line.
    pub recipient: String,
}

/// One custodian's encrypted share, ready to write to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareFile {
    /// Custodian name.
    pub custodian: String,
    /// x-coordinate of the share, from 1 to the number of custodians.
    pub index: u8,
    /// ASCII-armored age ciphertext to this custodian's recipient only. Not secret.
    pub armored: Vec<u8>,
}

/// Splits `credentials` into one share per custodian, `threshold` of which recombine it,
/// and encrypts each share record to its custodian's recipient.
///
/// Custodian `i` (from 0) gets index `i + 1`. Before encrypting anything, the shares are
/// recombined (every subset of `threshold` shares when there are at most 8, otherwise a
/// sample that includes the first and the last `threshold`) and compared with the
/// commitment. Rejects a threshold below 2 or above the number of custodians, more than
/// 255 custodians, custodian names that repeat (ignoring case) or cannot be file names,
/// an empty ceremony or fleet, an invalid credential set and invalid recipients.
pub fn split(
    credentials: &CredentialSet,
    context: &ShareContext,
    custodians: &[CustodianRecipient],
    threshold: u8,
) -> Result<Vec<ShareFile>, ShareError> {
    check_context(context)?;
    let count = check_custodians(custodians, threshold)?;
    credentials.validate()?;
    let recipients = parse_recipients(custodians)?;

    let secret = credentials.to_secret_bytes();
    let commitment = commitment(&credentials.id, &secret);
    let shares = deal_shares(&secret, threshold, count);
    let checked = check_recombination(&shares, threshold, &credentials.id, &commitment)?;
    tracing::debug!(
        credential_set = %credentials.id,
        subsets = checked,
        "shares recombine to the committed credential set"
    );

    let mut files = Vec::with_capacity(custodians.len());
    for ((custodian, recipient), share) in custodians.iter().zip(&recipients).zip(&shares) {
        let record = ShareRecord {
            ceremony: context.ceremony.clone(),
            fleet: context.fleet.clone(),
            credential_set: credentials.id.clone(),
            custodian: custodian.name.clone(),
            threshold,
            count,
            index: share.x.0,
            share: Zeroizing::new(Vec::from(share)),
            commitment,
        };
        let armored = encrypt_armored(recipient.as_ref(), &record.to_json()).map_err(|error| {
            ShareError::Encrypt {
                custodian: custodian.name.clone(),
                reason: error.to_string(),
            }
        })?;
        files.push(ShareFile {
            custodian: custodian.name.clone(),
            index: record.index,
            armored,
        });
    }
    tracing::info!(
        credential_set = %credentials.id,
        threshold,
        count,
        "split the credential set into encrypted custodian shares"
    );
    Ok(files)
}

/// Parses each custodian's recipient, naming the custodian in errors.
fn parse_recipients(
    custodians: &[CustodianRecipient],
) -> Result<Vec<Box<dyn age::Recipient + Send>>, ShareError> {
    custodians
        .iter()
        .map(|custodian| {
            parse_recipient(&custodian.recipient).map_err(|error| match error {
                ShareError::InvalidRecipient { reason } => ShareError::CustodianRecipient {
                    custodian: custodian.name.clone(),
                    reason,
                },
                other => other,
            })
        })
        .collect()
}

/// Checks what [`split`] checks about the custodians and the threshold, without a
/// credential set: the threshold, the names and the recipients.
pub(super) fn check_split_inputs(
    custodians: &[CustodianRecipient],
    threshold: u8,
) -> Result<(), ShareError> {
    check_custodians(custodians, threshold)?;
    parse_recipients(custodians)?;
    Ok(())
}

/// Rejects an empty ceremony id or fleet name.
fn check_context(context: &ShareContext) -> Result<(), ShareError> {
    if context.ceremony.is_empty() {
        return Err(ShareError::EmptyContext { field: "ceremony" });
    }
    if context.fleet.is_empty() {
        return Err(ShareError::EmptyContext { field: "fleet" });
    }
    Ok(())
}

/// Checks the custodian list against the threshold and returns the share count.
fn check_custodians(custodians: &[CustodianRecipient], threshold: u8) -> Result<u8, ShareError> {
    let count = u8::try_from(custodians.len()).map_err(|_| ShareError::TooManyCustodians {
        count: custodians.len(),
    })?;
    if threshold < 2 {
        return Err(ShareError::ThresholdTooLow { threshold });
    }
    if threshold > count {
        return Err(ShareError::ThresholdAboveCount {
            threshold,
            count: custodians.len(),
        });
    }

    let mut seen = HashMap::new();
    for custodian in custodians {
        check_custodian_name(&custodian.name)?;
        if seen.insert(custodian.name.to_lowercase(), ()).is_some() {
            return Err(ShareError::DuplicateCustodian {
                name: custodian.name.clone(),
            });
        }
    }
    Ok(count)
}

/// Rejects custodian names that are unsafe or ambiguous as a file name stem.
fn check_custodian_name(name: &str) -> Result<(), ShareError> {
    let reason = if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > MAX_CUSTODIAN_NAME_BYTES {
        Some("the name is longer than 200 bytes")
    } else if name.trim() != name {
        Some("the name starts or ends with whitespace")
    } else if name.starts_with('.') {
        Some("the name starts with a dot")
    } else if name.contains(['/', '\\']) {
        Some("the name contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("the name contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ShareError::InvalidCustodianName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Encrypts `plaintext` to one recipient as ASCII-armored age.
fn encrypt_armored(
    recipient: &(dyn age::Recipient + Send),
    plaintext: &[u8],
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let recipient: &dyn age::Recipient = recipient;
    let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient))?;
    let mut armored = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut armored, Format::AsciiArmor)?;
    let mut writer = encryptor.wrap_output(armor)?;
    writer.write_all(plaintext)?;
    writer.finish()?.finish()?;
    Ok(armored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn custodians(count: usize) -> (Vec<CustodianRecipient>, Vec<age::x25519::Identity>) {
        let identities: Vec<_> = (0..count)
            .map(|_| age::x25519::Identity::generate())
            .collect();
        let custodians = identities
            .iter()
            .enumerate()
            .map(|(position, identity)| CustodianRecipient {
                name: format!("custodian-{position}"),
                recipient: identity.to_public().to_string(),
            })
            .collect();
        (custodians, identities)
    }

    fn context() -> ShareContext {
        ShareContext {
            ceremony: "ceremony-1".to_string(),
            fleet: "fleet-1".to_string(),
        }
    }

    fn credentials() -> CredentialSet {
        CredentialSet::generate(&[("hsm-a".to_string(), "token-a".to_string())])
    }

    #[test]
    fn split_makes_one_armored_share_per_custodian() {
        let (custodians, identities) = custodians(4);
        let set = credentials();
        let files = split(&set, &context(), &custodians, 3).unwrap();
        assert_eq!(files.len(), 4);
        for (position, file) in files.iter().enumerate() {
            assert_eq!(file.custodian, custodians[position].name);
            assert_eq!(usize::from(file.index), position + 1);
            assert!(
                file.armored
                    .starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
            );

            let plaintext = age::decrypt(&identities[position], &file.armored).unwrap();
            let record = ShareRecord::from_json(&plaintext).unwrap();
            assert_eq!(record.custodian, file.custodian);
            assert_eq!(record.index, file.index);
            assert_eq!(record.threshold, 3);
            assert_eq!(record.count, 4);
            assert_eq!(record.credential_set, set.id);
            assert_eq!(
                record.commitment,
                commitment(&set.id, &set.to_secret_bytes())
            );

            let other = &identities[(position + 1) % 4];
            assert!(age::decrypt(other, &file.armored).is_err());
        }
    }

    #[test]
    fn split_rejects_bad_thresholds() {
        let (custodians, _) = custodians(3);
        let set = credentials();
        for threshold in [0, 1] {
            let error = split(&set, &context(), &custodians, threshold).unwrap_err();
            assert!(
                matches!(error, ShareError::ThresholdTooLow { .. }),
                "{error}"
            );
        }
        let error = split(&set, &context(), &custodians, 4).unwrap_err();
        assert!(matches!(
            error,
            ShareError::ThresholdAboveCount {
                threshold: 4,
                count: 3
            }
        ));
    }

    #[test]
    fn split_rejects_more_than_255_custodians() {
        let recipient = age::x25519::Identity::generate().to_public().to_string();
        let many: Vec<_> = (0..256)
            .map(|position| CustodianRecipient {
                name: format!("c{position}"),
                recipient: recipient.clone(),
            })
            .collect();
        let error = split(&credentials(), &context(), &many, 2).unwrap_err();
        assert!(matches!(
            error,
            ShareError::TooManyCustodians { count: 256 }
        ));
    }

    #[test]
    fn split_rejects_duplicate_names() {
        let (mut custodians, _) = custodians(3);
        custodians[2].name = "Custodian-0".to_string();
        let error = split(&credentials(), &context(), &custodians, 2).unwrap_err();
        assert!(
            matches!(error, ShareError::DuplicateCustodian { ref name } if name == "Custodian-0")
        );
    }

    #[test]
    fn split_rejects_unsafe_names() {
        for name in ["", "../alice", "a/b", ".hidden", " alice", "a\nb", "a\\b"] {
            let (mut custodians, _) = custodians(2);
            custodians[0].name = name.to_string();
            let error = split(&credentials(), &context(), &custodians, 2).unwrap_err();
            assert!(
                matches!(error, ShareError::InvalidCustodianName { .. }),
                "{name:?}: {error}"
            );
        }
    }

    #[test]
    fn split_rejects_bad_recipient_naming_custodian() {
        let (mut custodians, identities) = custodians(2);
        custodians[1].recipient = identities[1].to_string().expose_secret().to_string();
        let error = split(&credentials(), &context(), &custodians, 2).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("custodian custodian-1"), "{message}");
        assert!(
            !message.contains(&custodians[1].recipient[16..]),
            "{message}"
        );
    }

    #[test]
    fn split_rejects_empty_context() {
        let (custodians, _) = custodians(2);
        let mut context = context();
        context.fleet.clear();
        let error = split(&credentials(), &context, &custodians, 2).unwrap_err();
        assert!(matches!(error, ShareError::EmptyContext { field: "fleet" }));
    }
}
