//! Real HSM attestations from three vendors: each verifies, and changed copies are rejected
//! with the named rule and reason.

use std::io::Read;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use der::{Decode, Encode};
use fleet_ceremony::attest::{
    AttestError, AttestationReport, Outcome, PinnedRoots, Rule, Vendor, cert, luna, marvell,
    verify_files, yubihsm,
};
use spki::SubjectPublicKeyInfoOwned;

fn data(path: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/attestation"
    ))
    .join(path)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(data(path)).unwrap()
}

/// Inside every certificate's validity, including the Marvell root, which expired on
/// 2025-11-16. Attestations are checked at this explicit earlier time for that reason.
fn before_marvell_expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn pem_of(spki: &SubjectPublicKeyInfoOwned) -> String {
    der::pem::encode_string(
        "PUBLIC KEY",
        der::pem::LineEnding::LF,
        &spki.to_der().unwrap(),
    )
    .unwrap()
}

fn csr_key(path: &str) -> SubjectPublicKeyInfoOwned {
    let (_, der) = der::pem::decode_vec(&read(path)).unwrap();
    x509_cert::request::CertReq::from_der(&der)
        .unwrap()
        .info
        .public_key
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn marvell_roots() -> PinnedRoots {
    PinnedRoots::embedded(Vendor::Marvell).unwrap()
}

fn marvell_fleet_key() -> SubjectPublicKeyInfoOwned {
    let blob = read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz");
    let parsed = marvell::parse(&blob).unwrap();
    marvell::public_key_spki(&parsed.public_key).unwrap()
}

fn marvell_report(blob: &[u8], chain: &[u8], at: DateTime<Utc>) -> AttestationReport {
    marvell::verify(blob, chain, &marvell_fleet_key(), &marvell_roots(), at).unwrap()
}

fn yubihsm_chain() -> Vec<cert::Cert> {
    let mut chain = Vec::new();
    for name in [
        "yubihsm2/key-attestation-ed25519.pem",
        "yubihsm2/device-attestation-cert.der",
        "yubihsm2/yubihsm-sub-ca.pem",
    ] {
        chain.extend(cert::read_certs(&read(name), name).unwrap());
    }
    chain
}

fn yubihsm_report(
    chain: &[cert::Cert],
    roots: &PinnedRoots,
    at: DateTime<Utc>,
) -> AttestationReport {
    let fleet_key = chain[0].spki().clone();
    yubihsm::verify(chain, &fleet_key, roots, at).unwrap()
}

fn assert_all_pass(report: &AttestationReport) {
    for rule in [
        Rule::Chain,
        Rule::KeyMatches,
        Rule::GeneratedOnDevice,
        Rule::NotExtractable,
    ] {
        assert_eq!(
            report.outcome(rule),
            Some(&Outcome::Pass),
            "{rule}\n{report}"
        );
    }
}

fn assert_fails(report: &AttestationReport, rule: Rule, reason: &str) {
    let failure = report
        .failure(rule)
        .unwrap_or_else(|| panic!("rule '{rule}' did not fail:\n{report}"));
    assert!(failure.contains(reason), "'{rule}' failed with: {failure}");
}

/// Replaces the PEM block at `index` in `pem` with one whose DER has byte `offset`
/// (counted from the end when negative) flipped.
fn flip_pem_cert_byte(pem: &[u8], index: usize, offset: isize) -> Vec<u8> {
    let certs = cert::read_certs(pem, "chain").unwrap();
    let mut out = String::new();
    for (position, cert) in certs.iter().enumerate() {
        let mut der = cert.der.clone();
        if position == index {
            let at = if offset < 0 {
                der.len() - offset.unsigned_abs()
            } else {
                offset as usize
            };
            der[at] ^= 0x01;
        }
        out.push_str(
            &der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der).unwrap(),
        );
    }
    out.into_bytes()
}

fn reorder_pem(pem: &[u8], order: &[usize]) -> Vec<u8> {
    let certs = cert::read_certs(pem, "chain").unwrap();
    order
        .iter()
        .map(|index| {
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &certs[*index].der)
                .unwrap()
        })
        .collect::<String>()
        .into_bytes()
}

#[test]
fn embedded_roots_equal_test_data() {
    let pairs = [
        (
            Vendor::Marvell,
            "gcp-cloudhsm-marvell/manufacturer-root-marvell.pem",
        ),
        (Vendor::YubiHsm2, "yubihsm2/yubihsm-root-ca.pem"),
        (Vendor::Luna, "thales-luna/luna-rsa-root-certificate.pem"),
        (Vendor::Luna, "thales-luna/luna-ecc-root-certificate.pem"),
    ];
    for (vendor, path) in pairs {
        let expected = cert::read_certs(&read(path), path).unwrap().remove(0).der;
        let roots = PinnedRoots::embedded(vendor).unwrap();
        assert!(
            roots.manufacturer.iter().any(|root| root.der == expected),
            "{path}"
        );
    }
    let owner = cert::read_certs(
        &read("gcp-cloudhsm-marvell/owner-root-google-hawksbill.pem"),
        "owner",
    )
    .unwrap()
    .remove(0)
    .der;
    assert_eq!(marvell_roots().owner[0].der, owner);
}

#[test]
fn marvell_vector_passes_before_root_expiry() {
    let report = marvell_report(
        &read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
        &read("gcp-cloudhsm-marvell/cert-chain.pem"),
        before_marvell_expiry(),
    );
    assert_all_pass(&report);
    assert_eq!(report.device_serial, "5.3G1953-ICM001225");
    assert!(
        report
            .chain
            .iter()
            .any(|name| name.contains("localca.liquidsecurity.cavium.com"))
    );
    assert!(
        report
            .chain
            .iter()
            .any(|name| name.starts_with("CN=Hawksbill Root v1 prod"))
    );
}

#[test]
fn marvell_attributes_parsed() {
    let parsed = marvell::parse(&read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz")).unwrap();
    assert_eq!(parsed.private_key.flag(0x0162), Some(false), "extractable");
    assert_eq!(
        parsed.private_key.flag(0x0164),
        Some(true),
        "never extractable"
    );
    assert_eq!(parsed.private_key.flag(0x0163), Some(true), "local");
    assert_eq!(parsed.private_key.flag(0x0103), Some(true), "sensitive");
    assert_eq!(parsed.signature.len(), 256);
    let key = marvell::public_key_spki(&parsed.public_key).unwrap();
    assert_eq!(cert::curve_oid(&key), Some(cert::SECP256R1));
}

#[test]
fn marvell_expired_root_rejected_after_expiry() {
    // The Marvell root's validity ends 2025-11-16; one day later the chain must fail and
    // name the root with its window.
    let at = Utc.with_ymd_and_hms(2025, 11, 17, 0, 0, 0).unwrap();
    let report = marvell_report(
        &read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
        &read("gcp-cloudhsm-marvell/cert-chain.pem"),
        at,
    );
    assert_fails(&report, Rule::Chain, "localca.liquidsecurity.cavium.com");
    assert_fails(
        &report,
        Rule::Chain,
        "is not valid at 2025-11-17T00:00:00Z: valid from",
    );
    assert_fails(&report, Rule::Chain, "to 2025-11-16T");
}

#[test]
fn marvell_blob_byte_changed() {
    let mut blob = gunzip(&read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"));
    // A byte of the key label "app_key" in the public key object.
    let label = blob
        .windows(7)
        .position(|window| window == b"app_key")
        .unwrap();
    blob[label] ^= 0x01;
    let report = marvell_report(
        &blob,
        &read("gcp-cloudhsm-marvell/cert-chain.pem"),
        before_marvell_expiry(),
    );
    assert_fails(
        &report,
        Rule::Chain,
        "attestation blob signature by partition key",
    );
}

#[test]
fn marvell_signature_byte_changed() {
    let mut blob = gunzip(&read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"));
    let last = blob.len() - 1;
    blob[last] ^= 0x01;
    let report = marvell_report(
        &blob,
        &read("gcp-cloudhsm-marvell/cert-chain.pem"),
        before_marvell_expiry(),
    );
    assert_fails(
        &report,
        Rule::Chain,
        "attestation blob signature by partition key",
    );
}

#[test]
fn marvell_certificate_byte_changed() {
    let chain = flip_pem_cert_byte(&read("gcp-cloudhsm-marvell/cert-chain.pem"), 1, -1);
    let report = marvell_report(
        &read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
        &chain,
        before_marvell_expiry(),
    );
    assert_fails(
        &report,
        Rule::Chain,
        "signature of 'CN=HSM:5.3G1953-ICM001225\\, for FIPS mode",
    );
}

#[test]
fn marvell_owner_chain_reordered() {
    let chain = reorder_pem(&read("gcp-cloudhsm-marvell/cert-chain.pem"), &[0, 1, 3, 2]);
    let report = marvell_report(
        &read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
        &chain,
        before_marvell_expiry(),
    );
    assert_fails(&report, Rule::Chain, "certify different partition keys");
}

#[test]
fn marvell_wrong_owner_root() {
    let mut roots = marvell_roots();
    roots.owner = PinnedRoots::embedded(Vendor::YubiHsm2)
        .unwrap()
        .manufacturer;
    let report = marvell::verify(
        &read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
        &read("gcp-cloudhsm-marvell/cert-chain.pem"),
        &marvell_fleet_key(),
        &roots,
        before_marvell_expiry(),
    )
    .unwrap();
    assert_fails(
        &report,
        Rule::Chain,
        "'CN=Hawksbill Root v1 prod,O=Google Inc,L=Mountain View,ST=CA,C=US', which is not a pinned root",
    );
}

#[test]
fn marvell_key_mismatch() {
    let other_key = csr_key("thales-luna/ecc-test.csr");
    let report = marvell::verify(
        &read("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
        &read("gcp-cloudhsm-marvell/cert-chain.pem"),
        &other_key,
        &marvell_roots(),
        before_marvell_expiry(),
    )
    .unwrap();
    assert_eq!(report.outcome(Rule::Chain), Some(&Outcome::Pass));
    assert_fails(&report, Rule::KeyMatches, "differs from the fleet key");
}

#[test]
fn yubihsm_vector_passes() {
    let report = yubihsm_report(
        &yubihsm_chain(),
        &PinnedRoots::embedded(Vendor::YubiHsm2).unwrap(),
        before_marvell_expiry(),
    );
    assert_all_pass(&report);
    assert_eq!(report.device_serial, "34331133");
    assert_eq!(report.chain.last().unwrap(), "CN=Yubico YubiHSM Root CA");
}

#[test]
fn yubihsm_extensions_parsed() {
    let chain = yubihsm_chain();
    let extensions = yubihsm::YubicoExtensions::read(&chain[0]).unwrap();
    assert_eq!(extensions.firmware.as_deref(), Some("2.4.1"));
    assert_eq!(extensions.serial, Some(34331133));
    assert_eq!(extensions.origin, Some(yubihsm::ORIGIN_GENERATED));
    assert_eq!(extensions.domains, Some(vec![1]));
    assert_eq!(extensions.capabilities, Some(0x100), "sign-eddsa only");
    assert_eq!(extensions.object_id, Some(3));
    assert_eq!(extensions.label.as_deref(), Some(""));
}

#[test]
fn yubihsm_certificate_byte_changed() {
    let mut chain = yubihsm_chain();
    let mut der = chain[1].der.clone();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    chain[1] = cert::Cert::from_der(&der, "device").unwrap();
    let report = yubihsm_report(
        &chain,
        &PinnedRoots::embedded(Vendor::YubiHsm2).unwrap(),
        before_marvell_expiry(),
    );
    assert_fails(
        &report,
        Rule::Chain,
        "signature of 'CN=YubiHSM Attestation (34331133)'",
    );
}

#[test]
fn yubihsm_chain_reordered() {
    let mut chain = yubihsm_chain();
    chain.swap(1, 2);
    let fleet_key = chain[0].spki().clone();
    let report = yubihsm::verify(
        &chain,
        &fleet_key,
        &PinnedRoots::embedded(Vendor::YubiHsm2).unwrap(),
        before_marvell_expiry(),
    )
    .unwrap();
    assert_fails(
        &report,
        Rule::Chain,
        "names issuer 'CN=YubiHSM Attestation (34331133)'",
    );
}

#[test]
fn yubihsm_mixed_with_marvell_certificate() {
    let mut chain = yubihsm_chain();
    let marvell =
        cert::read_certs(&read("gcp-cloudhsm-marvell/cert-chain.pem"), "marvell").unwrap();
    chain[2] = marvell[1].clone();
    let report = yubihsm_report(
        &chain,
        &PinnedRoots::embedded(Vendor::YubiHsm2).unwrap(),
        before_marvell_expiry(),
    );
    assert_fails(&report, Rule::Chain, "not 'CN=HSM:5.3G1953-ICM001225");
}

#[test]
fn yubihsm_wrong_root() {
    let report = yubihsm_report(&yubihsm_chain(), &marvell_roots(), before_marvell_expiry());
    assert_fails(
        &report,
        Rule::Chain,
        "'CN=Yubico YubiHSM Root CA', which is not a pinned root",
    );
}

#[test]
fn yubihsm_key_mismatch() {
    let other_key = csr_key("thales-luna/ecc-test.csr");
    let report = yubihsm::verify(
        &yubihsm_chain(),
        &other_key,
        &PinnedRoots::embedded(Vendor::YubiHsm2).unwrap(),
        before_marvell_expiry(),
    )
    .unwrap();
    assert_fails(
        &report,
        Rule::KeyMatches,
        "differs from fleet key algorithm",
    );
}

#[test]
fn yubihsm_time_before_validity() {
    let at = Utc.with_ymd_and_hms(2016, 6, 1, 0, 0, 0).unwrap();
    let report = yubihsm_report(
        &yubihsm_chain(),
        &PinnedRoots::embedded(Vendor::YubiHsm2).unwrap(),
        at,
    );
    assert_fails(
        &report,
        Rule::Chain,
        "certificate 'CN=YubiHSM Attestation id:0x0003' is not valid at 2016-06-01T00:00:00Z: valid from 2017-01-01T00:00:00Z to 2071-10-05T00:00:00Z",
    );
}

#[test]
fn luna_rsa_vector_passes() {
    let fleet_key = csr_key("thales-luna/rsa-test.csr");
    let report = luna::verify(
        &read("thales-luna/rsa-pkc.p7b"),
        &fleet_key,
        &PinnedRoots::embedded(Vendor::Luna).unwrap(),
        before_marvell_expiry(),
    )
    .unwrap();
    assert_eq!(
        report.outcome(Rule::Chain),
        Some(&Outcome::Pass),
        "{report}"
    );
    assert_eq!(report.outcome(Rule::KeyMatches), Some(&Outcome::Pass));
    assert!(matches!(
        report.outcome(Rule::GeneratedOnDevice),
        Some(Outcome::NotAttested(_))
    ));
    assert!(matches!(
        report.outcome(Rule::NotExtractable),
        Some(Outcome::NotAttested(_))
    ));
    assert!(report.passed());
    assert!(!report.fully_attested());
    assert_eq!(report.device_serial, "521174");
    assert_eq!(report.chain.len(), 5);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}

#[test]
fn luna_ecc_vector_passes_with_note() {
    let fleet_key = csr_key("thales-luna/ecc-test.csr");
    let report = luna::verify(
        &read("thales-luna/ecc-pkc.p7b"),
        &fleet_key,
        &PinnedRoots::embedded(Vendor::Luna).unwrap(),
        before_marvell_expiry(),
    )
    .unwrap();
    assert_eq!(
        report.outcome(Rule::Chain),
        Some(&Outcome::Pass),
        "{report}"
    );
    assert_eq!(report.outcome(Rule::KeyMatches), Some(&Outcome::Pass));
    assert_eq!(report.device_serial, "521174");
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(report.notes[0].contains("INTEGER s is not canonical DER"));
}

#[test]
fn luna_ecc_leaf_signature_scalar_checked() {
    // The lenient reading of the leaf's unpadded `s` must still verify the value: flipping
    // a bit of `s` (the last byte of the certificate) fails the link.
    let certs = luna::read_bundle(&read("thales-luna/ecc-pkc.p7b")).unwrap();
    let leaf = certs
        .iter()
        .find(|cert| cert.subject().contains("43000000ae000002d6f30700"))
        .unwrap();
    let issuer = certs
        .iter()
        .find(|cert| cert.subject().contains("CN=521174"))
        .unwrap();
    assert!(leaf.check_issued_by(issuer).is_ok());

    let mut der = leaf.der.clone();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let changed = cert::Cert::from_der(&der, "leaf").unwrap();
    let reason = changed.check_issued_by(issuer).unwrap_err();
    assert!(reason.contains("ECDSA verification failed"), "{reason}");
}

#[test]
fn luna_wrong_root() {
    let fleet_key = csr_key("thales-luna/rsa-test.csr");
    let report = luna::verify(
        &read("thales-luna/rsa-pkc.p7b"),
        &fleet_key,
        &PinnedRoots::embedded(Vendor::YubiHsm2).unwrap(),
        before_marvell_expiry(),
    )
    .unwrap();
    assert_fails(
        &report,
        Rule::Chain,
        "Chrysalis-ITS Root,O=Chrysalis-ITS Inc.,L=Ottawa,ST=Ontario,C=CA', which is not a pinned root",
    );
}

#[test]
fn luna_key_mismatch() {
    let other_key = csr_key("thales-luna/ecc-test.csr");
    let report = luna::verify(
        &read("thales-luna/rsa-pkc.p7b"),
        &other_key,
        &PinnedRoots::embedded(Vendor::Luna).unwrap(),
        before_marvell_expiry(),
    )
    .unwrap();
    assert_fails(
        &report,
        Rule::KeyMatches,
        "differs from fleet key algorithm",
    );
}

#[test]
fn luna_ecc_time_after_validity() {
    let at = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap();
    let report = luna::verify(
        &read("thales-luna/ecc-pkc.p7b"),
        &csr_key("thales-luna/ecc-test.csr"),
        &PinnedRoots::embedded(Vendor::Luna).unwrap(),
        at,
    )
    .unwrap();
    assert_fails(
        &report,
        Rule::Chain,
        "valid from 2010-08-12T15:23:06Z to 2030-08-12T15:23:06Z",
    );
}

#[test]
fn verify_files_accepts_each_vendor() {
    let marvell = verify_files(
        Vendor::Marvell,
        &[
            data("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
            data("gcp-cloudhsm-marvell/cert-chain.pem"),
        ],
        &pem_of(&marvell_fleet_key()),
        None,
        before_marvell_expiry(),
    )
    .unwrap();
    assert!(marvell.fully_attested());
    let text = marvell.to_string();
    assert!(text.contains("\nok chain\n"), "{text}");
    assert!(text.contains("\nok not extractable\n"), "{text}");

    let yubihsm = verify_files(
        Vendor::YubiHsm2,
        &[
            data("yubihsm2/key-attestation-ed25519.pem"),
            data("yubihsm2/device-attestation-cert.der"),
            data("yubihsm2/yubihsm-sub-ca.pem"),
        ],
        &pem_of(yubihsm_chain()[0].spki()),
        None,
        before_marvell_expiry(),
    )
    .unwrap();
    assert!(yubihsm.fully_attested());

    let luna = verify_files(
        Vendor::Luna,
        &[data("thales-luna/ecc-pkc.p7b")],
        &pem_of(&csr_key("thales-luna/ecc-test.csr")),
        None,
        before_marvell_expiry(),
    )
    .unwrap();
    assert!(
        luna.to_string()
            .contains("\nnot attested not extractable: ")
    );
}

#[test]
fn verify_files_rejects_expired_marvell_root() {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let error = verify_files(
        Vendor::Marvell,
        &[
            data("gcp-cloudhsm-marvell/ec-key-attestation.dat.gz"),
            data("gcp-cloudhsm-marvell/cert-chain.pem"),
        ],
        &pem_of(&marvell_fleet_key()),
        None,
        at,
    )
    .unwrap_err();
    let AttestError::Rejected(report) = &error else {
        panic!("expected a rejection, got {error}");
    };
    assert_fails(
        report,
        Rule::Chain,
        "localca.liquidsecurity.cavium.com,OU=LiquidSecurity,O=Cavium\\, Inc.,L=San Jose,ST=California,C=US' is not valid at 2026-01-01T00:00:00Z",
    );
    assert!(
        error
            .to_string()
            .contains("marvell attestation rejected:\n  chain: "),
        "{error}"
    );
    assert!(report.to_string().contains("\nFAIL chain: "));
}

#[test]
fn verify_files_wrong_file_count() {
    let error = verify_files(
        Vendor::Luna,
        &[
            data("thales-luna/ecc-pkc.p7b"),
            data("thales-luna/rsa-pkc.p7b"),
        ],
        &pem_of(&csr_key("thales-luna/ecc-test.csr")),
        None,
        before_marvell_expiry(),
    )
    .unwrap_err();
    assert!(
        matches!(error, AttestError::FileCount { count: 2, .. }),
        "{error}"
    );
}

#[test]
fn vendor_names_round_trip() {
    for vendor in [Vendor::Marvell, Vendor::YubiHsm2, Vendor::Luna] {
        assert_eq!(vendor.name().parse::<Vendor>().unwrap(), vendor);
    }
    assert!(matches!(
        "thales".parse::<Vendor>(),
        Err(AttestError::UnknownVendor(_))
    ));
}
