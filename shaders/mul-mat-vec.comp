#version 450
// mul_mat_vec: dst[j][row] = dot(w row, x column j) for NUM_COLS columns of x and
// NUM_ROWS rows of w per workgroup. The threads of a workgroup stride over k in units:
// a few 32-bit words of one block (or eight elements of a plain type), decoded whole
// with shifts and masks, so neighbouring threads read neighbouring words; a unit's
// weights are decoded once and used for every column. Block scales multiply dot
// products, not elements. Partial sums are reduced with subgroupAdd (USE_SUBGROUP) or a
// shared-memory tree. Weights larger than one binding come in row ranges, one dispatch
// each (row_base).
#if defined(USE_SUBGROUP)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "dequant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG_SIZE = 64; // a power of two
layout(constant_id = 1) const uint NUM_COLS = 1;
layout(constant_id = 2) const uint NUM_ROWS = 1;
// w_first and w_stride are multiples of 4, and so is BLOCK_BYTES of block types: words
// load whole.
layout(constant_id = 3) const bool W_WORDS = false;
// x_first and x_stride are multiples of 4: x loads as vec4.
layout(constant_id = 4) const bool X_VEC4 = false;

// x is F32, or F16 with X_F16 (converted to float as it is loaded).
#if defined(X_F16)
layout(binding = 1) readonly buffer X { float16_t x[]; };
layout(binding = 1) readonly buffer X4 { f16vec4 x4[]; };
#else
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
#endif
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint k, m;              // row length; rows in this dispatch
    uint w_first, w_stride; // bytes: first row in binding 0, between rows
    uint x_first, x_stride; // elements of x
    uint d_first, d_stride; // floats
    uint row_base;          // output row of this dispatch's first row
} p;

// x[kk..kk+3] of column j (kk a multiple of 4).
vec4 xv(uint j, uint kk)
{
    const uint i = p.x_first + j * p.x_stride + kk;
    if (X_VEC4)
        return vec4(x4[i >> 2]);
    return vec4(float(x[i]), float(x[i + 1]), float(x[i + 2]), float(x[i + 3]));
}

float sum4(vec4 v) { return dot(v, vec4(1.0)); }

// The 32 bits at an even byte offset o of the weights, little-endian.
uint w_word(uint o)
{
    if (W_WORDS)
        return w_u32[o >> 2];
    return uint(w_u16[o >> 1]) | (uint(w_u16[(o >> 1) + 1]) << 16);
}

// Field (q >> shift) & mask of each of the four bytes of q.
vec4 bits4(uint q, uint shift, uint mask)
{
    return vec4((uvec4(q) >> (uvec4(0, 8, 16, 24) + shift)) & mask);
}

// The four bytes of q as signed integers.
vec4 sbytes4(uint q)
{
    return vec4(ivec4(uvec4(q) << uvec4(24, 16, 8, 0)) >> 24);
}

// A unit is what one thread decodes in one step: RUNS runs of four consecutive elements,
// run r at k = unit_k(u) + RUN_OFFSETS[r], with weights scale[r] * q[r] + bias[r].
// A row has k / UNIT units (UNIT = 4 * RUNS).
#if QK == 256
#define RUNS 4
#define RVEC vec4
#else
#define RUNS 2
#define RVEC vec2
#endif
#define UNIT (4 * RUNS)
#if defined(TYPE_Q4_1) || defined(TYPE_Q5_1) || defined(TYPE_Q2_K) || defined(TYPE_Q4_K) || \
    defined(TYPE_Q5_K)
#define HAS_BIAS
#endif

struct Unit {
    vec4 q[RUNS];
    RVEC scale;
#if defined(HAS_BIAS)
    RVEC bias;
#endif
};

#if QK == 1
// Eight consecutive elements.
const uint RUN_OFFSETS[RUNS] = { 0, 4 };
uint unit_k(uint u) { return u * UNIT; }
Unit decode(uint row, uint u)
{
    Unit w;
    w.scale = RVEC(1.0);
#if defined(TYPE_F32)
    const uint i = (row >> 2) + u * UNIT;
    [[unroll]] for (uint r = 0; r < RUNS; r++)
        w.q[r] = vec4(w_f32[i + 4 * r], w_f32[i + 4 * r + 1], w_f32[i + 4 * r + 2], w_f32[i + 4 * r + 3]);
#else
    [[unroll]] for (uint r = 0; r < RUNS; r++) {
        const uint q0 = w_word(row + 2 * u * UNIT + 8 * r), q1 = w_word(row + 2 * u * UNIT + 8 * r + 4);
#if defined(TYPE_F16)
        w.q[r] = vec4(unpackHalf2x16(q0), unpackHalf2x16(q1));
#else
        w.q[r] = uintBitsToFloat(uvec4(q0 << 16, q0 & 0xffff0000u, q1 << 16, q1 & 0xffff0000u));
#endif
    }
#endif
    return w;
}

#elif QK == 32
// Four units per block: unit u covers nibble bytes 4 * (u % 4) .. + 3 (elements l..l+3
// and l+16..l+19), or bytes 8 * (u % 4) .. + 7 of Q8_0's 32.
#if defined(TYPE_Q8_0)
const uint RUN_OFFSETS[RUNS] = { 0, 4 };
uint unit_k(uint u) { return (u >> 2) * QK + (u & 3) * 8; }
#else
const uint RUN_OFFSETS[RUNS] = { 0, 16 };
uint unit_k(uint u) { return (u >> 2) * QK + (u & 3) * 4; }
#endif
Unit decode(uint row, uint u)
{
    const uint b = row + (u >> 2) * BLOCK_BYTES;
    Unit w;
    w.scale = RVEC(w_half(b));
#if defined(TYPE_Q8_0)
    const uint l = (u & 3) * 8;
    w.q[0] = sbytes4(w_word(b + 2 + l));
    w.q[1] = sbytes4(w_word(b + 6 + l));
#else
    const uint l = (u & 3) * 4;
#if defined(TYPE_Q4_0)
    const uint qs = w_word(b + 2 + l);
    w.q[0] = bits4(qs, 0, 15) - 8.0;
    w.q[1] = bits4(qs, 4, 15) - 8.0;
#elif defined(TYPE_Q4_1)
    const uint qs = w_word(b + 4 + l);
    w.q[0] = bits4(qs, 0, 15);
    w.q[1] = bits4(qs, 4, 15);
#else
    const uint qs = w_word(b + Q5_QH + 4 + l), qh = w_word(b + Q5_QH);
    w.q[0] = bits4(qs, 0, 15) + 16.0 * vec4((uvec4(qh >> l) >> uvec4(0, 1, 2, 3)) & 1u);
    w.q[1] = bits4(qs, 4, 15) + 16.0 * vec4((uvec4(qh >> (l + 16)) >> uvec4(0, 1, 2, 3)) & 1u);
#if defined(TYPE_Q5_0)
    w.q[0] -= 16.0;
    w.q[1] -= 16.0;
#endif
#endif
#if defined(HAS_BIAS)
    w.bias = RVEC(w_half(b + 2));
#endif
#endif
    return w;
}

#else
// K-quants: sixteen units per super-block, each four runs from four different
// sub-blocks, so that a thread reads whole words of quant bits and decodes four
// sub-block scales per sixteen elements. t = u % 16 picks half h = t / 8 and byte
// l = 4 * (t % 8) inside a 32-byte run.
#if defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// Runs at 64h + l + {0, 32, 128, 160}: sub-blocks 2h, 2h + 1, 2h + 4, 2h + 5.
const uint RUN_OFFSETS[RUNS] = { 0, 32, 128, 160 };
uint unit_k(uint u) { return (u >> 4) * QK + 64 * ((u & 15) >> 3) + (u & 7) * 4; }
#else
// Runs at 128h + 32r + l: sub-blocks 8h + 2r + l / 16.
const uint RUN_OFFSETS[RUNS] = { 0, 32, 64, 96 };
uint unit_k(uint u) { return (u >> 4) * QK + 128 * ((u & 15) >> 3) + (u & 7) * 4; }
#endif
Unit decode(uint row, uint u)
{
    const uint b = row + (u >> 4) * BLOCK_BYTES, h = (u & 15) >> 3, l = (u & 7) * 4;
    Unit w;
#if defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
    // The 6-bit scales and mins of the four sub-blocks come from scale bytes 2h, 2h + 4
    // and 2h + 8 and the bytes after them.
    const uint s = b + 4 + 2 * h;
    const uint sa = uint(w_u16[s >> 1]), sc = uint(w_u16[(s + 4) >> 1]),
               se = uint(w_u16[(s + 8) >> 1]);
    const uvec2 lo_sc = uvec2(sa, sa >> 8) & 63u, lo_mn = uvec2(sc, sc >> 8) & 63u;
    const uvec2 hi_sc = (uvec2(se, se >> 8) & 15u) | ((uvec2(sa, sa >> 8) & 0xc0u) >> 2);
    const uvec2 hi_mn = ((uvec2(se, se >> 8) >> 4) & 15u) | ((uvec2(sc, sc >> 8) & 0xc0u) >> 2);
    const uint q_lo = w_word(b + K4_QS + 32 * h + l), q_hi = w_word(b + K4_QS + 64 + 32 * h + l);
    w.q[0] = bits4(q_lo, 0, 15);
    w.q[1] = bits4(q_lo, 4, 15);
    w.q[2] = bits4(q_hi, 0, 15);
    w.q[3] = bits4(q_hi, 4, 15);
#if defined(TYPE_Q5_K)
    const uint qh = w_word(b + 16 + l);
    [[unroll]] for (uint r = 0; r < RUNS; r++)
        w.q[r] += 16.0 * bits4(qh, 2 * h + (r & 1) + 4 * (r >> 1), 1);
#endif
    w.scale = w_half(b) * vec4(lo_sc, hi_sc);
    w.bias = -w_half(b + 2) * vec4(lo_mn, hi_mn);
#else
    const uint sub = 8 * h + (l >> 4);
#if defined(TYPE_Q2_K)
    const uint qs = w_word(b + 16 + 32 * h + l);
    uvec4 sc;
    [[unroll]] for (uint r = 0; r < RUNS; r++) {
        w.q[r] = bits4(qs, 2 * r, 3);
        sc[r] = w_byte(b + sub + 2 * r);
    }
    w.scale = w_half(b + 80) * vec4(sc & 15u);
    w.bias = -w_half(b + 82) * vec4(sc >> 4);
#elif defined(TYPE_Q3_K)
    const uint qs = w_word(b + 32 + 32 * h + l), hm = w_word(b + l);
    [[unroll]] for (uint r = 0; r < RUNS; r++) {
        // A clear high-mask bit subtracts 4.
        w.q[r] = bits4(qs, 2 * r, 3) - 4.0 + 4.0 * bits4(hm, 4 * h + r, 1);
        const uint i = sub + 2 * r;
        w.scale[r] = float(int(((w_byte(b + 96 + i % 8) >> (4 * (i / 8))) & 15) |
                               (((w_byte(b + 104 + i % 4) >> (2 * (i / 4))) & 3) << 4)) - 32);
    }
    w.scale *= w_half(b + 108);
#elif defined(TYPE_Q6_K)
    const uint ql0 = w_word(b + 64 * h + l), ql1 = w_word(b + 64 * h + 32 + l);
    const uint qh = w_word(b + 128 + 32 * h + l);
    [[unroll]] for (uint r = 0; r < RUNS; r++) {
        w.q[r] = bits4((r & 1) == 0 ? ql0 : ql1, 4 * (r >> 1), 15) + 16.0 * bits4(qh, 2 * r, 3) - 32.0;
        w.scale[r] = float(w_sbyte(b + 192 + sub + 2 * r));
    }
    w.scale *= w_half(b + 208);
#endif
#endif
    return w;
}
#endif

shared float partial[NUM_ROWS * NUM_COLS * WG_SIZE];

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint row0 = at_workgroup_index() * NUM_ROWS;
    if (row0 >= p.m)
        return;

    // Rows past the end repeat the last one, so that every thread runs the same loop;
    // their sums are not written.
    uint rows[NUM_ROWS];
    float acc[NUM_ROWS][NUM_COLS];
    [[unroll]] for (uint r = 0; r < NUM_ROWS; r++) {
        rows[r] = p.w_first + min(row0 + r, p.m - 1) * p.w_stride;
        [[unroll]] for (uint j = 0; j < NUM_COLS; j++)
            acc[r][j] = 0.0;
    }

    // Each unit's weights are decoded once for all columns, and each column's x once
    // for all rows.
    const uint n_units = p.k / UNIT;
    for (uint u = tid; u < n_units; u += WG_SIZE) {
        Unit w[NUM_ROWS];
        [[unroll]] for (uint r = 0; r < NUM_ROWS; r++)
            w[r] = decode(rows[r], u);
        const uint kk = unit_k(u);
        [[unroll]] for (uint j = 0; j < NUM_COLS; j++) {
            vec4 xr[RUNS];
            [[unroll]] for (uint i = 0; i < RUNS; i++)
                xr[i] = xv(j, kk + RUN_OFFSETS[i]);
#if defined(HAS_BIAS)
            RVEC sums;
            [[unroll]] for (uint i = 0; i < RUNS; i++)
                sums[i] = sum4(xr[i]);
#endif
            [[unroll]] for (uint r = 0; r < NUM_ROWS; r++) {
                RVEC dots;
                [[unroll]] for (uint i = 0; i < RUNS; i++)
                    dots[i] = dot(w[r].q[i], xr[i]);
                acc[r][j] += dot(w[r].scale, dots);
#if defined(HAS_BIAS)
                acc[r][j] += dot(w[r].bias, sums);
#endif
            }
        }
    }
#if QK == 1
    for (uint kk = n_units * UNIT + tid; kk < p.k; kk += WG_SIZE)
        [[unroll]] for (uint r = 0; r < NUM_ROWS; r++) {
            const float wv = dequant1(rows[r], kk);
            [[unroll]] for (uint j = 0; j < NUM_COLS; j++)
                acc[r][j] += wv * float(x[p.x_first + j * p.x_stride + kk]);
        }
#endif

#if defined(USE_SUBGROUP)
    if (gl_NumSubgroups == 1) {
        // One subgroup is the whole workgroup (CPUs; GPUs with a workgroup of one
        // subgroup): no shared memory, no barrier.
        [[unroll]] for (uint r = 0; r < NUM_ROWS; r++)
            [[unroll]] for (uint j = 0; j < NUM_COLS; j++) {
                const float s = subgroupAdd(acc[r][j]);
                if (tid == 0 && row0 + r < p.m)
                    d[p.d_first + j * p.d_stride + p.row_base + row0 + r] = s;
            }
        return;
    }
    [[unroll]] for (uint r = 0; r < NUM_ROWS; r++)
        [[unroll]] for (uint j = 0; j < NUM_COLS; j++) {
            const float s = subgroupAdd(acc[r][j]);
            if (subgroupElect())
                partial[(r * NUM_COLS + j) * WG_SIZE + gl_SubgroupID] = s;
        }
    barrier();
    const uint n_partials = gl_NumSubgroups;
#else
    [[unroll]] for (uint r = 0; r < NUM_ROWS; r++)
        [[unroll]] for (uint j = 0; j < NUM_COLS; j++)
            partial[(r * NUM_COLS + j) * WG_SIZE + tid] = acc[r][j];
    barrier();
    [[unroll]] for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (tid < s)
            [[unroll]] for (uint rj = 0; rj < NUM_ROWS * NUM_COLS; rj++)
                partial[rj * WG_SIZE + tid] += partial[rj * WG_SIZE + tid + s];
        barrier();
    }
    const uint n_partials = 1;
#endif

    for (uint o = tid; o < NUM_ROWS * NUM_COLS; o += WG_SIZE) {
        const uint r = o / NUM_COLS, j = o % NUM_COLS;
        float sum = 0.0;
        for (uint g = 0; g < n_partials; g++)
            sum += partial[o * WG_SIZE + g];
        if (row0 + r < p.m)
            d[p.d_first + j * p.d_stride + p.row_base + row0 + r] = sum;
    }
}
