//! JSON serialisation of secret values into a buffer that is wiped on drop.

use std::io;

use serde::Serialize;
use zeroize::Zeroizing;

/// A writer that only counts the bytes written to it.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serialises `value` as compact JSON into a zeroizing buffer, followed by `suffix`.
///
/// The value is serialised twice: once to count its length and once into a buffer of
/// exactly that capacity. The buffer therefore never reallocates, which would leave a
/// copy of the secret in freed memory. serde_json writes string contents straight from
/// the source `&str`, so no other copy is made.
pub(super) fn to_zeroizing_json<T: Serialize>(
    value: &T,
    suffix: &[u8],
) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, value)?;

    let mut buffer = Zeroizing::new(Vec::with_capacity(counter.0 + suffix.len()));
    serde_json::to_writer(&mut *buffer, value)?;
    buffer.extend_from_slice(suffix);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroizing_json_fills_exact_capacity() {
        let value = serde_json::json!({"pin": "ABC\"def", "n": 3});
        let bytes = to_zeroizing_json(&value, b"\n").unwrap();
        assert_eq!(bytes.as_slice(), b"{\"n\":3,\"pin\":\"ABC\\\"def\"}\n");
        assert_eq!(bytes.len(), bytes.capacity());
    }
}
