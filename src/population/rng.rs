//! The population's random numbers: SplitMix64 streams and the size distributions drawn from
//! them.
//!
//! Hand-written on purpose (a dozen lines): the population must be the same on every node of a
//! sharded run, and a crate's generator may change its output between versions, which would
//! give two nodes built a release apart different populations without any error.

use super::config::Dist;

/// A SplitMix64 stream (Steele, Lea, Flood 2014): passes BigCrush, one add and three
/// multiply-xorshifts per number.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The stream for `seed` and a stream number (one per community, so each community's draws
    /// depend on nothing generated before it).
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * n as u64) >> 32) as u32
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A distribution ready to draw from: Zipf and weights keep their cumulative table.
#[derive(Clone, Debug)]
pub enum Sampler {
    Fixed(u32),
    Range(u32, u32),
    /// Values `first..` with this cumulative probability table (last entry 1.0).
    Table {
        first: u32,
        values: Vec<u32>,
        cdf: Vec<f64>,
    },
}

impl Sampler {
    pub fn new(d: &Dist) -> Sampler {
        match d {
            Dist::Fixed(n) => Sampler::Fixed(*n),
            Dist::Range(a, b) => Sampler::Range(*a, *b),
            Dist::Zipf { min, max, exponent } => {
                // P(min + i) is proportional to 1 / (i + 1)^s: the smallest size is the most common.
                let w: Vec<f64> = (0..=(max - min)).map(|i| 1.0 / ((i + 1) as f64).powf(*exponent)).collect();
                Sampler::table(*min, (*min..=*max).collect(), &w)
            }
            Dist::Weights(pairs) => {
                let w: Vec<f64> = pairs.iter().map(|&(_, w)| w as f64).collect();
                Sampler::table(0, pairs.iter().map(|&(v, _)| v).collect(), &w)
            }
        }
    }

    fn table(first: u32, values: Vec<u32>, w: &[f64]) -> Sampler {
        let total: f64 = w.iter().sum();
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = w
            .iter()
            .map(|x| {
                acc += x;
                acc / total
            })
            .collect();
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Sampler::Table { first, values, cdf }
    }

    pub fn draw(&self, rng: &mut Rng) -> u32 {
        match self {
            Sampler::Fixed(n) => *n,
            Sampler::Range(a, b) => a + rng.below(b - a + 1),
            Sampler::Table { values, cdf, .. } => {
                let u = rng.unit();
                let i = cdf.partition_point(|&c| c <= u).min(values.len() - 1);
                values[i]
            }
        }
    }

    /// The mean of its draws.
    pub fn mean(&self) -> f64 {
        match self {
            Sampler::Fixed(n) => *n as f64,
            Sampler::Range(a, b) => (*a as f64 + *b as f64) / 2.0,
            Sampler::Table { values, cdf, .. } => {
                let mut prev = 0.0;
                values
                    .iter()
                    .zip(cdf)
                    .map(|(&v, &c)| {
                        let p = c - prev;
                        prev = c;
                        v as f64 * p
                    })
                    .sum()
            }
        }
    }

    /// The smallest value it can draw.
    pub fn min(&self) -> u32 {
        match self {
            Sampler::Fixed(n) | Sampler::Range(n, _) => *n,
            Sampler::Table { first, values, .. } => values.iter().copied().min().unwrap_or(*first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_repeat_and_differ() {
        let a: Vec<u64> = (0..4).scan(Rng::new(7, 1), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..4).scan(Rng::new(7, 1), |r, _| Some(r.next_u64())).collect();
        let c: Vec<u64> = (0..4).scan(Rng::new(7, 2), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn draws_stay_in_their_range_and_reach_both_ends() {
        let mut r = Rng::new(1, 0);
        let s = Sampler::new(&Dist::Range(3, 30));
        let v: Vec<u32> = (0..10_000).map(|_| s.draw(&mut r)).collect();
        assert!(v.iter().all(|&x| (3..=30).contains(&x)));
        assert_eq!(v.iter().min(), Some(&3));
        assert_eq!(v.iter().max(), Some(&30));
        assert!((0..10_000).all(|_| r.below(5) < 5));
    }

    #[test]
    fn zipf_favours_small_sizes_and_weights_follow_their_shares() {
        let mut r = Rng::new(9, 0);
        let z = Sampler::new(&Dist::Zipf { min: 200, max: 5000, exponent: 1.2 });
        let v: Vec<u32> = (0..20_000).map(|_| z.draw(&mut r)).collect();
        assert!(v.iter().all(|&x| (200..=5000).contains(&x)));
        let at_min = v.iter().filter(|&&x| x == 200).count();
        let at_201 = v.iter().filter(|&&x| x == 201).count();
        // P(200) / P(201) = 2^1.2 = 2.3: the smallest size is clearly the most common.
        assert!(at_min > at_201 * 3 / 2, "{at_min} vs {at_201}");
        let w = Sampler::new(&Dist::Weights(vec![(1, 70), (2, 25), (3, 5)]));
        let d: Vec<u32> = (0..20_000).map(|_| w.draw(&mut r)).collect();
        let ones = d.iter().filter(|&&x| x == 1).count() as f64 / 20_000.0;
        assert!((0.67..0.73).contains(&ones), "{ones}");
        assert!(d.iter().all(|&x| (1..=3).contains(&x)));
        assert_eq!(w.min(), 1);
    }
}
