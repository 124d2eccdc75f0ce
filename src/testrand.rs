//! Deterministic pseudo-random numbers for unit tests (xorshift64): the same streams on every
//! run, with no extra crate.

/// A generator seeded with `seed` (not 0).
pub fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
