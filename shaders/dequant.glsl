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

#else
#error "dequant.glsl: define one TYPE_<T>"
#endif
