//! Trust file parsing: each malformed file is rejected with the file and position.

mod common;

use common::{random_signing_key, trust_yaml};
use fleet_ceremony::bundle::Trust;
use fleet_ceremony::bundle::keys::{ed25519_fingerprint, ed25519_spki_pem};
use fleet_ceremony::bundle::trust::TrustError;

const SOURCE: &str = "keys-public/trust.yaml";

fn valid_text() -> String {
    trust_yaml(
        &random_signing_key().verifying_key(),
        &random_signing_key().verifying_key(),
    )
}

fn parse_error(text: &str) -> TrustError {
    Trust::parse(text, SOURCE).unwrap_err()
}

#[test]
fn valid_file_parses() {
    let auditor = random_signing_key().verifying_key();
    let operator = random_signing_key().verifying_key();
    let trust = Trust::parse(&trust_yaml(&auditor, &operator), SOURCE).unwrap();

    assert_eq!(trust.auditor.name, "Example Audit Ltd");
    assert_eq!(trust.auditor.key, auditor);
    assert_eq!(trust.auditor.fingerprint, ed25519_fingerprint(&auditor));
    assert_eq!(trust.operator.name, "Example Backup Service");
    assert_eq!(trust.operator.key, operator);
    assert_eq!(trust.operator.fingerprint, ed25519_fingerprint(&operator));
}

#[test]
fn load_reads_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.yaml");
    std::fs::write(&path, valid_text()).unwrap();
    assert!(Trust::load(&path).is_ok());

    let missing = dir.path().join("absent.yaml");
    let error = Trust::load(&missing).unwrap_err();
    assert!(matches!(error, TrustError::Read { .. }), "{error}");
    assert!(error.to_string().contains("absent.yaml"), "{error}");
}

#[test]
fn duplicate_top_level_key_rejected() {
    let text = valid_text().replace("version: 1\n", "version: 1\nversion: 1\n");
    let error = parse_error(&text).to_string();
    assert_eq!(
        error,
        format!("trust file {SOURCE}:2:1: duplicate mapping key `version` is not allowed here")
    );
}

#[test]
fn duplicate_nested_key_rejected() {
    let text = valid_text().replace(
        "  name: Example Backup Service\n",
        "  name: Example Backup Service\n  name: Someone Else\n",
    );
    let error = parse_error(&text).to_string();
    assert!(error.contains("duplicate mapping key `name`"), "{error}");
    assert!(
        error.starts_with(&format!("trust file {SOURCE}:10:3: ")),
        "{error}"
    );
}

#[test]
fn duplicate_party_rejected() {
    let text = format!("{}auditor:\n  name: x\n  public_key: y\n", valid_text());
    let error = parse_error(&text).to_string();
    assert!(error.contains("duplicate mapping key `auditor`"), "{error}");
}

#[test]
fn unknown_field_rejected() {
    let text = valid_text().replace("version: 1\n", "version: 1\nexpires: 2030-01-01\n");
    let error = parse_error(&text).to_string();
    assert!(
        error.starts_with(&format!("trust file {SOURCE}:2:1: ")),
        "{error}"
    );
    assert!(error.contains("unknown field `expires`"), "{error}");
}

#[test]
fn unknown_party_field_rejected() {
    let text = valid_text().replace(
        "  name: Example Audit Ltd\n",
        "  name: Example Audit Ltd\n  nmae: typo\n",
    );
    let error = parse_error(&text).to_string();
    assert!(
        error.starts_with(&format!("trust file {SOURCE}:4:3: ")),
        "{error}"
    );
    assert!(error.contains("unknown field `nmae`"), "{error}");
}

#[test]
fn missing_field_rejected() {
    let text = valid_text().replace("version: 1\n", "");
    let error = parse_error(&text);
    assert!(matches!(error, TrustError::Yaml { .. }), "{error}");
    assert!(
        error.to_string().contains("missing field `version`"),
        "{error}"
    );
}

#[test]
fn other_version_rejected() {
    for version in ["0", "2"] {
        let text = valid_text().replace("version: 1", &format!("version: {version}"));
        let error = parse_error(&text);
        assert!(matches!(error, TrustError::Version { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains(&format!("has version {version}")),
            "{error}"
        );
    }
}

#[test]
fn version_as_string_rejected() {
    let text = valid_text().replace("version: 1", "version: one");
    let error = parse_error(&text);
    assert!(matches!(error, TrustError::Yaml { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("trust file {SOURCE}:1:")),
        "{error}"
    );
}

#[test]
fn invalid_yaml_rejected() {
    let error = parse_error("version: [1\n");
    assert!(matches!(error, TrustError::Yaml { .. }), "{error}");
}

#[test]
fn empty_name_rejected() {
    let text = valid_text().replace("name: Example Audit Ltd", "name: \"  \"");
    let error = parse_error(&text);
    assert!(
        matches!(
            error,
            TrustError::EmptyName {
                role: "auditor",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn non_ed25519_key_rejected_with_oid() {
    let p256 = common::random_p256_pem();
    let indented: String = p256.lines().map(|line| format!("    {line}\n")).collect();
    let operator = ed25519_spki_pem(&random_signing_key().verifying_key());
    let operator: String = operator
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect();
    let text = format!(
        "version: 1\nauditor:\n  name: A\n  public_key: |\n{indented}operator:\n  name: B\n  public_key: |\n{operator}"
    );

    let error = parse_error(&text);
    assert!(
        matches!(
            error,
            TrustError::Key {
                role: "auditor",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("1.2.840.10045.2.1"), "{error}");
}

#[test]
fn corrupt_key_rejected() {
    let text = valid_text().replacen("MCowBQYDK2VwAyEA", "MCowBQYDK2VwAyE", 1);
    let error = parse_error(&text);
    assert!(
        matches!(
            error,
            TrustError::Key {
                role: "auditor",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn same_key_for_both_parties_rejected() {
    let key = random_signing_key().verifying_key();
    let error = parse_error(&trust_yaml(&key, &key));
    assert!(matches!(error, TrustError::SameKey { .. }), "{error}");
    assert!(
        error.to_string().contains(&ed25519_fingerprint(&key)),
        "{error}"
    );
}

#[test]
fn allow_unattested_accepts_only_plain_booleans() {
    for value in ["\"yes\"", "yes", "on", "\"off\"", "1"] {
        let text = valid_text().replacen(
            "version: 1\n",
            &format!("version: 1\nallow_unattested: {value}\n"),
            1,
        );
        assert!(text.contains("allow_unattested"), "{text}");
        assert!(
            Trust::parse(&text, "trust.yaml").is_err(),
            "allow_unattested: {value} was accepted"
        );
    }
    let text = valid_text().replacen("version: 1\n", "version: 1\nallow_unattested: true\n", 1);
    assert!(Trust::parse(&text, "trust.yaml").unwrap().allow_unattested);
}
