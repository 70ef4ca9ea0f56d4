#version 450
// Fused attention: dst = softmax(Q·Kᵀ·scale + mask) · V with the online softmax: each row
// keeps a running max m, running sum l and output accumulator o, rescaled by
// exp(m_old - m_new) whenever the max grows, so that no score matrix ever exists.
//
// The rows of a KV head are the (query, head) pairs of the query heads that share it
// (grouped-query attention), query-major, so that K and V are read once for the whole
// group: a single decoding query of 4 heads per KV head is 4 rows.
//
// Two launch shapes, picked by the host from the number of rows:
//
// Many rows (prefill, diffusion; the default): one thread per row, one workgroup per
// (tile of WG rows, KV head). K and V come through shared memory in tiles of BC keys,
// loaded together with 4-element vector reads and read back by all threads at the same
// address (a broadcast). Each thread holds its row's scaled Q and its output in
// registers and takes BC scores at a time, so the max and sum of a row need nothing
// from other threads and the key loop has only the two barriers of the tile loads.
//
// Few rows (SPLIT, decoding): nothing to share between rows, so the keys are spread
// instead. One workgroup per (tile of BR rows, KV head, split of the keys); inside it,
// lane groups of G threads each take KB keys at a time, every lane holding a slice of
// head_dim of Q and of the outputs; a score is the group's sum of its lanes' partial dot
// products. Each group keeps its own (m, l, o) for every row and writes them, not yet
// divided by l, to the partials buffer, one slot per (split, group); the
// flash-attn-reduce pass merges the slots into dst. Lane groups are subgroups with
// USE_SUBGROUP_ARITHMETIC (sums by subgroupAdd, no barrier in the key loop), else G
// threads summing through shared memory.
//
// K/V type: KV_F16 or KV_F32. Push constants carry element offsets and strides.
//
// Code size matters to drivers that compile slowly (lavapipe's LLVM takes minutes over
// fully unrolled tiles): choices are specialization constants so that dead paths go,
// and out-of-range keys are clamped to a valid one (their score is masked) rather than
// branched around.
#include "common.glsl"

#if defined(USE_SUBGROUP_ARITHMETIC)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEAD_DIM = 128; // a multiple of 8
// Many rows: keys per shared tile. SPLIT: rows per workgroup.
layout(constant_id = 2) const uint TILE = 32;
// SPLIT: lanes per group; with USE_SUBGROUP_ARITHMETIC the device's subgroup size,
// which gl_SubgroupSize equals for SPIR-V below 1.6 without varying subgroup sizes.
layout(constant_id = 3) const uint G = 8;
// Every K/V offset and stride is a multiple of 4: K and V are read 4 elements per load.
layout(constant_id = 4) const bool ALIGNED4 = false;

const uint WG = gl_WorkGroupSize.x;
const uint DC = HEAD_DIM / 4;          // vec4 chunks of a row

#if defined(KV_F16)
#define KV_TYPE float16_t
#define KV_TYPE4 f16vec4
#else
#define KV_TYPE float
#define KV_TYPE4 vec4
#endif

layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer K { KV_TYPE k[]; };
layout(binding = 1) readonly buffer K4 { KV_TYPE4 k4[]; };
layout(binding = 2) readonly buffer V { KV_TYPE v[]; };
layout(binding = 2) readonly buffer V4 { KV_TYPE4 v4[]; };
layout(binding = 3) readonly buffer MaskF32 { float mask_f32[]; };
layout(binding = 3) readonly buffer MaskF16 { float16_t mask_f16[]; };
// dst, or for SPLIT the partials: o [slot][n_head_kv * n_rows][HEAD_DIM], then (m, l)
// [slot][n_head_kv * n_rows].
layout(binding = 4) writeonly buffer Dst { float dst[]; };

const uint FLAG_MASK = 1, FLAG_MASK_F16 = 2, FLAG_CAUSAL = 4;

layout(push_constant) uniform Params {
    uint n_q, n_kv, gqa;              // gqa = n_head / n_head_kv
    uint n_rows;                      // n_q * gqa
    uint q_first, q_s1, q_s2;         // element offsets and strides (query, head)
    uint k_first, k_s1, k_s2;
    uint v_first, v_s1, v_s2;
    uint m_first, m_s1;
    uint d_first, d_s1, d_s2;         // dst strides: head, query; SPLIT: m/l offset
    uint flags;
    uint causal_offset;
    uint kv_per_split;                // SPLIT: keys per split, a multiple of KB
    float scale;
} p;

#define NEG_INF uintBitsToFloat(0xff800000u)

vec4 load_k4(uint i)
{
    if (ALIGNED4)
        return vec4(k4[i / 4]);
    return vec4(k[i], k[i + 1], k[i + 2], k[i + 3]);
}

vec4 load_v4(uint i)
{
    if (ALIGNED4)
        return vec4(v4[i / 4]);
    return vec4(v[i], v[i + 1], v[i + 2], v[i + 3]);
}

// Row r of a KV head's tile is query r / gqa of query head hk * gqa + r % gqa.
uint query(uint row) { return row / p.gqa; }
uint head(uint hk, uint row) { return hk * p.gqa + row % p.gqa; }

vec4 load_q4(uint row, uint hk, uint ch)
{
    const uint i = p.q_first + query(row) * p.q_s1 + head(hk, row) * p.q_s2 + ch * 4;
    return vec4(q[i], q[i + 1], q[i + 2], q[i + 3]) * p.scale;
}

// The score of row against key with the mask applied; -inf when masked.
float masked_score(float s, uint row, uint key, uint kv_end)
{
    if (key >= kv_end || row >= p.n_rows ||
        ((p.flags & FLAG_CAUSAL) != 0 && key > query(row) + p.causal_offset))
        return NEG_INF;
    if ((p.flags & FLAG_MASK) != 0) {
        const uint i = p.m_first + query(row) * p.m_s1 + key;
        s += (p.flags & FLAG_MASK_F16) != 0 ? float(mask_f16[i]) : mask_f32[i];
    }
    return s;
}

// Keys past the last row's causal limit are masked for every row of a tile.
uint tile_kv_end(uint row0, uint rows)
{
    if ((p.flags & FLAG_CAUSAL) == 0)
        return p.n_kv;
    return min(p.n_kv, query(min(row0 + rows, p.n_rows) - 1) + 1 + p.causal_offset);
}

// The online-softmax step for scores s of one row: the new max, the factor for what was
// accumulated so far, and the scores turned into exp(s - max) in place. While every key
// so far is masked the max stays -inf; exponents are then taken against 0 so that they
// come out 0 rather than NaN.
#define SOFTMAX_STEP(s, N, m, l, alpha)                                              \
    {                                                                                \
        float m_new = m;                                                             \
        [[unroll]] for (uint c_ = 0; c_ < N; c_++)                                   \
            m_new = max(m_new, s[c_]);                                               \
        const float m_ref = m_new == NEG_INF ? 0.0 : m_new;                          \
        alpha = m == NEG_INF ? 0.0 : exp(m - m_ref);                                 \
        m = m_new;                                                                   \
        float sum_ = 0.0;                                                            \
        [[unroll]] for (uint c_ = 0; c_ < N; c_++) {                                 \
            s[c_] = s[c_] == NEG_INF ? 0.0 : exp(s[c_] - m_ref);                     \
            sum_ += s[c_];                                                           \
        }                                                                            \
        l = l * alpha + sum_;                                                        \
    }

#if !defined(SPLIT)

const uint SB = 8;                     // keys per score block; divides TILE

shared vec4 k_tile[TILE * DC];
shared vec4 v_tile[TILE * DC];

void main()
{
    const uint tid = gl_LocalInvocationIndex;
    const uint row0 = gl_WorkGroupID.x * WG, row = row0 + tid;
    const uint hk = gl_WorkGroupID.y;
    const uint kv_end = tile_kv_end(row0, WG);
    const uint k_head = p.k_first + hk * p.k_s2, v_head = p.v_first + hk * p.v_s2;

    vec4 qr[DC], o[DC];
    [[unroll]] for (uint n = 0; n < DC; n++) {
        qr[n] = row < p.n_rows ? load_q4(row, hk, n) : vec4(0);
        o[n] = vec4(0);
    }
    float m = NEG_INF, l = 0.0;

    for (uint kv0 = 0; kv0 < kv_end; kv0 += TILE) {
        barrier();
        for (uint i = tid; i < TILE * DC; i += WG) {
            const uint key = kv0 + i / DC, ch = i % DC;
            const bool inside = key < kv_end;
            k_tile[i] = inside ? load_k4(k_head + key * p.k_s1 + ch * 4) : vec4(0);
            v_tile[i] = inside ? load_v4(v_head + key * p.v_s1 + ch * 4) : vec4(0);
        }
        barrier();

        // Scores SB keys at a time: one rescale per block. The loops over head_dim stay
        // loops: unrolled they make shaders that lavapipe takes minutes to compile.
        [[dont_unroll]] for (uint b = 0; b < TILE; b += SB) {
            float s[SB];
            [[unroll]] for (uint c = 0; c < SB; c++)
                s[c] = 0.0;
            [[dont_unroll]] for (uint n = 0; n < DC; n++) {
                const vec4 qn = qr[n];
                [[unroll]] for (uint c = 0; c < SB; c++)
                    s[c] += dot(qn, k_tile[(b + c) * DC + n]);
            }
            [[unroll]] for (uint c = 0; c < SB; c++)
                s[c] = masked_score(s[c], row, kv0 + b + c, kv_end);
            float alpha;
            SOFTMAX_STEP(s, SB, m, l, alpha);
            [[dont_unroll]] for (uint n = 0; n < DC; n++) {
                vec4 x = o[n] * alpha;
                [[unroll]] for (uint c = 0; c < SB; c++)
                    x += s[c] * v_tile[(b + c) * DC + n];
                o[n] = x;
            }
        }
    }

    if (row >= p.n_rows)
        return;
    const float inv = l > 0.0 ? 1.0 / l : 0.0;
    const uint base = p.d_first + head(hk, row) * p.d_s1 + query(row) * p.d_s2;
    [[unroll]] for (uint n = 0; n < DC; n++) {
        const vec4 x = o[n] * inv;
        dst[base + n * 4] = x.x;
        dst[base + n * 4 + 1] = x.y;
        dst[base + n * 4 + 2] = x.z;
        dst[base + n * 4 + 3] = x.w;
    }
}

#else // SPLIT

const uint BR = TILE;
const uint KB = 4;                     // keys per group per step
const uint NG = WG / G;                // lane groups
const uint NCH = (DC + G - 1) / G;     // chunks per lane

#if defined(USE_SUBGROUP_ARITHMETIC)
uint lane() { return gl_SubgroupInvocationID; }
uint group() { return gl_SubgroupID; }
void group_sums(inout float s[BR][KB])
{
    [[unroll]] for (uint r = 0; r < BR; r++)
        [[unroll]] for (uint c = 0; c < KB; c++)
            s[r][c] = subgroupAdd(s[r][c]);
}
#else
shared float sums[BR * KB * WG];
uint lane() { return gl_LocalInvocationIndex % G; }
uint group() { return gl_LocalInvocationIndex / G; }
// Every lane of a group adds up the group's values itself: the same reads in the same
// order, so every lane gets the same sums. Called in uniform control flow.
void group_sums(inout float s[BR][KB])
{
    const uint tid = gl_LocalInvocationIndex, first = group() * G;
    barrier();
    [[unroll]] for (uint r = 0; r < BR; r++)
        [[unroll]] for (uint c = 0; c < KB; c++)
            sums[(r * KB + c) * WG + tid] = s[r][c];
    barrier();
    [[unroll]] for (uint r = 0; r < BR; r++)
        [[unroll]] for (uint c = 0; c < KB; c++) {
            float x = 0.0;
            for (uint i = 0; i < G; i++)
                x += sums[(r * KB + c) * WG + first + i];
            s[r][c] = x;
        }
}
#endif

void main()
{
    const uint row0 = gl_WorkGroupID.x * BR, hk = gl_WorkGroupID.y, split = gl_WorkGroupID.z;
    const uint ln = lane(), g = group();
    const uint kv_begin = split * p.kv_per_split;
    const uint kv_end = min(tile_kv_end(row0, BR), kv_begin + p.kv_per_split);
    const uint k_head = p.k_first + hk * p.k_s2, v_head = p.v_first + hk * p.v_s2;

    vec4 qr[BR][NCH], o[BR][NCH];
    float m[BR], l[BR];
    [[unroll]] for (uint r = 0; r < BR; r++) {
        [[unroll]] for (uint n = 0; n < NCH; n++) {
            const uint ch = ln + n * G;
            qr[r][n] = row0 + r < p.n_rows && ch < DC ? load_q4(row0 + r, hk, ch) : vec4(0);
            o[r][n] = vec4(0);
        }
        m[r] = NEG_INF;
        l[r] = 0.0;
    }

    // The same number of steps for every group, so that the shared-memory sums stay in
    // uniform control flow.
    const uint n_steps = kv_end > kv_begin ? (kv_end - kv_begin + NG * KB - 1) / (NG * KB) : 0;
    for (uint step = 0; step < n_steps; step++) {
        const uint kv0 = kv_begin + (step * NG + g) * KB;
        float s[BR][KB];
        [[unroll]] for (uint r = 0; r < BR; r++)
            [[unroll]] for (uint c = 0; c < KB; c++)
                s[r][c] = 0.0;
        [[unroll]] for (uint c = 0; c < KB; c++) {
            const uint key = min(kv0 + c, kv_end - 1);
            [[unroll]] for (uint n = 0; n < NCH; n++) {
                const uint ch = ln + n * G;
                if (ch < DC) {
                    const vec4 kk = load_k4(k_head + key * p.k_s1 + ch * 4);
                    [[unroll]] for (uint r = 0; r < BR; r++)
                        s[r][c] += dot(qr[r][n], kk);
                }
            }
        }
        group_sums(s);
        [[unroll]] for (uint r = 0; r < BR; r++) {
            float sr[KB];
            [[unroll]] for (uint c = 0; c < KB; c++)
                sr[c] = masked_score(s[r][c], row0 + r, kv0 + c, kv_end);
            float alpha;
            SOFTMAX_STEP(sr, KB, m[r], l[r], alpha);
            [[unroll]] for (uint c = 0; c < KB; c++)
                s[r][c] = sr[c];
            [[unroll]] for (uint n = 0; n < NCH; n++)
                o[r][n] *= alpha;
        }
        [[unroll]] for (uint c = 0; c < KB; c++) {
            const uint key = min(kv0 + c, kv_end - 1);
            [[unroll]] for (uint n = 0; n < NCH; n++) {
                const uint ch = ln + n * G;
                if (ch < DC) {
                    const vec4 vv = load_v4(v_head + key * p.v_s1 + ch * 4);
                    [[unroll]] for (uint r = 0; r < BR; r++)
                        o[r][n] += s[r][c] * vv;
                }
            }
        }
    }

    const uint n_gr = gl_NumWorkGroups.y * p.n_rows, slot = split * NG + g;
    [[unroll]] for (uint r = 0; r < BR; r++) {
        if (row0 + r >= p.n_rows)
            break;
        const uint gr = slot * n_gr + hk * p.n_rows + row0 + r;
        [[unroll]] for (uint n = 0; n < NCH; n++) {
            const uint ch = ln + n * G;
            if (ch < DC) {
                const uint i = p.d_first + gr * HEAD_DIM + ch * 4;
                dst[i] = o[r][n].x;
                dst[i + 1] = o[r][n].y;
                dst[i + 2] = o[r][n].z;
                dst[i + 3] = o[r][n].w;
            }
        }
        if (ln == 0) {
            dst[p.d_s1 + gr * 2] = m[r];
            dst[p.d_s1 + gr * 2 + 1] = l[r];
        }
    }
}

#endif
