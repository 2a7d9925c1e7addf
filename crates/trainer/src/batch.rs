//! From tokenised samples to tensors: the deterministic per-epoch order,
//! the `batch_size` samples of each optimizer step, and their split into
//! micro-batches — padded (right padding, plain causal attention) or packed
//! (several whole samples per row, positions restarting at each sample,
//! attention confined to each sample by a block-diagonal causal mask, or
//! described as spans for varlen attention).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use smolsweep_model::Varlen;
use tch::{Device, Kind, Tensor};

use crate::data::Samples;

/// Sample order of one epoch: a permutation drawn from (seed, epoch), so a
/// resumed run sees exactly the order an uninterrupted one would.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    idx.shuffle(&mut rng);
    idx
}

/// Optimizer steps per epoch (the last batch of an epoch may be smaller,
/// as a DataLoader without drop_last gives it).
pub fn steps_per_epoch(n: usize, batch_size: usize) -> u64 {
    n.div_ceil(batch_size) as u64
}

/// The samples of optimizer step `step` (0-based) and its epoch.
pub fn step_samples(
    n: usize,
    batch_size: usize,
    seed: u64,
    step: u64,
    cache: &mut Option<(u64, Vec<usize>)>,
) -> (u64, Vec<usize>) {
    let per = steps_per_epoch(n, batch_size);
    let epoch = step / per;
    let b = (step % per) as usize;
    if cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
        *cache = Some((epoch, epoch_order(n, seed, epoch)));
    }
    let order = cache.as_ref().map(|(_, o)| o.as_slice()).unwrap_or(&[]);
    let end = ((b + 1) * batch_size).min(n);
    (epoch, order[b * batch_size..end].to_vec())
}

/// One forward/backward unit.
#[derive(Debug)]
pub struct MicroBatch {
    /// `[R, L]` token ids.
    pub ids: Tensor,
    /// `[R, L]` RoPE positions.
    pub positions: Tensor,
    /// `[R, 1, L, L]` attention mask when packed (and asked for); `None`
    /// with no `varlen` = plain causal.
    pub mask: Option<Tensor>,
    /// The packed rows' samples as varlen spans (when packed).
    pub varlen: Option<Varlen>,
    /// `[R * L]` next-token targets, -100 where there is no label.
    pub targets: Tensor,
    /// Indices into `targets` of the labelled positions (found on the
    /// host, so the step need not ask the device for them).
    pub labelled: Tensor,
    /// Positions with a target.
    pub label_tokens: i64,
    /// Real (non-pad) tokens.
    pub tokens: i64,
}

struct Row {
    ids: Vec<i64>,
    pos: Vec<i64>,
    seg: Vec<i64>,
    tgt: Vec<i64>,
}

fn push_sample(row: &mut Row, data: &dyn Samples, i: usize, seg: i64) {
    let (ids, mask) = data.sample(i);
    for (j, &t) in ids.iter().enumerate() {
        row.ids.push(t as i64);
        row.pos.push(j as i64);
        row.seg.push(seg);
        // The logit at j predicts token j+1, a label when masked in.
        let target = match (ids.get(j + 1), mask.get(j + 1)) {
            (Some(&next), Some(&1)) => next as i64,
            _ => -100,
        };
        row.tgt.push(target);
    }
}

/// Splits one step's samples into micro-batches of at most
/// `micro_batch_size` rows; packed ones carry both the mask and the spans.
pub fn micro_batches(
    data: &dyn Samples,
    samples: &[usize],
    micro_batch_size: usize,
    packing: bool,
    max_len: usize,
    pad_id: u32,
    device: Device,
) -> Vec<MicroBatch> {
    let layout = Layout {
        micro_batch_size,
        packing,
        max_len,
        pad_id,
        device,
        packed_mask: true,
        len_quantum: None,
    };
    micro_batches_in(data, samples, &layout)
}

/// How one step's samples become micro-batch tensors.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Rows per micro-batch, at most.
    pub micro_batch_size: usize,
    /// Several whole samples per row.
    pub packing: bool,
    /// Tokens per row, at most.
    pub max_len: usize,
    pub pad_id: u32,
    pub device: Device,
    /// Build packed rows' dense mask (the SDPA path); varlen attention
    /// needs the spans alone.
    pub packed_mask: bool,
    /// Pad each micro-batch's rows up to a multiple of this many tokens
    /// (at most `max_len`): fewer distinct shapes, each of which a CUDA
    /// graph is captured for once. The padding is unlabelled and attends
    /// only to padding, so the loss and gradients are the same.
    pub len_quantum: Option<usize>,
}

/// [`micro_batches`] under a full [`Layout`].
pub fn micro_batches_in(data: &dyn Samples, samples: &[usize], layout: &Layout) -> Vec<MicroBatch> {
    let &Layout {
        micro_batch_size,
        packing,
        max_len,
        pad_id,
        device,
        packed_mask,
        len_quantum,
    } = layout;
    let mut rows: Vec<Row> = Vec::new();
    if packing {
        // First fit in step order: a sample goes in the first row with room.
        let mut fill: Vec<usize> = Vec::new();
        for (k, &i) in samples.iter().enumerate() {
            let len = data.sample(i).0.len();
            let slot = fill.iter().position(|&f| f + len <= max_len);
            let r = match slot {
                Some(r) => r,
                None => {
                    rows.push(Row {
                        ids: vec![],
                        pos: vec![],
                        seg: vec![],
                        tgt: vec![],
                    });
                    fill.push(0);
                    rows.len() - 1
                }
            };
            push_sample(&mut rows[r], data, i, k as i64);
            fill[r] += len;
        }
    } else {
        for (k, &i) in samples.iter().enumerate() {
            let mut row = Row {
                ids: vec![],
                pos: vec![],
                seg: vec![],
                tgt: vec![],
            };
            push_sample(&mut row, data, i, k as i64);
            rows.push(row);
        }
    }
    rows.chunks(micro_batch_size.max(1))
        .map(|chunk| {
            let r = chunk.len() as i64;
            let longest = chunk.iter().map(|row| row.ids.len()).max().unwrap_or(1);
            let l = match len_quantum {
                Some(q) if q > 0 => longest.next_multiple_of(q).min(max_len).max(longest),
                _ => longest,
            } as i64;
            let mut ids = Vec::with_capacity((r * l) as usize);
            let mut pos = Vec::with_capacity((r * l) as usize);
            let mut seg = Vec::with_capacity((r * l) as usize);
            let mut tgt = Vec::with_capacity((r * l) as usize);
            let mut tokens = 0i64;
            for row in chunk {
                let pad = l as usize - row.ids.len();
                tokens += row.ids.len() as i64;
                ids.extend(&row.ids);
                ids.extend(std::iter::repeat_n(pad_id as i64, pad));
                pos.extend(&row.pos);
                pos.extend((0..pad as i64).map(|p| row.pos.len() as i64 + p));
                seg.extend(&row.seg);
                // Each pad position is its own segment: it attends only to
                // itself, so no softmax row is empty.
                seg.extend((0..pad as i64).map(|p| -1 - p));
                tgt.extend(&row.tgt);
                tgt.extend(std::iter::repeat_n(-100, pad));
            }
            let labelled: Vec<i64> = (0..tgt.len() as i64)
                .filter(|&i| tgt[i as usize] != -100)
                .collect();
            let label_tokens = labelled.len() as i64;
            let t = |v: &[i64]| Tensor::from_slice(v).view([r, l]).to_device(device);
            let varlen =
                packing.then(|| Varlen::from_segments(&seg, r as usize, l as usize, device));
            let mask = (packing && packed_mask).then(|| {
                let s = t(&seg);
                let same = s.unsqueeze(2).eq_tensor(&s.unsqueeze(1));
                let causal = Tensor::ones([l, l], (Kind::Bool, device)).tril(0);
                same.logical_and(&causal).unsqueeze(1)
            });
            MicroBatch {
                ids: t(&ids),
                positions: t(&pos),
                mask,
                varlen,
                targets: Tensor::from_slice(&tgt).to_device(device),
                labelled: Tensor::from_slice(&labelled).to_device(device),
                label_tokens,
                tokens,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TokenizedData;

    fn data(lens: &[usize]) -> TokenizedData {
        let mut d = TokenizedData {
            offsets: vec![0],
            ..Default::default()
        };
        for (k, &n) in lens.iter().enumerate() {
            for j in 0..n {
                d.ids.push((10 * k + j) as u32);
                d.mask.push(u8::from(j >= 1));
            }
            d.offsets.push(d.ids.len() as u64);
        }
        d
    }

    #[test]
    fn order_is_a_deterministic_permutation_per_epoch() {
        let a = epoch_order(10, 123, 0);
        assert_eq!(a, epoch_order(10, 123, 0));
        assert_ne!(a, epoch_order(10, 123, 1));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
        let mut cache = None;
        let (e, last) = step_samples(10, 4, 1, 2, &mut cache);
        assert_eq!((e, last.len()), (0, 2));
        let (e, first) = step_samples(10, 4, 1, 3, &mut cache);
        assert_eq!((e, first.len()), (1, 4));
    }

    #[test]
    fn packing_keeps_samples_apart() {
        let d = data(&[3, 2, 4]);
        let mbs = micro_batches(&d, &[0, 1, 2], 8, true, 6, 0, Device::Cpu);
        assert_eq!(mbs.len(), 1);
        let mb = &mbs[0];
        // Rows: [s0 s1] (5 tokens) and [s2] (4 tokens), padded to 5.
        assert_eq!(mb.ids.size(), [2, 5]);
        let pos = Vec::<i64>::try_from(mb.positions.flatten(0, -1)).expect("vec");
        assert_eq!(pos[..5], [0, 1, 2, 0, 1]);
        let mask = mb.mask.as_ref().expect("mask");
        // Token 3 (s1's first) must not see tokens 0..3 (s0).
        assert_eq!(mask.int64_value(&[0, 0, 3, 2]), 0);
        assert_eq!(mask.int64_value(&[0, 0, 4, 3]), 1);
        let tgt = Vec::<i64>::try_from(&mb.targets).expect("vec");
        // s0's last token predicts nothing (not s1's first token).
        assert_eq!(tgt[..5], [1, 2, -100, 11, -100]);
        assert_eq!(mb.tokens, 9);
        assert_eq!(mb.label_tokens, 2 + 1 + 3);
        let sel = mb.targets.ne(-100).nonzero().squeeze_dim(1);
        assert!(mb.labelled.equal(&sel));
    }

    /// The spans varlen attention gets imply exactly the block-diagonal
    /// mask the SDPA path gets, for every real token, and per-sample
    /// positions; pads see only pads. Over random packings.
    #[test]
    fn varlen_spans_equal_the_block_diagonal_mask_over_random_packings() {
        use rand::Rng;
        const PAD: u32 = 9_999;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..300 {
            let max_len = rng.random_range(2..24usize);
            let n = rng.random_range(1..14usize);
            let lens: Vec<usize> = (0..n).map(|_| rng.random_range(1..=max_len)).collect();
            let d = data(&lens);
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let mbs = rng.random_range(1..5usize);
            for mb in micro_batches(&d, &order, mbs, true, max_len, PAD, Device::Cpu) {
                let (r, l) = mb.ids.size2().expect("2d");
                let v = mb.varlen.as_ref().expect("spans");
                let mask = mb.mask.as_ref().expect("mask");
                let implied = v.implied_mask(r as usize, l as usize);
                let ids = Vec::<i64>::try_from(mb.ids.flatten(0, -1)).expect("ids");
                let real = Tensor::from_slice(
                    &ids.iter().map(|&t| t != i64::from(PAD)).collect::<Vec<_>>(),
                )
                .view([r, 1, l, 1]);
                // Rows of real queries: identical.
                let diff = implied.logical_xor(mask).logical_and(&real);
                assert_eq!(
                    diff.sum(Kind::Int64).int64_value(&[]),
                    0,
                    "case {case}: {lens:?}"
                );
                // Pad queries attend to pads only.
                let pad_keys = real.view([r, 1, 1, l]).logical_not();
                let leak = implied
                    .logical_and(&real.logical_not())
                    .logical_and(&pad_keys.logical_not());
                assert_eq!(leak.sum(Kind::Int64).int64_value(&[]), 0, "case {case}");
                // Positions restart per sample.
                let pos = Vec::<i64>::try_from(mb.positions.flatten(0, -1)).expect("pos");
                for (k, (a, b)) in v.positions().iter().zip(&pos).enumerate() {
                    if ids[k] != i64::from(PAD) {
                        assert_eq!(a, b, "case {case}: token {k}");
                    }
                }
                assert!(v.max_seqlen <= l && v.max_seqlen >= 1);
                assert_eq!(*v.offsets.last().expect("end") as i64, r * l);
            }
        }
    }

    /// Rounded row lengths add only unlabelled padding that no real
    /// token sees: same targets at the real positions, same labels, the
    /// same spans for the samples.
    #[test]
    fn rounded_lengths_pad_without_changing_labels() {
        let d = data(&[3, 2, 4]);
        for packing in [true, false] {
            // Rows of 5 and 4 tokens (packed) or 3, 2 and 4: to 8.
            let plain = micro_batches(&d, &[0, 1, 2], 8, packing, 8, 0, Device::Cpu);
            let layout = Layout {
                micro_batch_size: 8,
                packing,
                max_len: 8,
                pad_id: 0,
                device: Device::Cpu,
                packed_mask: true,
                len_quantum: Some(8),
            };
            let rounded = micro_batches_in(&d, &[0, 1, 2], &layout);
            let (a, b) = (&plain[0], &rounded[0]);
            let (r, l) = a.ids.size2().expect("2d");
            assert_eq!(b.ids.size(), [r, 8], "packing {packing}");
            assert_eq!(a.label_tokens, b.label_tokens);
            assert_eq!(a.tokens, b.tokens);
            let bt = b.targets.view([r, 8]).narrow(1, 0, l);
            assert!(bt.equal(&a.targets.view([r, l])));
            assert_eq!(
                b.targets
                    .view([r, 8])
                    .narrow(1, l, 8 - l)
                    .ne(-100)
                    .sum(Kind::Int64)
                    .int64_value(&[]),
                0
            );
            if packing {
                let m = b.mask.as_ref().expect("mask");
                let real = m.narrow(2, 0, l).narrow(3, 0, l);
                assert!(real.equal(a.mask.as_ref().expect("mask")));
                // No real query sees a pad key.
                assert_eq!(
                    m.narrow(2, 0, l)
                        .narrow(3, l, 8 - l)
                        .sum(Kind::Int64)
                        .int64_value(&[]),
                    0
                );
            }
        }
        // Never past max_len.
        let layout = Layout {
            micro_batch_size: 8,
            packing: false,
            max_len: 5,
            pad_id: 0,
            device: Device::Cpu,
            packed_mask: true,
            len_quantum: Some(128),
        };
        assert_eq!(micro_batches_in(&d, &[2], &layout)[0].ids.size(), [1, 5]);
    }

    #[test]
    fn padded_batches_split_by_micro_batch_size() {
        let d = data(&[3, 2, 4]);
        let mbs = micro_batches(&d, &[0, 1, 2], 2, false, 16, 0, Device::Cpu);
        assert_eq!(mbs.len(), 2);
        assert_eq!(mbs[0].ids.size(), [2, 3]);
        assert!(mbs[0].mask.is_none());
        assert_eq!(mbs.iter().map(|m| m.label_tokens).sum::<i64>(), 6);
    }
}
