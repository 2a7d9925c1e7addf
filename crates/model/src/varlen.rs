//! Packed rows as varlen attention sees them: the samples of a `[R, L]`
//! micro-batch laid end to end as `R * L` tokens, described by the int32
//! offsets `cu_seqlens` (`[n + 1]`, from 0 to `R * L`) and the longest
//! sample `max_seqlen`. Causal attention inside each span is exactly the
//! block-diagonal causal mask the SDPA path builds for the same rows; a
//! row's padding tail is one span of its own, so no real token sees a pad
//! and no pad sees a real token.

use tch::{Device, Kind, Tensor};

/// The span layout of one packed micro-batch.
#[derive(Debug)]
pub struct Varlen {
    /// `[n + 1]` int32 span offsets into the flattened `R * L` tokens, on
    /// the batch's device.
    pub cu_seqlens: Tensor,
    /// The same offsets on the host.
    pub offsets: Vec<i32>,
    /// The longest span.
    pub max_seqlen: i64,
}

impl Varlen {
    /// From per-token segment ids of `rows` rows of `len` tokens (row
    /// major): a run of one id is a span; negative ids mark padding, and a
    /// row's run of them is one span. Runs never cross a row boundary.
    pub fn from_segments(seg: &[i64], rows: usize, len: usize, device: Device) -> Self {
        debug_assert_eq!(seg.len(), rows * len);
        let mut offsets = vec![0i32];
        for r in 0..rows {
            let row = &seg[r * len..(r + 1) * len];
            for j in 1..len {
                let (a, b) = (row[j - 1], row[j]);
                let same = a == b || (a < 0 && b < 0);
                if !same {
                    offsets.push((r * len + j) as i32);
                }
            }
            if len > 0 {
                offsets.push(((r + 1) * len) as i32);
            }
        }
        let max_seqlen = offsets
            .windows(2)
            .map(|w| i64::from(w[1] - w[0]))
            .max()
            .unwrap_or(0);
        Varlen {
            cu_seqlens: Tensor::from_slice(&offsets).to_device(device),
            offsets,
            max_seqlen,
        }
    }

    /// Spans (samples, and padding tails).
    pub fn spans(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Each token's position inside its span (what RoPE sees for a real
    /// token), `[R * L]`.
    pub fn positions(&self) -> Vec<i64> {
        self.offsets
            .windows(2)
            .flat_map(|w| 0..i64::from(w[1] - w[0]))
            .collect()
    }

    /// The `[R, 1, L, L]` boolean mask these spans imply (true = may
    /// attend): what the SDPA path would need for the same attention. For
    /// tests and checks; it is what varlen attention avoids building.
    pub fn implied_mask(&self, rows: usize, len: usize) -> Tensor {
        let mut span_of = vec![0i64; rows * len];
        for (s, w) in self.offsets.windows(2).enumerate() {
            for t in w[0]..w[1] {
                span_of[t as usize] = s as i64;
            }
        }
        let s = Tensor::from_slice(&span_of).view([rows as i64, len as i64]);
        let same = s.unsqueeze(2).eq_tensor(&s.unsqueeze(1));
        let causal = Tensor::ones([len as i64, len as i64], (Kind::Bool, Device::Cpu)).tril(0);
        same.logical_and(&causal).unsqueeze(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_follow_samples_rows_and_padding() {
        // Row 0: samples 0 (3 tokens) and 1 (2); row 1: sample 2 (2), two pads.
        let seg = [0, 0, 0, 1, 1, 2, 2, -1, -2, -3];
        let v = Varlen::from_segments(&seg, 2, 5, Device::Cpu);
        assert_eq!(v.offsets, [0, 3, 5, 7, 10]);
        assert_eq!(v.max_seqlen, 3);
        assert_eq!(v.spans(), 4);
        assert_eq!(v.positions(), [0, 1, 2, 0, 1, 0, 1, 0, 1, 2]);
        assert_eq!(v.cu_seqlens.kind(), Kind::Int);
        // The same sample id in two rows is two spans.
        let v = Varlen::from_segments(&[4, 4, 4, 4], 2, 2, Device::Cpu);
        assert_eq!(v.offsets, [0, 2, 4]);
    }
}
