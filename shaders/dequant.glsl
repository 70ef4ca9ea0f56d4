// Weight dequantization inside shaders, shared by mat-vec, mat-mul and get_rows.
//
// Before including, define one TYPE_<T> (TYPE_F32, TYPE_F16, TYPE_BF16, TYPE_Q4_0, ...)
// and WEIGHT_BINDING. The weight buffer is declared here under several views of the same
// binding (bytes, signed bytes, halves, words, floats); block layouts are GGUF's, bit for
// bit, and every block begins at an even byte offset.
//
// Interface, for a row whose first byte is at `row` (byte offset inside the binding):
//   QK                       elements per block (1 for plain types)
//   BLOCK_BYTES              bytes per block
//   float dequant1(row, k)   element k of the row
//   vec4  dequant4(row, k)   elements k..k+3 (k a multiple of 4)
// Mat-vec shaders may add faster whole-block paths per type; these are the reference.

layout(binding = WEIGHT_BINDING) readonly buffer WeightF32 { float w_f32[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightU32 { uint w_u32[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightF16 { float16_t w_f16[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightU16 { uint16_t w_u16[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightU8 { uint8_t w_u8[]; };
layout(binding = WEIGHT_BINDING) readonly buffer WeightI8 { int8_t w_i8[]; };

float w_half(uint byte_offset) { return float(w_f16[byte_offset >> 1]); }
uint w_byte(uint byte_offset) { return uint(w_u8[byte_offset]); }
int w_sbyte(uint byte_offset) { return int(w_i8[byte_offset]); }

#if defined(TYPE_F32)
#define QK 1
#define BLOCK_BYTES 4
float dequant1(uint row, uint k) { return w_f32[(row >> 2) + k]; }
vec4 dequant4(uint row, uint k)
{
    const uint i = (row >> 2) + k;
    return vec4(w_f32[i], w_f32[i + 1], w_f32[i + 2], w_f32[i + 3]);
}

#elif defined(TYPE_F16)
#define QK 1
#define BLOCK_BYTES 2
float dequant1(uint row, uint k) { return float(w_f16[(row >> 1) + k]); }
vec4 dequant4(uint row, uint k)
{
    const uint i = (row >> 1) + k;
    return vec4(float(w_f16[i]), float(w_f16[i + 1]), float(w_f16[i + 2]), float(w_f16[i + 3]));
}

#elif defined(TYPE_BF16)
#define QK 1
#define BLOCK_BYTES 2
float bf16_at(uint i) { return uintBitsToFloat(uint(w_u16[i]) << 16); }
float dequant1(uint row, uint k) { return bf16_at((row >> 1) + k); }
vec4 dequant4(uint row, uint k)
{
    const uint i = (row >> 1) + k;
    return vec4(bf16_at(i), bf16_at(i + 1), bf16_at(i + 2), bf16_at(i + 3));
}

#elif defined(TYPE_Q4_0)
// block_q4_0 { f16 d; u8 qs[16]; }: element j < 16 is the low nibble of qs[j], element
// j + 16 the high nibble; value = (nibble - 8) * d.
#define QK 32
#define BLOCK_BYTES 18
float dequant1(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, j = k % QK;
    const uint q = (w_byte(b + 2 + (j & 15)) >> ((j >> 4) * 4)) & 15;
    return (float(q) - 8.0) * w_half(b);
}
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, j = k % QK;
    const uint shift = (j >> 4) * 4, q0 = b + 2 + (j & 15);
    const vec4 q = vec4((w_byte(q0) >> shift) & 15, (w_byte(q0 + 1) >> shift) & 15,
                        (w_byte(q0 + 2) >> shift) & 15, (w_byte(q0 + 3) >> shift) & 15);
    return (q - 8.0) * w_half(b);
}

#elif defined(TYPE_Q8_0)
// block_q8_0 { f16 d; i8 qs[32]; }: value = qs[j] * d.
#define QK 32
#define BLOCK_BYTES 34
float dequant1(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES;
    return float(w_sbyte(b + 2 + k % QK)) * w_half(b);
}
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, q0 = b + 2 + k % QK;
    return vec4(w_sbyte(q0), w_sbyte(q0 + 1), w_sbyte(q0 + 2), w_sbyte(q0 + 3)) * w_half(b);
}

#elif defined(TYPE_Q4_1)
// block_q4_1 { f16 d, m; u8 qs[16]; }: nibbles as Q4_0; value = nibble * d + m.
#define QK 32
#define BLOCK_BYTES 20
float dequant1(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, j = k % QK;
    const uint q = (w_byte(b + 4 + (j & 15)) >> ((j >> 4) * 4)) & 15;
    return float(q) * w_half(b) + w_half(b + 2);
}
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, j = k % QK;
    const uint shift = (j >> 4) * 4, q0 = b + 4 + (j & 15);
    const vec4 q = vec4((w_byte(q0) >> shift) & 15, (w_byte(q0 + 1) >> shift) & 15,
                        (w_byte(q0 + 2) >> shift) & 15, (w_byte(q0 + 3) >> shift) & 15);
    return q * w_half(b) + w_half(b + 2);
}

#elif defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }: value = (q - 16) * d;
// block_q5_1 { f16 d, m; u8 qh[4]; u8 qs[16]; }: value = q * d + m. The low four bits
// of q are nibbles as in Q4_0, the fifth bit of element j is bit j of qh (a
// little-endian word that is only 2-byte aligned, so read as two halves).
#define QK 32
#if defined(TYPE_Q5_0)
#define BLOCK_BYTES 22
#define Q5_QH 2
#else
#define BLOCK_BYTES 24
#define Q5_QH 4
#endif
uint q5_high(uint b)
{
    return uint(w_u16[(b + Q5_QH) >> 1]) | (uint(w_u16[(b + Q5_QH + 2) >> 1]) << 16);
}
vec4 q5_scale(uint b, vec4 q)
{
#if defined(TYPE_Q5_0)
    return (q - 16.0) * w_half(b);
#else
    return q * w_half(b) + w_half(b + 2);
#endif
}
float dequant1(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, j = k % QK;
    const uint q = ((w_byte(b + Q5_QH + 4 + (j & 15)) >> ((j >> 4) * 4)) & 15) |
                   (((q5_high(b) >> j) & 1) << 4);
    return q5_scale(b, vec4(q)).x;
}
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, j = k % QK;
    const uint shift = (j >> 4) * 4, q0 = b + Q5_QH + 4 + (j & 15), h = q5_high(b) >> j;
    const vec4 q = vec4(((w_byte(q0) >> shift) & 15) | ((h & 1) << 4),
                        ((w_byte(q0 + 1) >> shift) & 15) | ((h & 2) << 3),
                        ((w_byte(q0 + 2) >> shift) & 15) | ((h & 4) << 2),
                        ((w_byte(q0 + 3) >> shift) & 15) | ((h & 8) << 1));
    return q5_scale(b, q);
}

#elif defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_Q4_K) || \
      defined(TYPE_Q5_K) || defined(TYPE_Q6_K)
// K-quants: 256-element super-blocks (layouts in engine/ref/at-ref-quant.c). dequant4
// never crosses a 16-element sub-block, so the four elements share their scale and
// their quant bits lie in four consecutive bytes at the same shift.
#define QK 256

#if defined(TYPE_Q2_K)
// block_q2_K { u8 scales[16]; u8 qs[64]; f16 d, dmin; }
#define BLOCK_BYTES 84
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, e = k % QK;
    const uint sc = w_byte(b + e / 16), shift = 2 * ((e % 128) / 32);
    const uint q0 = b + 16 + 32 * (e / 128) + e % 32;
    const vec4 q = vec4((w_byte(q0) >> shift) & 3, (w_byte(q0 + 1) >> shift) & 3,
                        (w_byte(q0 + 2) >> shift) & 3, (w_byte(q0 + 3) >> shift) & 3);
    return w_half(b + 80) * float(sc & 15) * q - w_half(b + 82) * float(sc >> 4);
}

#elif defined(TYPE_Q3_K)
// block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }
#define BLOCK_BYTES 110
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, e = k % QK, s = e / 16;
    const uint scale = ((w_byte(b + 96 + s % 8) >> (4 * (s / 8))) & 15) |
                       (((w_byte(b + 104 + s % 4) >> (2 * (s / 4))) & 3) << 4);
    const uint shift = 2 * ((e % 128) / 32), hbit = e / 32;
    const uint q0 = b + 32 + 32 * (e / 128) + e % 32, h0 = b + e % 32;
    vec4 q;
    [[unroll]] for (uint i = 0; i < 4; i++)
        q[i] = float((w_byte(q0 + i) >> shift) & 3) -
               (((w_byte(h0 + i) >> hbit) & 1) != 0 ? 0.0 : 4.0);
    return w_half(b + 108) * float(int(scale) - 32) * q;
}

#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// block_q4_K { f16 d, dmin; u8 scales[12]; u8 qs[128]; }
// block_q5_K { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
#if defined(TYPE_Q4_K)
#define BLOCK_BYTES 144
#define K4_QS 16
#else
#define BLOCK_BYTES 176
#define K4_QS 48
#endif
// Scale and min of sub-block j, packed as in ggml's get_scale_min_k4.
vec2 k4_scale_min(uint b, uint j)
{
    const uint s = b + 4;
    if (j < 4)
        return vec2(w_byte(s + j) & 63, w_byte(s + j + 4) & 63);
    return vec2((w_byte(s + j + 4) & 15) | ((w_byte(s + j - 4) >> 6) << 4),
                (w_byte(s + j + 4) >> 4) | ((w_byte(s + j) >> 6) << 4));
}
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, e = k % QK;
    const vec2 sm = k4_scale_min(b, e / 32);
    const uint shift = 4 * ((e / 32) & 1), q0 = b + K4_QS + 32 * (e / 64) + e % 32;
    vec4 q = vec4((w_byte(q0) >> shift) & 15, (w_byte(q0 + 1) >> shift) & 15,
                  (w_byte(q0 + 2) >> shift) & 15, (w_byte(q0 + 3) >> shift) & 15);
#if defined(TYPE_Q5_K)
    const uint h0 = b + 16 + e % 32, hbit = e / 32;
    q += 16.0 * vec4((w_byte(h0) >> hbit) & 1, (w_byte(h0 + 1) >> hbit) & 1,
                     (w_byte(h0 + 2) >> hbit) & 1, (w_byte(h0 + 3) >> hbit) & 1);
#endif
    return w_half(b) * sm.x * q - w_half(b + 2) * sm.y;
}

#elif defined(TYPE_Q6_K)
// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }
#define BLOCK_BYTES 210
vec4 dequant4(uint row, uint k)
{
    const uint b = row + (k / QK) * BLOCK_BYTES, e = k % QK;
    const uint h = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint l0 = b + 64 * h + 32 * (g & 1) + l, lshift = 4 * (g >> 1);
    const uint h0 = b + 128 + 32 * h + l, hshift = 2 * g;
    vec4 q;
    [[unroll]] for (uint i = 0; i < 4; i++)
        q[i] = float(((w_byte(l0 + i) >> lshift) & 15) | (((w_byte(h0 + i) >> hshift) & 3) << 4));
    return w_half(b + 208) * float(w_sbyte(b + 192 + e / 16)) * (q - 32.0);
}
#endif

float dequant1(uint row, uint k)
{
    return dequant4(row, k & ~3u)[k & 3];
}

#else
#error "dequant.glsl: define one TYPE_<T>"
#endif
