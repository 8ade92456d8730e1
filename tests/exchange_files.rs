//! Signing requests, signature files and bundles: round trips and the auditor's checks.

mod common;

use chrono::Utc;
use common::{Parties, random_signing_key, sample_document};
use fleet_ceremony::bundle::files::{FilesError, RequestKey};
use fleet_ceremony::bundle::keys::ed25519_fingerprint;
use fleet_ceremony::bundle::{
    AuditorSignature, Bundle, Ciphersuite, OperatorSignature, SigningRequest, document_digest,
    sign_request, verify_countersignature,
};

fn request_and_bytes() -> (SigningRequest, Vec<u8>) {
    let document = sample_document();
    let bytes = document.to_json_bytes();
    let request = SigningRequest::for_document(&document, &bytes, Utc::now());
    (request, bytes)
}

fn sign(request: &SigningRequest, bytes: &[u8]) -> Result<AuditorSignature, FilesError> {
    sign_request(
        request,
        bytes,
        &random_signing_key(),
        Ciphersuite::Protobuf,
        1,
    )
}

fn mismatch_field(error: FilesError) -> &'static str {
    match error {
        FilesError::RequestMismatch { field, .. } => field,
        other => panic!("expected a request mismatch, got: {other}"),
    }
}

#[test]
fn request_names_document_and_digest() {
    let (request, bytes) = request_and_bytes();
    assert_eq!(request.format, "fleet-ceremony-signing-request-v1");
    assert_eq!(request.document, "fleet-key.json");
    assert_eq!(
        request.document_sha256,
        hex::encode(document_digest(&bytes))
    );
    assert_eq!(request.keys.len(), 2);
}

#[test]
fn request_json_round_trip() {
    let (request, _) = request_and_bytes();
    let parsed = SigningRequest::from_json_bytes(&request.to_json_bytes()).unwrap();
    assert_eq!(parsed, request);
}

#[test]
fn signed_statement_matches_document() {
    let (request, bytes) = request_and_bytes();
    let key = random_signing_key();
    let signature = sign_request(&request, &bytes, &key, Ciphersuite::Bincode, 42).unwrap();

    assert_eq!(signature.key_id, ed25519_fingerprint(&key.verifying_key()));
    let statement = signature.statement().unwrap();
    assert_eq!(statement.digest, document_digest(&bytes));
    assert_eq!(statement.ciphersuite, Ciphersuite::Bincode);
    assert_eq!(statement.timestamp_ms, 42);
    statement
        .verify(&key.verifying_key(), &signature.signature().unwrap())
        .unwrap();
}

#[test]
fn changed_document_rejected() {
    let (request, bytes) = request_and_bytes();
    let mut changed = bytes.clone();
    changed.insert(1, b' ');
    let error = sign(&request, &changed).unwrap_err();
    assert!(error.to_string().contains("hint: "), "{error}");
    assert_eq!(mismatch_field(error), "document_sha256");
}

#[test]
fn request_fields_must_match_document() {
    let (request, bytes) = request_and_bytes();

    let mut other = request.clone();
    other.fleet_id = "fleet-us-1".to_string();
    assert_eq!(
        mismatch_field(sign(&other, &bytes).unwrap_err()),
        "fleet_id"
    );

    let mut other = request.clone();
    other.namespace = "other.example.com".to_string();
    assert_eq!(
        mismatch_field(sign(&other, &bytes).unwrap_err()),
        "namespace"
    );

    let mut other = request.clone();
    other.epoch += 1;
    assert_eq!(mismatch_field(sign(&other, &bytes).unwrap_err()), "epoch");

    let mut other = request.clone();
    other.keys.push(RequestKey {
        label: "extra".to_string(),
        algorithm: "ed25519".to_string(),
        fingerprint: "00".repeat(32),
    });
    assert_eq!(mismatch_field(sign(&other, &bytes).unwrap_err()), "keys");
}

#[test]
fn document_with_bad_key_rejected() {
    let mut document = sample_document();
    document.keys[1].algorithm = "ecdsa-p256".to_string();
    let bytes = document.to_json_bytes();
    let request = SigningRequest::for_document(&document, &bytes, Utc::now());

    let error = sign(&request, &bytes).unwrap_err();
    assert!(matches!(error, FilesError::Document(_)), "{error}");
    assert!(error.to_string().contains("fleet-backup"), "{error}");
}

#[test]
fn signature_files_round_trip() {
    let (request, bytes) = request_and_bytes();
    let auditor = sign(&request, &bytes).unwrap();
    let text = String::from_utf8(auditor.to_json_bytes()).unwrap();
    assert!(text.starts_with("{\n  \"format\": \"fleet-ceremony-auditor-signature-v1\",\n"));
    assert_eq!(
        AuditorSignature::from_json_bytes(text.as_bytes()).unwrap(),
        auditor
    );

    let operator = OperatorSignature::countersign(&auditor, &random_signing_key()).unwrap();
    let text = String::from_utf8(operator.to_json_bytes()).unwrap();
    assert!(text.contains("\"format\": \"fleet-ceremony-operator-signature-v1\""));
    assert_eq!(
        OperatorSignature::from_json_bytes(text.as_bytes()).unwrap(),
        operator
    );
}

#[test]
fn signature_file_of_other_kind_rejected() {
    let (request, bytes) = request_and_bytes();
    let auditor = sign(&request, &bytes).unwrap();
    let operator = OperatorSignature::countersign(&auditor, &random_signing_key()).unwrap();

    let error = AuditorSignature::from_json_bytes(&operator.to_json_bytes()).unwrap_err();
    assert!(matches!(error, FilesError::Json { .. }), "{error}");
    let error = Bundle::from_json_bytes(&request.to_json_bytes()).unwrap_err();
    assert!(matches!(error, FilesError::Json { .. }), "{error}");
}

#[test]
fn countersignature_verifies() {
    let (request, bytes) = request_and_bytes();
    let auditor = sign(&request, &bytes).unwrap();
    let key = random_signing_key();
    let operator = OperatorSignature::countersign(&auditor, &key).unwrap();
    verify_countersignature(
        &key.verifying_key(),
        &auditor.signature().unwrap(),
        &operator.signature().unwrap(),
    )
    .unwrap();
}

#[test]
fn bundle_keeps_exact_document_bytes() {
    let parties = Parties::random();
    let mut bytes = sample_document().to_json_bytes();
    bytes.extend_from_slice(b"\n\n");
    let bundle = parties.bundle(&bytes, Ciphersuite::Protobuf);
    assert_eq!(bundle.format, "fleet-ceremony-bundle-v1");
    assert_eq!(bundle.document_bytes().unwrap(), bytes);

    let parsed = Bundle::from_json_bytes(&bundle.to_json_bytes()).unwrap();
    assert_eq!(parsed, bundle);
}

#[test]
fn bundle_objects_have_no_format_field() {
    let bundle =
        Parties::random().bundle(&sample_document().to_json_bytes(), Ciphersuite::Protobuf);
    let value: serde_json::Value = serde_json::from_slice(&bundle.to_json_bytes()).unwrap();
    assert!(value["auditor"].get("format").is_none());
    assert!(value["operator"].get("format").is_none());
    assert_eq!(value["auditor"]["ciphersuite"], 1);
}

#[test]
fn field_errors_name_field() {
    let (request, bytes) = request_and_bytes();
    let mut auditor = sign(&request, &bytes).unwrap();

    auditor.digest.pop();
    let error = auditor.statement().unwrap_err().to_string();
    assert!(
        error.starts_with("field `auditor.digest` is invalid"),
        "{error}"
    );

    auditor.digest = "ab".repeat(31);
    let error = auditor.statement().unwrap_err().to_string();
    assert!(error.contains("expected 32 bytes"), "{error}");

    auditor.signature = "not base64!".to_string();
    let error = auditor.signature().unwrap_err().to_string();
    assert!(
        error.starts_with("field `auditor.signature` is invalid"),
        "{error}"
    );

    let mut operator =
        OperatorSignature::countersign(&sign(&request, &bytes).unwrap(), &random_signing_key())
            .unwrap();
    operator.signature = "AAAA".to_string();
    let error = operator.signature().unwrap_err().to_string();
    assert!(
        error.starts_with("field `operator.signature` is invalid"),
        "{error}"
    );
    assert!(error.contains("found 3 bytes"), "{error}");
}

#[test]
fn unknown_ciphersuite_in_file_rejected() {
    let (request, bytes) = request_and_bytes();
    let text = String::from_utf8(sign(&request, &bytes).unwrap().to_json_bytes()).unwrap();
    let text = text.replace("\"ciphersuite\": 1", "\"ciphersuite\": 3");
    let error = AuditorSignature::from_json_bytes(text.as_bytes()).unwrap_err();
    assert!(
        error.to_string().contains("unknown ciphersuite 0x0003"),
        "{error}"
    );
}
