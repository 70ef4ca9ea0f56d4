#version 450
// The second pass of split flash attention: merges the partial results of the slots
// (split of the keys, lane group) of each row into dst. A slot holds m (its max score),
// l (its sum of exp(score - m)) and o (its sum of exp(score - m) · V); with M the max of
// the slots' m, dst = Σ exp(m - M) o / Σ exp(m - M) l. Slots that saw no key have
// m = -inf and weigh nothing; a row with no key at all gets zeros.
//
// One workgroup per row (query, head), its threads over head_dim. Every thread merges
// the few (m, l) itself rather than sharing them: no barrier, and the same result.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEAD_DIM = 128;

layout(binding = 0) readonly buffer Partials { float part[]; };
layout(binding = 1) writeonly buffer Dst { float dst[]; };

layout(push_constant) uniform Params {
    uint n_slots;
    uint n_gr;                        // rows of all KV heads: n_head_kv * n_rows
    uint n_rows, gqa;
    uint o_first, ml_first;           // element offsets of o and (m, l) in part
    uint d_first, d_s1, d_s2;         // dst strides: head, query
} p;

#define NEG_INF uintBitsToFloat(0xff800000u)

void main()
{
    const uint gr = at_workgroup_index();
    if (gr >= p.n_gr)
        return;
    const uint hk = gr / p.n_rows, row = gr % p.n_rows;
    const uint query = row / p.gqa, head = hk * p.gqa + row % p.gqa;

    float m_max = NEG_INF;
    for (uint s = 0; s < p.n_slots; s++)
        m_max = max(m_max, part[p.ml_first + (s * p.n_gr + gr) * 2]);
    float l = 0.0;
    for (uint s = 0; s < p.n_slots; s++) {
        const uint i = p.ml_first + (s * p.n_gr + gr) * 2;
        l += part[i] == NEG_INF ? 0.0 : exp(part[i] - m_max) * part[i + 1];
    }
    const float inv = l > 0.0 ? 1.0 / l : 0.0;

    const uint base = p.d_first + head * p.d_s1 + query * p.d_s2;
    for (uint d = gl_LocalInvocationIndex; d < HEAD_DIM; d += gl_WorkGroupSize.x) {
        float x = 0.0;
        for (uint s = 0; s < p.n_slots; s++) {
            const float m = part[p.ml_first + (s * p.n_gr + gr) * 2];
            if (m != NEG_INF)
                x += exp(m - m_max) * part[p.o_first + (s * p.n_gr + gr) * HEAD_DIM + d];
        }
        dst[base + d] = x * inv;
    }
}
