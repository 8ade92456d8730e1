//! A ceremony with fixed keys, texts and times, for rendering its evidence in tests.
//!
//! Every key comes from a fixed seed and every time is fixed, so the rendered files are
//! the same on every machine and the golden files can be compared byte for byte.

#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use ed25519_dalek::SigningKey;
use fleet_ceremony::bundle::keys::ed25519_spki_pem;
use fleet_ceremony::bundle::{
    Ciphersuite, CustodianSummary, FleetKeyDocument, KeyEntry, MemberEntry, OperatorSignature,
    SigningRequest, Trust, TrustedKey, fingerprint, sign_request,
};
use fleet_ceremony::ceremony::EvidenceInputs;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Seed of the auditor's Ed25519 key.
const AUDITOR_SEED: [u8; 32] = [0xa1; 32];
/// Seed of the operator's Ed25519 key.
const OPERATOR_SEED: [u8; 32] = [0x0b; 32];
/// Private scalar of the fleet's P-256 key; any value below the group order works.
const FLEET_SCALAR: [u8; 32] = [0x42; 32];
/// Auditor statement time: 2026-01-15T09:30:00Z in milliseconds.
const AUDITOR_TIMESTAMP_MS: u64 = 1_768_469_400_000;

/// The free text of a ceremony: everything a runbook or a trust file lets people write.
#[derive(Clone, Debug)]
pub struct CeremonyText {
    /// Namespace that the auditor statement binds.
    pub namespace: String,
    /// Site of each of the three members.
    pub sites: [String; 3],
    /// HSM model of every member.
    pub model: String,
    /// HSM manufacturer of every member.
    pub manufacturer: String,
    /// Label of the fleet key.
    pub key_label: String,
    /// Custodian names.
    pub custodians: [String; 3],
    /// Auditor's name in the trust file.
    pub auditor_name: String,
    /// Operator's name in the trust file.
    pub operator_name: String,
    /// An action written into the transcript.
    pub transcript_action: String,
}

impl CeremonyText {
    /// The text of the demo ceremony.
    pub fn demo() -> CeremonyText {
        CeremonyText {
            namespace: "demo.fleet.example".to_owned(),
            sites: [
                "Zurich, rack 4".to_owned(),
                "Zurich, rack 4".to_owned(),
                "Dublin, cage 2".to_owned(),
            ],
            model: "SoftHSM v2".to_owned(),
            manufacturer: "SoftHSM project".to_owned(),
            key_label: "fleet-signing".to_owned(),
            custodians: ["alice".to_owned(), "bob".to_owned(), "carol".to_owned()],
            auditor_name: "Example Audit Ltd".to_owned(),
            operator_name: "Example Backup Service".to_owned(),
            transcript_action: "credentials split".to_owned(),
        }
    }

    /// Every free-text field set to `text` with a different prefix, so each field can be
    /// found in the output.
    pub fn hostile(text: &str) -> CeremonyText {
        let field = |name: &str| format!("{name} {text}");
        CeremonyText {
            namespace: field("ns"),
            sites: [field("site-a"), field("site-a"), field("site-b")],
            model: field("model"),
            manufacturer: field("maker"),
            key_label: field("label"),
            custodians: [field("cust-1"), field("cust-2"), field("cust-3")],
            auditor_name: field("auditor"),
            operator_name: field("operator"),
            transcript_action: field("action"),
        }
    }

    /// Every free-text value with the field it belongs to, in the order of the struct.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let mut fields = vec![
            ("namespace", self.namespace.as_str()),
            ("model", self.model.as_str()),
            ("manufacturer", self.manufacturer.as_str()),
            ("key label", self.key_label.as_str()),
            ("auditor name", self.auditor_name.as_str()),
            ("operator name", self.operator_name.as_str()),
            ("transcript action", self.transcript_action.as_str()),
        ];
        fields.extend(self.sites.iter().map(|site| ("site", site.as_str())));
        fields.extend(
            self.custodians
                .iter()
                .map(|name| ("custodian", name.as_str())),
        );
        fields
    }
}

/// The fleet key's SPKI PEM.
pub fn fleet_key_pem() -> String {
    let secret = p256::SecretKey::from_slice(&FLEET_SCALAR).expect("scalar below the order");
    secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("P-256 SPKI encodes")
}

/// The fleet key's fingerprint: hex SHA-256 of its SPKI DER.
pub fn fleet_key_fingerprint() -> String {
    let secret = p256::SecretKey::from_slice(&FLEET_SCALAR).expect("scalar below the order");
    let der = secret
        .public_key()
        .to_public_key_der()
        .expect("P-256 SPKI encodes");
    fingerprint(der.as_bytes())
}

/// Builds the signed inputs of the evidence: document, signatures, pinned keys and the
/// transcript as it stood after "bundle verified".
pub fn inputs(text: &CeremonyText) -> EvidenceInputs {
    let (head, tail) = transcript(text);
    let document = document(text, &hex::encode(Sha256::digest(&head)));
    let document_bytes = document.to_json_bytes();

    let at = Utc.with_ymd_and_hms(2026, 1, 15, 9, 20, 0).unwrap();
    let request = SigningRequest::for_document(&document, &document_bytes, at);
    let auditor_key = SigningKey::from_bytes(&AUDITOR_SEED);
    let operator_key = SigningKey::from_bytes(&OPERATOR_SEED);
    let auditor = sign_request(
        &request,
        &document_bytes,
        &auditor_key,
        Ciphersuite::Protobuf,
        AUDITOR_TIMESTAMP_MS,
    )
    .unwrap();
    let operator = OperatorSignature::countersign(&auditor, &operator_key).unwrap();
    let trust = Trust {
        auditor: TrustedKey::new(text.auditor_name.clone(), auditor_key.verifying_key()),
        operator: TrustedKey::new(text.operator_name.clone(), operator_key.verifying_key()),
        allow_unattested: false,
        log: None,
    };

    let mut transcript_bytes = head;
    transcript_bytes.extend_from_slice(&tail);
    EvidenceInputs::assemble(document_bytes, auditor, operator, trust, transcript_bytes)
}

/// The trust file text that pins the fixture's auditor and operator keys.
pub fn trust_yaml(text: &CeremonyText) -> String {
    let indent = |pem: String| {
        pem.lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    let auditor = SigningKey::from_bytes(&AUDITOR_SEED).verifying_key();
    let operator = SigningKey::from_bytes(&OPERATOR_SEED).verifying_key();
    format!(
        "version: 1\nauditor:\n  name: {}\n  public_key: |\n{}operator:\n  name: {}\n  public_key: |\n{}",
        serde_json::to_string(&text.auditor_name).unwrap(),
        indent(ed25519_spki_pem(&auditor)),
        serde_json::to_string(&text.operator_name).unwrap(),
        indent(ed25519_spki_pem(&operator)),
    )
}

fn document(text: &CeremonyText, transcript_sha256: &str) -> FleetKeyDocument {
    let member = |index: usize, name: &str, origin: bool| MemberEntry {
        name: name.to_owned(),
        site: text.sites[index].clone(),
        token_label: format!("fleet-{index}"),
        token_serial: format!("70{index}1c0ffee{index}"),
        model: text.model.clone(),
        manufacturer: text.manufacturer.clone(),
        attested: false,
        key_attributes: [
            ("CKA_EXTRACTABLE".to_owned(), json!(false)),
            ("CKA_NEVER_EXTRACTABLE".to_owned(), json!(origin)),
            ("CKA_SENSITIVE".to_owned(), json!(true)),
        ]
        .into_iter()
        .collect(),
        origin,
        attestation: None,
    };
    FleetKeyDocument {
        format: "fleet-ceremony-document-v1".to_owned(),
        fleet_id: "demo-fleet".to_owned(),
        namespace: text.namespace.clone(),
        epoch: 1,
        created_at: Utc.with_ymd_and_hms(2026, 1, 15, 9, 15, 0).unwrap(),
        keys: vec![KeyEntry {
            role: "fleet".to_owned(),
            label: text.key_label.clone(),
            algorithm: "ecdsa-p256".to_owned(),
            spki_pem: fleet_key_pem(),
            fingerprint: fleet_key_fingerprint(),
            growth: None,
        }],
        members: vec![
            member(0, "hsm-zrh-1", true),
            member(1, "hsm-zrh-2", false),
            member(2, "hsm-dub-1", false),
        ],
        custodians: CustodianSummary {
            threshold: 2,
            names: text.custodians.to_vec(),
        },
        transcript_sha256: transcript_sha256.to_owned(),
        runbook_sha256: "5e".repeat(32),
        tool: "fleet-ceremony 0.1.0".to_owned(),
    }
}

/// Returns the transcript in two parts: the lines the document commits to, and the
/// lines written after the document ("signing request written", "bundle verified").
fn transcript(text: &CeremonyText) -> (Vec<u8>, Vec<u8>) {
    let actions = [
        ("09:00:00", "ceremony started"),
        ("09:05:00", "fleet key generated"),
        ("09:10:00", "fleet key replicated"),
        ("09:12:00", text.transcript_action.as_str()),
        ("09:15:00", "fleet key document written"),
        ("09:20:00", "signing request written"),
        ("09:31:00", "bundle verified"),
    ];
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut previous = "0".repeat(64);
    for (index, (time, action)) in actions.iter().enumerate() {
        let record: Value = json!({
            "seq": index + 1,
            "time": format!("2026-01-15T{time}Z"),
            "action": action,
            "details": {},
            "prev_sha256": previous,
        });
        let mut line = serde_json::to_vec(&record).unwrap();
        line.push(b'\n');
        previous = hex::encode(Sha256::digest(&line));
        if index < 5 {
            head.extend(line)
        } else {
            tail.extend(line)
        }
    }
    (head, tail)
}
