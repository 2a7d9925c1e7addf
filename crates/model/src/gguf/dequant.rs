//! Dequantisation of GGML blocks to f32, following ggml's reference
//! `dequantize_row_*` functions:
//! - Q4_0: blocks of 32, f16 scale `d`, 16 bytes of nibbles; low nibbles
//!   are elements 0..16, high nibbles 16..32; x = (q - 8) * d.
//! - Q4_1: f16 `d`, f16 min `m`, 16 bytes of nibbles; x = q * d + m.
//! - Q8_0: f16 `d`, 32 signed bytes; x = q * d.

use half::{bf16, f16};

use super::GgmlType;

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantises `numel` elements of type `ty` from `bytes` (exactly the
/// tensor's bytes). `None` for a type we do not support.
pub fn dequantize(ty: GgmlType, bytes: &[u8], numel: usize) -> Option<Vec<f32>> {
    let mut out = Vec::with_capacity(numel);
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q4_0 => {
            for blk in bytes.chunks_exact(18) {
                let d = f16_at(blk, 0);
                let qs = &blk[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as f32 - 8.0) * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as f32 - 8.0) * d));
            }
        }
        GgmlType::Q4_1 => {
            for blk in bytes.chunks_exact(20) {
                let d = f16_at(blk, 0);
                let m = f16_at(blk, 2);
                let qs = &blk[4..20];
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q8_0 => {
            for blk in bytes.chunks_exact(34) {
                let d = f16_at(blk, 0);
                out.extend(blk[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        _ => return None,
    }
    out.truncate(numel);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q4_1_block() {
        let mut blk = Vec::new();
        blk.extend(f16b(0.5));
        blk.extend(f16b(-1.0));
        // byte j: low nibble j%16, high nibble 15 - j%16
        blk.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let x = dequantize(GgmlType::Q4_1, &blk, 32).expect("q4_1");
        assert_eq!(x[0], -1.0);
        assert_eq!(x[3], 0.5);
        assert_eq!(x[16], 15.0 * 0.5 - 1.0);
        assert_eq!(x[31], -1.0);
    }

    #[test]
    fn q4_0_and_q8_0_blocks() {
        let mut blk = Vec::new();
        blk.extend(f16b(2.0));
        blk.extend([0x8Fu8; 16]); // low 15, high 8
        let x = dequantize(GgmlType::Q4_0, &blk, 32).expect("q4_0");
        assert_eq!(x[0], 14.0);
        assert_eq!(x[16], 0.0);
        let mut blk = Vec::new();
        blk.extend(f16b(0.25));
        blk.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let x = dequantize(GgmlType::Q8_0, &blk, 32).expect("q8_0");
        assert_eq!(x[0], -4.0);
        assert_eq!(x[31], 3.75);
    }

    #[test]
    fn unsupported_is_none() {
        assert!(dequantize(GgmlType(12), &[0; 144], 256).is_none());
    }
}
