//! Fingerprints as words from the PGP word list, for reading aloud in the ceremony room.

/// Returns the PGP words for a hex fingerprint, or `None` when it is not valid hex. The
/// list alternates two-syllable and three-syllable words by byte position, so a swapped
/// or dropped word is heard.
pub fn fingerprint_words(fingerprint_hex: &str) -> Option<String> {
    let bytes = hex::decode(fingerprint_hex).ok()?;
    Some(pgp_words::to_words(&bytes).join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_alternate_lists_by_position() {
        // 0x00 is "aardvark" at even positions and "adroitness" at odd ones.
        assert_eq!(
            fingerprint_words("0000").as_deref(),
            Some("aardvark adroitness")
        );
        assert_eq!(fingerprint_words("ffff").as_deref(), Some("zulu yucatan"));
    }

    #[test]
    fn words_reject_invalid_hex() {
        assert_eq!(fingerprint_words("xyz"), None);
    }
}
