//! The byte scan shared by the JSON reader and the canonical writer: the first byte of a string body
//! that needs attention (a quote, a backslash or a control character). Sixteen bytes at a time with
//! SSE2 on x86-64 (part of the baseline there, so no runtime detection), eight bytes at a time with word
//! tricks elsewhere and for the last bytes of a buffer.
//!
//! (A vector scan for whitespace runs was tried for pretty-printed input and was slower than the byte
//! loop: indentation runs are short and their lengths repeat, so the loop's exit predicts well.)

/// For each of the 8 bytes of `word`, a set high bit where the byte is `"`, `\\` or a control character
/// (the classic "has zero byte" / "has byte below" word tricks). Only the *lowest* set bit is exact:
/// borrows run upwards and can flag a byte above a flagged one, never below.
#[inline(always)]
fn special_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    (below_space | zero(word ^ (ONES * b'"' as u64)) | zero(word ^ (ONES * b'\\' as u64))) & HIGHS
}

/// The index of the first byte at or after `from` that is `"`, `\\` or a control character — the bytes a
/// JSON string body cannot hold raw, and exactly those canonical JSON escapes — or `bytes.len()`.
/// Sixteen bytes at a time (SSE2 on x86-64), then eight, the last few too when the buffer holds a whole
/// word.
#[inline(always)]
pub(crate) fn first_special(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = bytes
        .get(i..i + 16)
        .and_then(|c| <&[u8; 16]>::try_from(c).ok())
    {
        let mask = sse2::special_mask(chunk);
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        let mask = special_mask(u64::from_le_bytes(word));
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let len = bytes.len();
    if i >= len {
        return len;
    }
    if len >= 8 {
        // The last word of the buffer, shifted so that byte `i` comes first; the zero bytes shifted in
        // at the top are flagged, but above every real byte, so they only stand for "none found".
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[len - 8..]);
        let skip = i - (len - 8);
        let mask = special_mask(u64::from_le_bytes(word) >> (8 * skip));
        return (i + (mask.trailing_zeros() / 8) as usize).min(len);
    }
    while i < len && !matches!(bytes[i], b'"' | b'\\' | 0x00..=0x1f) {
        i += 1;
    }
    i
}

/// Sixteen bytes at a time with SSE2 compares and one `pmovmskb`. SSE2 is part of the x86-64 baseline,
/// so there is no runtime detection; the module only exists when the build enables it.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };

    /// Bit `k` set where byte `k` of `chunk` is `"`, `\\` or a control character (exact).
    #[inline(always)]
    pub(super) fn special_mask(chunk: &[u8; 16]) -> u32 {
        // SAFETY: `mask_sse2` only requires SSE2, which this module's `cfg` guarantees is enabled for
        // the whole build (it is part of the x86-64 baseline). No pointers are involved.
        unsafe { mask_sse2(chunk) }
    }

    /// One unaligned 16-byte load (built from two little-endian halves, which the compiler fuses).
    #[target_feature(enable = "sse2")]
    #[inline]
    fn load(chunk: &[u8; 16]) -> __m128i {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&chunk[..8]);
        hi.copy_from_slice(&chunk[8..]);
        _mm_set_epi64x(i64::from_le_bytes(hi), i64::from_le_bytes(lo))
    }

    #[target_feature(enable = "sse2")]
    #[inline]
    fn mask_sse2(chunk: &[u8; 16]) -> u32 {
        let v = load(chunk);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `b <= 0x1f` is `min(b, 0x1f) == b`.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_special_finds_every_offset() {
        for len in 0..48 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut bytes = vec![b'a'; len];
                    if at < len {
                        bytes[at] = special;
                    }
                    for from in 0..=at.min(len) {
                        assert_eq!(
                            first_special(&bytes, from),
                            at,
                            "len {len} at {at} from {from}"
                        );
                    }
                    // Bytes above 0x7f and DEL are plain.
                    let mut high = vec![0xe9u8; len];
                    high.iter_mut().step_by(3).for_each(|b| *b = 0x7f);
                    if at < len {
                        high[at] = special;
                    }
                    assert_eq!(first_special(&high, 0), at);
                }
            }
        }
    }
}
