#version 450
// Row softmax, one workgroup per row: y = softmax(x * scale + mask), with optional
// causal masking (column j of row i1 is masked when j > i1 + causal_offset) done here
// without a mask tensor. Rows of any length: each invocation keeps a running maximum
// and a sum rescaled to it over its strided share of the row (one read pass), the
// workgroup combines them, and a second pass writes exp(v - max) / sum. A row whose
// every column is masked gives zeros.
#include "common.glsl"
#include "reduce.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer X { float x[]; };
#if defined(MASK_F16)
layout(binding = 1) readonly buffer M { float16_t mask[]; };
#else
layout(binding = 1) readonly buffer M { float mask[]; };
#endif
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2, ne3;
    uint x_first, m_first, d_first;
    uint x_s0, x_s1, x_s2, x_s3;  // element strides
    uint m_s0, m_s1, m_s2, m_s3;  // 0 where the mask broadcasts
    uint d_s0, d_s1, d_s2, d_s3;
    uint has_mask, causal;
    int causal_offset;
    float scale;
} p;

#define NEG_INF uintBitsToFloat(0xff800000u)

void main()
{
    const uint row = at_workgroup_index();
    if (row >= p.ne1 * p.ne2 * p.ne3)
        return;
    const uint i1 = row % p.ne1;
    const uint i2 = (row / p.ne1) % p.ne2;
    const uint i3 = row / (p.ne1 * p.ne2);
    const uint xb = p.x_first + i1 * p.x_s1 + i2 * p.x_s2 + i3 * p.x_s3;
    const uint mb = p.m_first + i1 * p.m_s1 + i2 * p.m_s2 + i3 * p.m_s3;
    const uint db = p.d_first + i1 * p.d_s1 + i2 * p.d_s2 + i3 * p.d_s3;
    const uint lid = gl_LocalInvocationIndex;
    const uint wg = gl_WorkGroupSize.x;
    // Columns from `end` on are causally masked; int arithmetic keeps negative offsets.
    const uint end = p.causal != 0 ? uint(clamp(int(i1) + p.causal_offset + 1, 0, int(p.ne0)))
                                   : p.ne0;

    float m = NEG_INF;
    float s = 0.0;
    for (uint i = lid; i < end; i += wg) {
        float v = x[xb + i * p.x_s0] * p.scale;
        if (p.has_mask != 0)
            v += float(mask[mb + i * p.m_s0]);
        if (v > m) {
            s = s * exp(m - v) + 1.0;
            m = v;
        } else if (v > NEG_INF) {
            s += exp(v - m);
        }
    }
    const float row_max = at_reduce_max(m);
    const float sum = at_reduce_sum(m > NEG_INF ? s * exp(m - row_max) : 0.0);
    const float inv_sum = 1.0 / sum;
    const uint live_end = row_max > NEG_INF ? end : 0;

    for (uint i = lid; i < p.ne0; i += wg) {
        float r = 0.0;
        if (i < live_end) {
            float v = x[xb + i * p.x_s0] * p.scale;
            if (p.has_mask != 0)
                v += float(mask[mb + i * p.m_s0]);
            r = exp(v - row_max) * inv_sum;
        }
        d[db + i * p.d_s0] = r;
    }
}
