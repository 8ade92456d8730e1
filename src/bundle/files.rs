//! The files exchanged between operator and auditor: signing request, signatures, bundle.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, SigningKey};
use serde::{Deserialize, Serialize};

use super::countersign::countersign_with_key;
use super::document::{DocumentError, FleetKeyDocument, document_digest, utc_time};
use super::keys::ed25519_fingerprint;
use super::statement::{Ciphersuite, DIGEST_LEN, Statement};

/// Value of the `format` field of a signing request.
pub const SIGNING_REQUEST_FORMAT: &str = "fleet-ceremony-signing-request-v1";
/// Value of the `format` field of an auditor signature file.
pub const AUDITOR_SIGNATURE_FORMAT: &str = "fleet-ceremony-auditor-signature-v1";
/// Value of the `format` field of an operator signature file.
pub const OPERATOR_SIGNATURE_FORMAT: &str = "fleet-ceremony-operator-signature-v1";
/// Value of the `format` field of a bundle.
pub const BUNDLE_FORMAT: &str = "fleet-ceremony-bundle-v1";
/// File name of the fleet-key document, as named in signing requests.
pub const DOCUMENT_FILE_NAME: &str = "fleet-key.json";

/// An invalid exchange file, or a signing request that does not match its document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The file is not valid JSON of the expected shape.
    #[error("{file} is not valid: {source}")]
    Json {
        /// Kind of file, such as "signing request".
        file: &'static str,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// The `format` field names another format.
    #[error("{file} has format \"{found}\"; expected \"{expected}\"")]
    Format {
        /// Kind of file.
        file: &'static str,
        /// The format that was found.
        found: String,
        /// The format expected.
        expected: &'static str,
    },
    /// A hex or base64 field does not decode to a value of the right length.
    #[error("field `{field}` is invalid: {reason}")]
    Field {
        /// The field, such as `auditor.digest`.
        field: &'static str,
        /// The reason the field is invalid.
        reason: String,
    },
    /// The fleet-key document is invalid.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The signing request and the document disagree.
    #[error(
        "signing request has {field} {request} but the document has {document}\nhint: the document changed after the request was written; ask the operator for the matching pair"
    )]
    RequestMismatch {
        /// The field that differs.
        field: &'static str,
        /// The value in the request.
        request: String,
        /// The value in the document (for `document_sha256`, the digest of its bytes).
        document: String,
    },
}

/// The signing request that the operator hands to the auditor with the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningRequest {
    /// Always [`SIGNING_REQUEST_FORMAT`].
    pub format: String,
    /// Identifier of the fleet.
    pub fleet_id: String,
    /// Namespace the statement will bind.
    pub namespace: String,
    /// Key epoch of the fleet.
    pub epoch: u64,
    /// File name of the document, [`DOCUMENT_FILE_NAME`].
    pub document: String,
    /// Hex SHA-256 of the document bytes.
    pub document_sha256: String,
    /// The fleet keys listed in the document.
    pub keys: Vec<RequestKey>,
    /// Time the request was made (RFC 3339, UTC).
    #[serde(with = "utc_time")]
    pub created_at: DateTime<Utc>,
}

/// A fleet key as shown to the auditor in a signing request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestKey {
    /// Key label on the HSMs.
    pub label: String,
    /// Key algorithm: `ecdsa-p256` or `ed25519`.
    pub algorithm: String,
    /// Hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fingerprint: String,
}

/// The auditor's signed statement, as it appears in a bundle (without `format`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditorSignature {
    /// Encoding of the signed bytes.
    pub ciphersuite: Ciphersuite,
    /// Namespace of the fleet.
    pub namespace: String,
    /// Signing time in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: u64,
    /// Key epoch of the fleet.
    pub epoch: u64,
    /// Hex SHA-256 of the document bytes.
    pub digest: String,
    /// Ed25519 signature, base64 (standard alphabet, padded).
    pub signature: String,
    /// Fingerprint of the auditor's public key.
    pub key_id: String,
}

/// The auditor signature file: [`AuditorSignature`] with its `format` field.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditorSignatureFile {
    format: String,
    ciphersuite: Ciphersuite,
    namespace: String,
    timestamp_ms: u64,
    epoch: u64,
    digest: String,
    signature: String,
    key_id: String,
}

/// The operator's counter-signature, as it appears in a bundle (without `format`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSignature {
    /// Ed25519 counter-signature, base64 (standard alphabet, padded).
    pub signature: String,
    /// Fingerprint of the operator's public key.
    pub key_id: String,
}

/// The operator signature file: [`OperatorSignature`] with its `format` field.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorSignatureFile {
    format: String,
    signature: String,
    key_id: String,
}

/// The evidence bundle: the exact document bytes and both signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// Base64 of the exact document bytes.
    pub document: String,
    /// The auditor's statement and signature.
    pub auditor: AuditorSignature,
    /// The operator's counter-signature.
    pub operator: OperatorSignature,
    /// The auditor log's checkpoint (signed note text) that the inclusion proof leads to.
    /// Absent in bundles of statements that were not logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The inclusion proof of this bundle's log entry in the checkpoint's tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<super::log_proof::InclusionProof>,
    /// Witnesses' sign-offs of the transcript digest that the document records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signoffs: Vec<super::signoff::Signoff>,
}

impl SigningRequest {
    /// Builds the request for `document`, whose stored bytes are `document_bytes`.
    pub fn for_document(
        document: &FleetKeyDocument,
        document_bytes: &[u8],
        created_at: DateTime<Utc>,
    ) -> Self {
        SigningRequest {
            format: SIGNING_REQUEST_FORMAT.to_string(),
            fleet_id: document.fleet_id.clone(),
            namespace: document.namespace.clone(),
            epoch: document.epoch,
            document: DOCUMENT_FILE_NAME.to_string(),
            document_sha256: hex::encode(document_digest(document_bytes)),
            keys: document.keys.iter().map(RequestKey::from).collect(),
            created_at,
        }
    }

    /// Parses a signing request and checks its `format` field.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, FilesError> {
        let request: SigningRequest = parse_json("signing request", bytes)?;
        check_format("signing request", &request.format, SIGNING_REQUEST_FORMAT)?;
        Ok(request)
    }

    /// Serialises the request as pretty JSON with a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        to_pretty_json(self)
    }
}

impl From<&super::document::KeyEntry> for RequestKey {
    fn from(entry: &super::document::KeyEntry) -> Self {
        RequestKey {
            label: entry.label.clone(),
            algorithm: entry.algorithm.clone(),
            fingerprint: entry.fingerprint.clone(),
        }
    }
}

impl AuditorSignature {
    /// Decodes the statement that [`AuditorSignature::signature`] covers.
    pub fn statement(&self) -> Result<Statement, FilesError> {
        Ok(Statement {
            ciphersuite: self.ciphersuite,
            namespace: self.namespace.clone(),
            timestamp_ms: self.timestamp_ms,
            epoch: self.epoch,
            digest: decode_digest("auditor.digest", &self.digest)?,
        })
    }

    /// Decodes the Ed25519 signature from base64.
    pub fn signature(&self) -> Result<Signature, FilesError> {
        decode_signature("auditor.signature", &self.signature)
    }

    /// Parses an auditor signature file and checks its `format` field.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, FilesError> {
        let file: AuditorSignatureFile = parse_json("auditor signature file", bytes)?;
        check_format(
            "auditor signature file",
            &file.format,
            AUDITOR_SIGNATURE_FORMAT,
        )?;
        Ok(AuditorSignature {
            ciphersuite: file.ciphersuite,
            namespace: file.namespace,
            timestamp_ms: file.timestamp_ms,
            epoch: file.epoch,
            digest: file.digest,
            signature: file.signature,
            key_id: file.key_id,
        })
    }

    /// Serialises the auditor signature file (with `format`) as pretty JSON.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        to_pretty_json(&AuditorSignatureFile {
            format: AUDITOR_SIGNATURE_FORMAT.to_string(),
            ciphersuite: self.ciphersuite,
            namespace: self.namespace.clone(),
            timestamp_ms: self.timestamp_ms,
            epoch: self.epoch,
            digest: self.digest.clone(),
            signature: self.signature.clone(),
            key_id: self.key_id.clone(),
        })
    }
}

impl OperatorSignature {
    /// Counter-signs the auditor's signature with the operator's key.
    ///
    /// This only signs. The caller verifies the auditor's signature against the pinned
    /// auditor key first.
    pub fn countersign(auditor: &AuditorSignature, key: &SigningKey) -> Result<Self, FilesError> {
        let auditor_signature = auditor.signature()?;
        let signature = countersign_with_key(key, &auditor_signature);
        Ok(OperatorSignature {
            signature: BASE64.encode(signature.to_bytes()),
            key_id: ed25519_fingerprint(&key.verifying_key()),
        })
    }

    /// Wraps a counter-signature made elsewhere, for example inside an HSM, with the
    /// key id of the operator key that made it. The caller verifies it first.
    pub fn from_signature(signature: &Signature, key: &ed25519_dalek::VerifyingKey) -> Self {
        OperatorSignature {
            signature: BASE64.encode(signature.to_bytes()),
            key_id: ed25519_fingerprint(key),
        }
    }

    /// Decodes the Ed25519 counter-signature from base64.
    pub fn signature(&self) -> Result<Signature, FilesError> {
        decode_signature("operator.signature", &self.signature)
    }

    /// Parses an operator signature file and checks its `format` field.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, FilesError> {
        let file: OperatorSignatureFile = parse_json("operator signature file", bytes)?;
        check_format(
            "operator signature file",
            &file.format,
            OPERATOR_SIGNATURE_FORMAT,
        )?;
        Ok(OperatorSignature {
            signature: file.signature,
            key_id: file.key_id,
        })
    }

    /// Serialises the operator signature file (with `format`) as pretty JSON.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        to_pretty_json(&OperatorSignatureFile {
            format: OPERATOR_SIGNATURE_FORMAT.to_string(),
            signature: self.signature.clone(),
            key_id: self.key_id.clone(),
        })
    }
}

impl Bundle {
    /// Puts the document bytes and both signatures into one bundle. Nothing is verified
    /// here.
    pub fn assemble(
        document_bytes: &[u8],
        auditor: &AuditorSignature,
        operator: &OperatorSignature,
    ) -> Self {
        Bundle {
            format: BUNDLE_FORMAT.to_string(),
            document: BASE64.encode(document_bytes),
            auditor: auditor.clone(),
            operator: operator.clone(),
            checkpoint: None,
            inclusion_proof: None,
            signoffs: Vec::new(),
        }
    }

    /// Decodes the exact document bytes from base64.
    pub fn document_bytes(&self) -> Result<Vec<u8>, FilesError> {
        BASE64
            .decode(&self.document)
            .map_err(|error| FilesError::Field {
                field: "document",
                reason: format!("not valid base64: {error}"),
            })
    }

    /// Parses a bundle and checks its `format` field.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, FilesError> {
        let bundle: Bundle = parse_json("bundle", bytes)?;
        check_format("bundle", &bundle.format, BUNDLE_FORMAT)?;
        Ok(bundle)
    }

    /// Serialises the bundle as pretty JSON with a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        to_pretty_json(self)
    }
}

/// Signs a document as the auditor, after checking it against the signing request.
///
/// Rejects the request when the digest of `document_bytes` differs from the request's
/// `document_sha256`, when `fleet_id`, `namespace`, `epoch` or the key list differ from
/// the document, or when a listed key does not match its SPKI.
pub fn sign_request(
    request: &SigningRequest,
    document_bytes: &[u8],
    key: &SigningKey,
    ciphersuite: Ciphersuite,
    timestamp_ms: u64,
) -> Result<AuditorSignature, FilesError> {
    let digest = document_digest(document_bytes);
    let document = FleetKeyDocument::from_json_bytes(document_bytes)?;
    check_request_matches(request, &document, &digest)?;
    document.check_keys()?;

    let statement = Statement {
        ciphersuite,
        namespace: document.namespace,
        timestamp_ms,
        epoch: document.epoch,
        digest,
    };
    let signature = statement.sign(key);
    Ok(AuditorSignature {
        ciphersuite,
        namespace: statement.namespace,
        timestamp_ms,
        epoch: statement.epoch,
        digest: hex::encode(digest),
        signature: BASE64.encode(signature.to_bytes()),
        key_id: ed25519_fingerprint(&key.verifying_key()),
    })
}

fn check_request_matches(
    request: &SigningRequest,
    document: &FleetKeyDocument,
    digest: &[u8; DIGEST_LEN],
) -> Result<(), FilesError> {
    let mismatch = |field, request: String, document: String| {
        Err(FilesError::RequestMismatch {
            field,
            request,
            document,
        })
    };

    let digest_hex = hex::encode(digest);
    if request.document_sha256 != digest_hex {
        return mismatch(
            "document_sha256",
            request.document_sha256.clone(),
            digest_hex,
        );
    }
    if request.fleet_id != document.fleet_id {
        return mismatch(
            "fleet_id",
            request.fleet_id.clone(),
            document.fleet_id.clone(),
        );
    }
    if request.namespace != document.namespace {
        return mismatch(
            "namespace",
            request.namespace.clone(),
            document.namespace.clone(),
        );
    }
    if request.epoch != document.epoch {
        return mismatch(
            "epoch",
            request.epoch.to_string(),
            document.epoch.to_string(),
        );
    }

    let document_keys: Vec<RequestKey> = document.keys.iter().map(RequestKey::from).collect();
    if request.keys != document_keys {
        return mismatch(
            "keys",
            describe_keys(&request.keys),
            describe_keys(&document_keys),
        );
    }
    Ok(())
}

fn describe_keys(keys: &[RequestKey]) -> String {
    let names: Vec<String> = keys
        .iter()
        .map(|key| format!("{} {} {}", key.label, key.algorithm, key.fingerprint))
        .collect();
    format!("[{}]", names.join(", "))
}

fn parse_json<T: serde::de::DeserializeOwned>(
    file: &'static str,
    bytes: &[u8],
) -> Result<T, FilesError> {
    serde_json::from_slice(bytes).map_err(|source| FilesError::Json { file, source })
}

fn check_format(file: &'static str, found: &str, expected: &'static str) -> Result<(), FilesError> {
    if found == expected {
        return Ok(());
    }
    Err(FilesError::Format {
        file,
        found: found.to_string(),
        expected,
    })
}

fn to_pretty_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("exchange files have no map keys");
    bytes.push(b'\n');
    bytes
}

fn decode_digest(field: &'static str, text: &str) -> Result<[u8; DIGEST_LEN], FilesError> {
    let invalid = |reason: String| FilesError::Field { field, reason };

    // Upper-case hex would be a second spelling of the same signed bundle.
    if text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err(invalid("not lowercase hex".to_owned()));
    }
    let bytes = hex::decode(text).map_err(|error| invalid(format!("not valid hex: {error}")))?;
    <[u8; DIGEST_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        invalid(format!(
            "expected {DIGEST_LEN} bytes (64 hex digits), found {}",
            bytes.len()
        ))
    })
}

fn decode_signature(field: &'static str, text: &str) -> Result<Signature, FilesError> {
    let invalid = |reason: String| FilesError::Field { field, reason };

    let bytes = BASE64
        .decode(text)
        .map_err(|error| invalid(format!("not valid base64: {error}")))?;
    Signature::from_slice(&bytes).map_err(|_| {
        invalid(format!(
            "expected a 64-byte signature, found {} bytes",
            bytes.len()
        ))
    })
}
