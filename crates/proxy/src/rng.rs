//! Randomness for the request path (sampling, trace and request ids, a
//! fault's or mirror's share, balancing picks): a fast generator per thread, seeded from
//! the OS once. None of it is a secret, so it need not be cryptographic;
//! rand's `ThreadRng` (ChaCha) costs several times as much a number.

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use std::cell::RefCell;

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// A random u64.
pub fn u64() -> u64 {
    RNG.with(|r| r.borrow_mut().next_u64())
}

/// A random number in `0..n` (n > 0).
pub fn below(n: u32) -> u32 {
    range(0..n)
}

/// A random number in `r` (not empty).
pub fn range<T, R>(r: R) -> T
where
    T: rand::distr::uniform::SampleUniform,
    R: rand::distr::uniform::SampleRange<T>,
{
    RNG.with(|g| g.borrow_mut().random_range(r))
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_differ_and_stay_in_range() {
        let a: Vec<u64> = (0..8).map(|_| super::u64()).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]));
        assert!((0..1000).map(|_| super::below(7)).all(|x| x < 7));
        let seen: std::collections::BTreeSet<u32> = (0..1000).map(|_| super::below(4)).collect();
        assert_eq!(seen.len(), 4, "every value comes up");
    }
}
