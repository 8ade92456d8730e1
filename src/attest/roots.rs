//! Pinned roots: the embedded vendor defaults, or roots the caller supplies.

use super::cert::{Cert, read_certs};
use super::{AttestError, Vendor};

const MARVELL_ROOT: &[u8] = include_bytes!("roots/manufacturer-root-marvell.pem");
const GOOGLE_OWNER_ROOT: &[u8] = include_bytes!("roots/owner-root-google-hawksbill.pem");
const YUBICO_ROOT: &[u8] = include_bytes!("roots/yubihsm-root-ca.pem");
const LUNA_RSA_ROOT: &[u8] = include_bytes!("roots/luna-rsa-root-certificate.pem");
const LUNA_ECC_ROOT: &[u8] = include_bytes!("roots/luna-ecc-root-certificate.pem");

/// Roots an attestation must chain to.
///
/// `manufacturer` roots anchor the hardware chain of every vendor. `owner` roots anchor
/// the second chain of a Google Cloud HSM attestation, where Google certifies the same
/// card and partition keys; the other vendors ignore them.
#[derive(Clone, Debug, Default)]
pub struct PinnedRoots {
    /// Hardware manufacturer roots.
    pub manufacturer: Vec<Cert>,
    /// Owner (cloud operator) roots.
    pub owner: Vec<Cert>,
}

impl PinnedRoots {
    /// Returns the roots embedded in this library for `vendor`.
    pub fn embedded(vendor: Vendor) -> Result<Self, AttestError> {
        let read = |bytes: &[u8], name: &str| read_certs(bytes, &format!("embedded root {name}"));
        match vendor {
            Vendor::Marvell => Ok(Self {
                manufacturer: read(MARVELL_ROOT, "manufacturer-root-marvell.pem")?,
                owner: read(GOOGLE_OWNER_ROOT, "owner-root-google-hawksbill.pem")?,
            }),
            Vendor::YubiHsm2 => Ok(Self {
                manufacturer: read(YUBICO_ROOT, "yubihsm-root-ca.pem")?,
                owner: Vec::new(),
            }),
            Vendor::Luna => {
                let mut manufacturer = read(LUNA_RSA_ROOT, "luna-rsa-root-certificate.pem")?;
                manufacturer.extend(read(LUNA_ECC_ROOT, "luna-ecc-root-certificate.pem")?);
                Ok(Self {
                    manufacturer,
                    owner: Vec::new(),
                })
            }
        }
    }

    /// Builds roots from certificate files (PEM with any number of certificates, or DER).
    pub fn from_bytes(manufacturer: &[&[u8]], owner: &[&[u8]]) -> Result<Self, AttestError> {
        let read_all = |inputs: &[&[u8]], role: &str| -> Result<Vec<Cert>, AttestError> {
            let mut certs = Vec::new();
            for (index, bytes) in inputs.iter().enumerate() {
                certs.extend(read_certs(bytes, &format!("{role} root {}", index + 1))?);
            }
            Ok(certs)
        };
        Ok(Self {
            manufacturer: read_all(manufacturer, "manufacturer")?,
            owner: read_all(owner, "owner")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_roots_parse() {
        for vendor in [Vendor::Marvell, Vendor::YubiHsm2, Vendor::Luna] {
            let roots = PinnedRoots::embedded(vendor).unwrap();
            assert!(!roots.manufacturer.is_empty(), "{vendor}");
        }
        assert_eq!(
            PinnedRoots::embedded(Vendor::Marvell).unwrap().owner.len(),
            1
        );
        assert_eq!(
            PinnedRoots::embedded(Vendor::Luna)
                .unwrap()
                .manufacturer
                .len(),
            2
        );
    }
}
