#version 450
// Copy with type conversion: element k of dst (in dst's row-major order) = element k of
// src (in src's order); both with their own shapes and element strides. Define one
// SRC_<T> and one DST_<T> (F32, F16, BF16; and DST_Q8_0 from F32). Same-type copies move
// the bits untouched; conversions to 16 bits round to nearest even by hand, bit for bit
// as the CPU reference (at_fp32_to_fp16 / at_fp32_to_bf16), whatever rounding the
// device's own conversions use. Q8_0 takes one invocation per block of 32 (dst rows
// hold whole blocks; its offset and strides come in 16-bit units).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
    uint n;
    uint s_ne0, s_ne1, s_ne2;
    uint d_ne0, d_ne1, d_ne2;
    uint s_first, d_first;
    uint s_s0, s_s1, s_s2, s_s3; // element strides
    uint d_s0, d_s1, d_s2, d_s3;
} p;

#if (defined(SRC_F32) && defined(DST_F32))
#define RAW uint
#elif (defined(SRC_F16) && defined(DST_F16)) || (defined(SRC_BF16) && defined(DST_BF16))
#define RAW uint16_t
#endif

#if defined(RAW)
layout(binding = 0) readonly buffer S { RAW s[]; };
layout(binding = 1) writeonly buffer D { RAW d[]; };
#define COPY(si, di) d[di] = s[si]
#else

// Conversions work on the bits (every value passes through its f32 bit pattern) so that
// no device's denormal flushing or NaN handling can change a result.
#if defined(SRC_F32)
layout(binding = 0) readonly buffer S { uint s[]; };
uint load(uint i) { return s[i]; }
#elif defined(SRC_F16)
layout(binding = 0) readonly buffer S { uint16_t s[]; };
uint load(uint i)
{
    const uint h = uint(s[i]);
    const uint sign = (h & 0x8000u) << 16;
    const uint e = (h >> 10) & 0x1fu;
    const uint m = h & 0x3ffu;
    if (e == 0x1fu) // Inf or NaN
        return sign | 0x7f800000u | (m << 13);
    if (e == 0u) // zero or subnormal: m * 2^-24, exact and normal in f32
        return sign | floatBitsToUint(float(m) * (1.0 / 16777216.0));
    return sign | ((e + 112u) << 23) | (m << 13);
}
#elif defined(SRC_BF16)
layout(binding = 0) readonly buffer S { uint16_t s[]; };
uint load(uint i) { return uint(s[i]) << 16; }
#endif

#if defined(DST_F16) || defined(DST_Q8_0)
uint fp32_to_fp16(uint x)
{
    const uint sign = (x >> 16) & 0x8000u;
    const uint a = x & 0x7fffffffu;

    if (a >= 0x7f800000u) // Inf or NaN
        return sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u);
    if (a >= 0x477ff000u) // rounds to >= 65520: overflow
        return sign | 0x7c00u;
    if (a < 0x38800000u) {
        // Half subnormal: the value in units of 2^-24 is the 24-bit significand m
        // shifted right by 126 - e; below 2^-25 (e < 102) it rounds to zero.
        const uint e = a >> 23;
        if (e < 102u)
            return sign;
        const uint m = (a & 0x7fffffu) | 0x800000u;
        const uint shift = 126u - e;
        const uint q = m >> shift;
        const uint rem = m & ((1u << shift) - 1u);
        const uint halfway = 1u << (shift - 1u);
        return sign | (q + uint(rem > halfway || (rem == halfway && (q & 1u) != 0u)));
    }
    // Rebias the exponent (-112 << 23) and round to nearest even at bit 13.
    return sign | ((a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13);
}
#endif

#if defined(DST_F32)
layout(binding = 1) writeonly buffer D { uint d[]; };
void store(uint i, uint x) { d[i] = x; }
#elif defined(DST_F16)
layout(binding = 1) writeonly buffer D { uint16_t d[]; };
void store(uint i, uint x) { d[i] = uint16_t(fp32_to_fp16(x)); }
#elif defined(DST_BF16)
layout(binding = 1) writeonly buffer D { uint16_t d[]; };
uint fp32_to_bf16(uint x)
{
    if ((x & 0x7fffffffu) > 0x7f800000u) // NaN stays NaN
        return (x >> 16) | 0x40u;
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}
void store(uint i, uint x) { d[i] = uint16_t(fp32_to_bf16(x)); }
#elif defined(DST_Q8_0)
layout(binding = 1) writeonly buffer D16 { uint16_t d16[]; };
layout(binding = 1) writeonly buffer D8 { uint8_t d8[]; };
#endif

#define COPY(si, di) store(di, load(si))
#endif

// Position of element k of src (its row-major order) in the src binding, in elements.
uint src_index(uint k)
{
    const uint s0 = k % p.s_ne0; k /= p.s_ne0;
    const uint s1 = k % p.s_ne1; k /= p.s_ne1;
    const uint s2 = k % p.s_ne2;
    const uint s3 = k / p.s_ne2;
    return p.s_first + s0 * p.s_s0 + s1 * p.s_s1 + s2 * p.s_s2 + s3 * p.s_s3;
}

// Position of element k of dst in the dst binding: in elements, or for Q8_0 in 16-bit
// units, of the block that holds it.
uint dst_index(uint k)
{
    uint d0 = k % p.d_ne0; k /= p.d_ne0;
#if defined(DST_Q8_0)
    d0 /= 32u;
#endif
    const uint d1 = k % p.d_ne1; k /= p.d_ne1;
    const uint d2 = k % p.d_ne2;
    const uint d3 = k / p.d_ne2;
    return p.d_first + d0 * p.d_s0 + d1 * p.d_s1 + d2 * p.d_s2 + d3 * p.d_s3;
}

#if defined(DST_Q8_0)
// One block: d = max |x| / 127 (stored as f16), q = round(x / d) half away from zero, as
// ggml's quantize_row_q8_0_ref.
void main()
{
    const uint b = at_global_index(gl_WorkGroupSize.x);
    if (b >= p.n / 32u)
        return;
    float v[32];
    float amax = 0.0;
    [[unroll]] for (uint e = 0u; e < 32u; e++) {
        v[e] = uintBitsToFloat(load(src_index(b * 32u + e)));
        amax = max(amax, abs(v[e]));
    }
    const float d = amax / 127.0;
    const float id = d != 0.0 ? 1.0 / d : 0.0;
    const uint h = dst_index(b * 32u);
    d16[h] = uint16_t(fp32_to_fp16(floatBitsToUint(d)));
    [[unroll]] for (uint e = 0u; e < 32u; e++) {
        const float t = v[e] * id;
        d8[2u * h + 2u + e] = uint8_t(uint(int(sign(t) * floor(abs(t) + 0.5))) & 0xffu);
    }
}
#else
void main()
{
    const uint i = at_global_index(gl_WorkGroupSize.x);
    if (i >= p.n)
        return;
    COPY(src_index(i), dst_index(i));
}
#endif
