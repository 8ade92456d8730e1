//! Shamir secret sharing over GF(256) with blahaj, and the recombination self-check.

use blahaj::{Share, Sharks};
use rand::Rng;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::error::ShareError;
use super::record::commitment;

/// Largest share count for which every threshold-sized subset is checked after a split;
/// C(8, 4) = 70 recombinations at most.
const EXHAUSTIVE_CHECK_MAX_COUNT: u8 = 8;

/// Random subsets checked, on top of every cyclic window, when the count is larger.
const RANDOM_CHECK_SUBSETS: usize = 16;

/// Makes `count` shares of `secret`, any `threshold` of which recombine to it.
///
/// blahaj evaluates at x = 1, 2, ... in order, so share `i` has x-coordinate `i + 1` and no
/// share has x = 0 (which would be the secret itself). The polynomial coefficients come
/// from blahaj's `rand::rng()` (rand 0.10 `ThreadRng`, a ChaCha CSPRNG seeded from the
/// operating system).
pub(super) fn deal_shares(secret: &[u8], threshold: u8, count: u8) -> Vec<Share> {
    Sharks(threshold)
        .dealer(secret)
        .take(usize::from(count))
        .collect()
}

/// Recombines `shares` by Lagrange interpolation at x = 0.
///
/// Returns `None` when fewer than `threshold` distinct x-coordinates are given or the
/// shares have different lengths. Callers must reject duplicate x-coordinates first:
/// blahaj counts them once but interpolates over both.
pub(super) fn recover_secret<'a>(
    shares: impl IntoIterator<Item = &'a Share>,
    threshold: u8,
) -> Option<Zeroizing<Vec<u8>>> {
    Sharks(threshold).recover(shares).ok().map(Zeroizing::new)
}

/// Checks that `shares` recombine to the secret behind `expected`, the commitment under
/// `credential_set_id`.
///
/// With at most 8 shares every subset of `threshold` shares is checked. With more, the
/// check covers each run of `threshold` consecutive shares, wrapping around (so the first
/// and the last `threshold` are included), and 16 random subsets.
pub(super) fn check_recombination(
    shares: &[Share],
    threshold: u8,
    credential_set_id: &str,
    expected: &[u8; 32],
) -> Result<usize, ShareError> {
    let subsets = check_subsets(shares.len(), usize::from(threshold));
    for subset in &subsets {
        let chosen = subset.iter().map(|&position| &shares[position]);
        let recovered = recover_secret(chosen, threshold);
        let matches =
            recovered.is_some_and(|secret| commitment(credential_set_id, &secret) == *expected);
        if !matches {
            return Err(ShareError::SelfCheckFailed {
                indexes: subset
                    .iter()
                    .map(|&position| shares[position].x.0)
                    .collect(),
            });
        }
    }
    Ok(subsets.len())
}

/// Lists the subsets (as sorted share positions) that [`check_recombination`] tries.
fn check_subsets(count: usize, threshold: usize) -> Vec<Vec<usize>> {
    if threshold == 0 || threshold > count {
        return Vec::new();
    }
    if count <= usize::from(EXHAUSTIVE_CHECK_MAX_COUNT) {
        return (0u32..1 << count)
            .filter(|mask| mask.count_ones() as usize == threshold)
            .map(|mask| (0..count).filter(|bit| mask & (1 << bit) != 0).collect())
            .collect();
    }

    let mut subsets: Vec<Vec<usize>> = (0..count)
        .map(|start| {
            let mut window: Vec<usize> = (0..threshold)
                .map(|offset| (start + offset) % count)
                .collect();
            window.sort_unstable();
            window
        })
        .collect();
    for _ in 0..RANDOM_CHECK_SUBSETS {
        let mut positions: Vec<usize> = (0..count).collect();
        // Partial Fisher-Yates shuffle: the first `threshold` positions are a uniform pick.
        for slot in 0..threshold {
            let other = OsRng.gen_range(slot..count);
            positions.swap(slot, other);
        }
        positions.truncate(threshold);
        positions.sort_unstable();
        subsets.push(positions);
    }
    subsets
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shares_have_nonzero_sequential_x() {
        let shares = deal_shares(b"secret", 3, 255);
        assert_eq!(shares.len(), 255);
        for (position, share) in shares.iter().enumerate() {
            assert_ne!(share.x.0, 0);
            assert_eq!(usize::from(share.x.0), position + 1);
            assert_eq!(share.y.len(), 6);
        }
    }

    #[test]
    fn small_counts_check_every_subset() {
        let subsets = check_subsets(8, 4);
        assert_eq!(subsets.len(), 70);
        let unique: std::collections::HashSet<_> = subsets.iter().collect();
        assert_eq!(unique.len(), 70);
        assert!(subsets.iter().all(|subset| subset.len() == 4));
    }

    #[test]
    fn large_counts_check_first_last_and_random() {
        let subsets = check_subsets(20, 3);
        assert_eq!(subsets.len(), 20 + RANDOM_CHECK_SUBSETS);
        assert!(subsets.contains(&vec![0, 1, 2]));
        assert!(subsets.contains(&vec![17, 18, 19]));
        assert!(subsets.contains(&vec![0, 1, 19]));
        for subset in &subsets {
            assert_eq!(subset.len(), 3);
            let mut unique = subset.clone();
            unique.dedup();
            assert_eq!(unique.len(), 3, "{subset:?}");
            assert!(subset.iter().all(|&position| position < 20));
        }
    }

    #[test]
    fn check_recombination_detects_a_bad_share() {
        let secret = b"credential bytes";
        let expected = commitment("id", secret);
        let mut shares = deal_shares(secret, 3, 12);
        assert_eq!(
            check_recombination(&shares, 3, "id", &expected).unwrap(),
            12 + RANDOM_CHECK_SUBSETS
        );

        // The last share is in the last window, so even the sampled check must see it.
        shares[11].y[0].0 ^= 1;
        let error = check_recombination(&shares, 3, "id", &expected).unwrap_err();
        assert!(
            matches!(error, ShareError::SelfCheckFailed { ref indexes } if indexes.contains(&12))
        );
    }

    /// Random secrets of 16 to 63 bytes: long enough that a subset below the threshold
    /// interpolating to the secret by chance (probability 256^-16 per subset) never
    /// happens in practice.
    fn secret_and_scheme() -> impl Strategy<Value = (Vec<u8>, u8, u8)> {
        (2u8..=10).prop_flat_map(|count| {
            (
                proptest::collection::vec(any::<u8>(), 16..64),
                2u8..=count,
                Just(count),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn subsets_recover_only_at_threshold((secret, threshold, count) in secret_and_scheme()) {
            let shares = deal_shares(&secret, threshold, count);
            for mask in 1u32..(1 << count) {
                let subset: Vec<&Share> = shares
                    .iter()
                    .enumerate()
                    .filter(|(position, _)| mask & (1 << position) != 0)
                    .map(|(_, share)| share)
                    .collect();
                let size = subset.len();
                let recovered = recover_secret(subset.iter().copied(), threshold);
                if size >= usize::from(threshold) {
                    let recovered = recovered.expect("enough shares");
                    prop_assert_eq!(recovered.as_slice(), secret.as_slice());
                } else {
                    prop_assert!(recovered.is_none());
                    // Interpolating the smaller subset anyway gives some other value.
                    let size = u8::try_from(size).expect("at most 10 shares");
                    let guess = recover_secret(subset.iter().copied(), size).expect("distinct x");
                    prop_assert_ne!(guess.as_slice(), secret.as_slice());
                }
            }
        }
    }
}
