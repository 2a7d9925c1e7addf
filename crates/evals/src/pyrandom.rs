//! Python's `random.Random(seed).sample(...)`, bit for bit.
//!
//! lm-evaluation-harness draws each GSM8K question's few-shot examples
//! with `random.Random(1234).sample(train_docs, k)`, one generator for the
//! whole task advanced question by question. Reproducing its prompts
//! exactly needs the same Mersenne Twister, the same integer seeding
//! (`init_by_array` over the seed's 32-bit words) and the same `sample`
//! algorithm (CPython 3.11 `Lib/random.py`).

const N: usize = 624;
const M: usize = 397;

/// MT19937 as CPython's `_random` module runs it.
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> Self {
        // CPython splits abs(seed) into 32-bit words, least significant
        // first, with at least one word.
        let mut key = vec![seed as u32];
        if seed >> 32 != 0 {
            key.push((seed >> 32) as u32);
        }
        let mut r = PyRandom {
            mt: [0; N],
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    /// `genrand_uint32`.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(k + M) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(k)` for 1 <= k <= 32.
    fn getrandbits(&mut self, k: u32) -> u32 {
        self.next_u32() >> (32 - k)
    }

    /// `_randbelow_with_getrandbits(n)`, n >= 1.
    fn randbelow(&mut self, n: usize) -> usize {
        let k = usize::BITS - n.leading_zeros();
        let mut r = self.getrandbits(k) as usize;
        while r >= n {
            r = self.getrandbits(k) as usize;
        }
        r
    }

    /// Indices chosen by `random.sample(range(n), k)`, in order; `None`
    /// when k > n (Python raises ValueError).
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Option<Vec<usize>> {
        if k > n || n >= 1 << 32 {
            return None;
        }
        let mut setsize = 21usize;
        if k > 5 {
            // `4 ** _ceil(_log(k * 3, 4))`, in floating point as Python does.
            let e = ((k as f64 * 3.0).ln() / 4f64.ln()).ceil() as u32;
            setsize += 4usize.pow(e);
        }
        let mut out = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow(n - i);
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n);
                while selected.contains(&j) {
                    j = self.randbelow(n);
                }
                selected.insert(j);
                out.push(j);
            }
        }
        Some(out)
    }
}

/// `random.shuffle` and `random.randrange`, which lighteval's balanced
/// few-shot sampler (BBH under the `smollm2` convention) draws with.
impl PyRandom {
    /// `random.shuffle(x)` (CPython 3.11: Fisher-Yates from the end with
    /// `_randbelow(i + 1)`).
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i + 1);
            x.swap(i, j);
        }
    }

    /// `random.randrange(n)` for n >= 1 (`_randbelow(n)`).
    pub fn randrange(&mut self, n: usize) -> usize {
        self.randbelow(n.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by CPython 3.11:
    /// `r = random.Random(1234); [r.getrandbits(32) for _ in range(3)]`.
    #[test]
    fn matches_cpython_stream() {
        let mut r = PyRandom::new(1234);
        let got: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(got, PYTHON_1234_U32);
    }

    /// `random.Random(1234).sample(range(40), 5)` then `.sample(range(7473), 5)`
    /// on the same generator.
    #[test]
    fn sample_matches_cpython() {
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample_indices(40, 5).expect("k<=n"), PYTHON_SAMPLE_40);
        assert_eq!(r.sample_indices(7473, 5).expect("k<=n"), PYTHON_SAMPLE_7473);
        assert!(r.sample_indices(3, 5).is_none());
        // k > 5 takes the larger set size.
        let mut r = PyRandom::new(1234);
        assert_eq!(
            r.sample_indices(10, 8).expect("k<=n"),
            [7, 1, 0, 9, 4, 6, 5, 3]
        );
    }

    const PYTHON_1234_U32: [u32; 3] = [4_150_886_329, 3_342_196_574, 1_892_932_127];
    const PYTHON_SAMPLE_40: [usize; 5] = [28, 7, 0, 5, 37];
    const PYTHON_SAMPLE_7473: [usize; 5] = [286, 5501, 5677, 687, 806];
}
