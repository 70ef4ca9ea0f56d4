#version 450
// Fused attention: dst = softmax(Q·Kᵀ·scale + mask) · V, one workgroup per (tile of BR
// rows, KV head). The rows of a KV head are the (query, head) pairs of the query heads
// that share it (grouped-query attention), query-major, so that K and V are read once for
// the whole group: a single decoding query still fills a tile. Keys are visited in tiles
// of BC with the online softmax: each row keeps its running max m, running sum l and
// output accumulator, rescaled by exp(m_old - m_new) whenever the max grows, so only a
// BR×BC score tile ever exists.
//
// K and V are read straight from the buffer (they are used once per workgroup, and a KV
// cache slice does not fit shared memory at large head_dim); Q, pre-scaled, sits in
// shared memory because every key reads all of it.
//
// Threads: WG = BR·T; the T threads of a row split the P·V product over head_dim chunks
// (TD of them) and, when head_dim is small, over CS interleaved subsets of the tile's
// keys, whose partial accumulators are summed once at the end. Every thread of a row
// computes the row's max and sum itself from the shared tile (same reads, same order,
// same result), which needs no cross-thread reduction and so no subgroup operations.
//
// K/V type: KV_F16 or KV_F32. Push constants carry element offsets and strides.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEAD_DIM = 128; // a multiple of 8
layout(constant_id = 2) const uint BR = 16;        // rows (query, head) per workgroup
layout(constant_id = 3) const uint BC = 32;        // keys per tile; divides WG
layout(constant_id = 4) const uint CS = 1;         // key subsets per row in P·V

const uint WG = gl_WorkGroupSize.x;
const uint DC = HEAD_DIM / 4;          // vec4 chunks of a row
const uint T = WG / BR;                // threads per query row
const uint TD = T / CS;                // threads per key subset, across chunks
const uint NCH = (DC + TD - 1) / TD;   // chunks per thread
const uint RPT = BR * BC / WG;         // score rows per thread

#if defined(KV_F16)
#define KV_TYPE float16_t
#else
#define KV_TYPE float
#endif

layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer K { KV_TYPE k[]; };
layout(binding = 2) readonly buffer V { KV_TYPE v[]; };
layout(binding = 3) readonly buffer MaskF32 { float mask_f32[]; };
layout(binding = 3) readonly buffer MaskF16 { float16_t mask_f16[]; };
layout(binding = 4) writeonly buffer Dst { float dst[]; };

const uint FLAG_MASK = 1, FLAG_MASK_F16 = 2, FLAG_CAUSAL = 4;

layout(push_constant) uniform Params {
    uint n_q, n_kv, gqa;              // gqa = n_head / n_head_kv
    uint n_rows;                      // n_q * gqa
    uint q_first, q_s1, q_s2;         // element offsets and strides (query, head)
    uint k_first, k_s1, k_s2;
    uint v_first, v_s1, v_s2;
    uint m_first, m_s1;
    uint d_first, d_s1, d_s2;         // dst strides: head, query
    uint flags;
    uint causal_offset;
    float scale;
} p;

#define NEG_INF uintBitsToFloat(0xff800000u)

shared vec4 q_tile[BR * DC];
shared float s_tile[BR * BC];
shared float p_tile[BR * BC];
shared vec4 partial[CS > 1 ? BR * CS * DC : 1];
shared float row_inv[BR];

vec4 load_k4(uint i) { return vec4(k[i], k[i + 1], k[i + 2], k[i + 3]); }
vec4 load_v4(uint i) { return vec4(v[i], v[i + 1], v[i + 2], v[i + 3]); }

// Row r of a KV head's tile is query r / gqa of query head hk * gqa + r % gqa.
uint query(uint row) { return row / p.gqa; }
uint head(uint hk, uint row) { return hk * p.gqa + row % p.gqa; }

float mask_at(uint row, uint key)
{
    const uint i = p.m_first + row * p.m_s1 + key;
    return (p.flags & FLAG_MASK_F16) != 0 ? float(mask_f16[i]) : mask_f32[i];
}

void main()
{
    const uint tid = gl_LocalInvocationIndex;
    const uint row0 = gl_WorkGroupID.x * BR;
    const uint hk = gl_WorkGroupID.y;
    const bool causal = (p.flags & FLAG_CAUSAL) != 0;

    for (uint i = tid; i < BR * DC; i += WG) {
        const uint row = row0 + i / DC;
        vec4 x = vec4(0);
        if (row < p.n_rows) {
            const uint base =
                p.q_first + query(row) * p.q_s1 + head(hk, row) * p.q_s2 + (i % DC) * 4;
            x = vec4(q[base], q[base + 1], q[base + 2], q[base + 3]) * p.scale;
        }
        q_tile[i] = x;
    }

    // Keys past the last row's causal limit are masked for every row of the tile.
    uint kv_end = p.n_kv;
    if (causal)
        kv_end = min(kv_end, query(min(row0 + BR, p.n_rows) - 1) + 1 + p.causal_offset);

    const uint r = tid / T, j = tid % T, cs = j / TD, td = j % TD;
    const uint k_head = p.k_first + hk * p.k_s2, v_head = p.v_first + hk * p.v_s2;
    float m = NEG_INF, l = 0.0;
    vec4 acc[NCH];
    [[unroll]] for (uint n = 0; n < NCH; n++)
        acc[n] = vec4(0);
    barrier();

    for (uint kv0 = 0; kv0 < kv_end; kv0 += BC) {
        // Scores: each thread takes one key of the tile and RPT rows, so that a chunk of
        // the key is loaded once for all of them.
        {
            const uint c = tid % BC, key = kv0 + c;
            float s[RPT];
            [[unroll]] for (uint n = 0; n < RPT; n++)
                s[n] = 0.0;
            if (key < kv_end) {
                const uint base = k_head + key * p.k_s1;
                for (uint c4 = 0; c4 < DC; c4++) {
                    const vec4 kk = load_k4(base + c4 * 4);
                    [[unroll]] for (uint n = 0; n < RPT; n++)
                        s[n] += dot(q_tile[(tid / BC + n * (WG / BC)) * DC + c4], kk);
                }
            }
            [[unroll]] for (uint n = 0; n < RPT; n++) {
                const uint rr = tid / BC + n * (WG / BC), row = row0 + rr;
                float x = s[n];
                if (key >= kv_end || row >= p.n_rows ||
                    (causal && key > query(row) + p.causal_offset))
                    x = NEG_INF;
                else if ((p.flags & FLAG_MASK) != 0)
                    x += mask_at(query(row), key);
                s_tile[rr * BC + c] = x;
            }
        }
        barrier();

        // Online softmax for row r. While every key so far is masked the max stays -inf;
        // exponents are then taken against 0 so that they come out 0 rather than NaN.
        float m_new = m;
        for (uint c = 0; c < BC; c++)
            m_new = max(m_new, s_tile[r * BC + c]);
        const float m_ref = m_new == NEG_INF ? 0.0 : m_new;
        for (uint c = j; c < BC; c += T) {
            const float x = s_tile[r * BC + c];
            p_tile[r * BC + c] = x == NEG_INF ? 0.0 : exp(x - m_ref);
        }
        const float alpha = m == NEG_INF ? 0.0 : exp(m - m_ref);
        m = m_new;
        barrier();

        float tile_sum = 0.0;
        for (uint c = 0; c < BC; c++)
            tile_sum += p_tile[r * BC + c];
        l = l * alpha + tile_sum;
        [[unroll]] for (uint n = 0; n < NCH; n++)
            acc[n] *= alpha;
        const uint c_end = min(BC, kv_end - kv0);
        for (uint c = cs; c < c_end; c += CS) {
            const float pc = p_tile[r * BC + c];
            const uint base = v_head + (kv0 + c) * p.v_s1;
            [[unroll]] for (uint n = 0; n < NCH; n++) {
                const uint ch = td + n * TD;
                if (ch < DC)
                    acc[n] += pc * load_v4(base + ch * 4);
            }
        }
    }

    const float inv = l > 0.0 ? 1.0 / l : 0.0;
    if (CS == 1) {
        const uint row = row0 + r;
        if (row >= p.n_rows)
            return;
        const uint base = p.d_first + head(hk, row) * p.d_s1 + query(row) * p.d_s2;
        [[unroll]] for (uint n = 0; n < NCH; n++) {
            const uint ch = td + n * TD;
            if (ch < DC) {
                const vec4 x = acc[n] * inv;
                dst[base + ch * 4] = x.x;
                dst[base + ch * 4 + 1] = x.y;
                dst[base + ch * 4 + 2] = x.z;
                dst[base + ch * 4 + 3] = x.w;
            }
        }
    } else {
        [[unroll]] for (uint n = 0; n < NCH; n++) {
            const uint ch = td + n * TD;
            if (ch < DC)
                partial[(r * CS + cs) * DC + ch] = acc[n];
        }
        if (j == 0)
            row_inv[r] = inv;
        barrier();
        for (uint i = tid; i < BR * DC; i += WG) {
            const uint rr = i / DC, ch = i % DC, row = row0 + rr;
            if (row >= p.n_rows)
                continue;
            vec4 x = vec4(0);
            for (uint s = 0; s < CS; s++)
                x += partial[(rr * CS + s) * DC + ch];
            x *= row_inv[rr];
            const uint base = p.d_first + head(hk, row) * p.d_s1 + query(row) * p.d_s2 + ch * 4;
            dst[base] = x.x;
            dst[base + 1] = x.y;
            dst[base + 2] = x.z;
            dst[base + 3] = x.w;
        }
    }
}
