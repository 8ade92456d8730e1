//! Helpers shared by the integration tests: fresh keys, a sample document, bundles.

#![allow(dead_code)]

use std::io::Read;

use chrono::{TimeZone, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use fleet_ceremony::bundle::keys::{ed25519_fingerprint, ed25519_spki_pem};
use fleet_ceremony::bundle::{
    AuditorSignature, Bundle, Ciphersuite, CustodianSummary, FleetKeyDocument, KeyEntry,
    MemberEntry, OperatorSignature, SigningRequest, Statement, Trust, document_digest, fingerprint,
    sign_request,
};
use p256::pkcs8::EncodePublicKey;

/// Returns 32 bytes from the operating system's random source.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// Returns a fresh Ed25519 signing key.
pub fn random_signing_key() -> SigningKey {
    SigningKey::from_bytes(&random_bytes())
}

/// Returns the SPKI PEM of a fresh P-256 public key.
pub fn random_p256_pem() -> String {
    let secret = p256::SecretKey::from_slice(&random_bytes()).unwrap();
    secret
        .public_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
}

/// Builds the key entry for a fleet key given as SPKI PEM.
pub fn key_entry(label: &str, algorithm: &str, spki_pem: String) -> KeyEntry {
    let (_, der) = spki::der::Document::from_pem(&spki_pem).unwrap();
    KeyEntry {
        role: "fleet".to_string(),
        label: label.to_string(),
        algorithm: algorithm.to_string(),
        fingerprint: fingerprint(der.as_bytes()),
        spki_pem,
    }
}

/// Returns a complete document with fresh P-256 and Ed25519 fleet keys.
pub fn sample_document() -> FleetKeyDocument {
    let ed25519_pem = ed25519_spki_pem(&random_signing_key().verifying_key());
    let member = MemberEntry {
        name: "hsm-a".to_string(),
        site: "site-1".to_string(),
        token_label: "fleet-a".to_string(),
        token_serial: "0123456789".to_string(),
        model: "SoftHSM v2".to_string(),
        manufacturer: "SoftHSM project".to_string(),
        attested: false,
        key_attributes: [
            ("CKA_EXTRACTABLE".to_string(), serde_json::json!(false)),
            ("CKA_SENSITIVE".to_string(), serde_json::json!(true)),
        ]
        .into_iter()
        .collect(),
        origin: true,
    };
    FleetKeyDocument {
        format: "fleet-ceremony-document-v1".to_string(),
        fleet_id: "fleet-eu-1".to_string(),
        namespace: "fleet.example.com".to_string(),
        epoch: 3,
        created_at: Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap(),
        keys: vec![
            key_entry("fleet-signing", "ecdsa-p256", random_p256_pem()),
            key_entry("fleet-backup", "ed25519", ed25519_pem),
        ],
        members: vec![member],
        custodians: CustodianSummary {
            threshold: 2,
            names: vec!["alice".to_string(), "bob".to_string(), "carol".to_string()],
        },
        transcript_sha256: "11".repeat(32),
        runbook_sha256: "22".repeat(32),
        tool: "fleet-ceremony 0.1.0".to_string(),
    }
}

/// Returns trust file text pinning the two keys.
pub fn trust_yaml(auditor: &VerifyingKey, operator: &VerifyingKey) -> String {
    let indent = |pem: String| {
        pem.lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    format!(
        "version: 1\nauditor:\n  name: Example Audit Ltd\n  public_key: |\n{}operator:\n  name: Example Backup Service\n  public_key: |\n{}",
        indent(ed25519_spki_pem(auditor)),
        indent(ed25519_spki_pem(operator)),
    )
}

/// The two signing parties of a bundle.
pub struct Parties {
    /// The auditor's key.
    pub auditor: SigningKey,
    /// The operator's key.
    pub operator: SigningKey,
}

impl Parties {
    /// Returns two fresh keys.
    pub fn random() -> Self {
        Parties {
            auditor: random_signing_key(),
            operator: random_signing_key(),
        }
    }

    /// Returns the trust that pins these keys.
    pub fn trust(&self) -> Trust {
        let text = trust_yaml(
            &self.auditor.verifying_key(),
            &self.operator.verifying_key(),
        );
        Trust::parse(&text, "trust.yaml").unwrap()
    }

    /// Runs the whole signing flow over `document_bytes` and assembles the bundle.
    pub fn bundle(&self, document_bytes: &[u8], ciphersuite: Ciphersuite) -> Bundle {
        let document = FleetKeyDocument::from_json_bytes(document_bytes).unwrap();
        let request = SigningRequest::for_document(&document, document_bytes, Utc::now());
        let auditor: AuditorSignature = sign_request(
            &request,
            document_bytes,
            &self.auditor,
            ciphersuite,
            1_740_823_200_000,
        )
        .unwrap();
        let operator = OperatorSignature::countersign(&auditor, &self.operator).unwrap();
        Bundle::assemble(document_bytes, &auditor, &operator)
    }

    /// Signs `document_bytes` without the auditor's checks of the document, as a careless
    /// or hostile auditor could, and assembles the bundle.
    pub fn bundle_unchecked(&self, document_bytes: &[u8]) -> Bundle {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD;

        let document = FleetKeyDocument::from_json_bytes(document_bytes).unwrap();
        let statement = Statement {
            ciphersuite: Ciphersuite::Protobuf,
            namespace: document.namespace,
            timestamp_ms: 1_740_823_200_000,
            epoch: document.epoch,
            digest: document_digest(document_bytes),
        };
        let auditor = AuditorSignature {
            ciphersuite: statement.ciphersuite,
            namespace: statement.namespace.clone(),
            timestamp_ms: statement.timestamp_ms,
            epoch: statement.epoch,
            digest: hex::encode(statement.digest),
            signature: base64.encode(statement.sign(&self.auditor).to_bytes()),
            key_id: ed25519_fingerprint(&self.auditor.verifying_key()),
        };
        let operator = OperatorSignature::countersign(&auditor, &self.operator).unwrap();
        Bundle::assemble(document_bytes, &auditor, &operator)
    }
}
