//! The held-out split: which combinations only the test sets may use,
//! and drawing items until enough fall in the wanted split.

use crate::rng::Rng;

/// Which split a combination belongs to: a fixed fifth of all
/// combinations (by FNV-1a hash of its key, independent of the seed) is
/// reserved for the test sets, so no test item is ever trained on.
fn is_test_key(key: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 5 == 0
}

/// Draws items until `n` of them fall in the wanted split.
pub(crate) fn draw<T>(
    rng: &mut Rng,
    n: usize,
    test: bool,
    mut make: impl FnMut(&mut Rng) -> (String, T),
) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (key, item) = make(rng);
        if is_test_key(&key) == test {
            out.push(item);
        }
    }
    out
}
