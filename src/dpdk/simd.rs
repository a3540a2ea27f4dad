//! Eight words compared with one at once. It is here, not with its
//! caller (the conn index), because it takes `unsafe` intrinsics, and this
//! module is where rvs keeps those.

/// Which of `words` equal `x`: bit `i` set for `words[i]`.
///
/// Two vector compares and two sign-bit gathers (SSE2, which every x86_64
/// processor has), where the compiler builds the same mask from a loop of
/// compares with a dozen more instructions.
#[inline(always)]
pub fn eq_mask8(words: &[u32; 8], x: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps,
            _mm_set1_epi32,
        };
        let p = words.as_ptr() as *const __m128i;
        // SAFETY: `words` is 32 readable bytes, the two unaligned loads
        // read its halves; the rest are register operations of SSE2.
        let (lo, hi) = unsafe {
            let t = _mm_set1_epi32(x as i32);
            let lo = _mm_cmpeq_epi32(_mm_loadu_si128(p), t);
            let hi = _mm_cmpeq_epi32(_mm_loadu_si128(p.add(1)), t);
            (
                _mm_movemask_ps(_mm_castsi128_ps(lo)),
                _mm_movemask_ps(_mm_castsi128_ps(hi)),
            )
        };
        (lo | hi << 4) as u32
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (0..8).fold(0, |m, i| m | u32::from(words[i] == x) << i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every position, alone and with others, and words that differ from
    /// `x` only in their sign bit or lowest bit (which a gather of the
    /// wrong bits would confuse).
    #[test]
    fn each_bit_says_whether_its_word_is_equal() {
        let x = 0x8000_0001u32;
        for bits in 0u32..256 {
            let mut w = [0u32; 8];
            for (i, v) in w.iter_mut().enumerate() {
                *v = if bits & 1 << i != 0 {
                    x
                } else if i % 2 == 0 {
                    x ^ 0x8000_0000
                } else {
                    x ^ 1
                };
            }
            assert_eq!(eq_mask8(&w, x), bits, "{w:x?}");
        }
    }
}
