#version 450
// Gated linear units, F32 with any strides: dst = act(gate) * x, with act = SiLU
// (OP_SWIGLU, LLaMA's FFN) or exact erf GELU (OP_GEGLU, Stable Diffusion's
// GEGLU). When the gate is the second half of x's rows, the host passes it as a view.
#include "common.glsl"
#include "activation.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer G { float g[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2, ne3;
    uint x_first, g_first, d_first;
    uint x_s0, x_s1, x_s2, x_s3;  // element strides
    uint g_s0, g_s1, g_s2, g_s3;
    uint d_s0, d_s1, d_s2, d_s3;
} p;

void main()
{
    const uint i = at_global_index(gl_WorkGroupSize.x);
    if (i >= p.ne0 * p.ne1 * p.ne2 * p.ne3)
        return;
    const uint i0 = i % p.ne0;
    const uint i1 = (i / p.ne0) % p.ne1;
    const uint i2 = (i / (p.ne0 * p.ne1)) % p.ne2;
    const uint i3 = i / (p.ne0 * p.ne1 * p.ne2);

    const float v = x[p.x_first + i0 * p.x_s0 + i1 * p.x_s1 + i2 * p.x_s2 + i3 * p.x_s3];
    const float gate = g[p.g_first + i0 * p.g_s0 + i1 * p.g_s1 + i2 * p.g_s2 + i3 * p.g_s3];
#if defined(OP_SWIGLU)
    const float r = at_silu(gate) * v;
#elif defined(OP_GEGLU)
    const float r = at_gelu_erf(gate) * v;
#endif
    d[p.d_first + i0 * p.d_s0 + i1 * p.d_s1 + i2 * p.d_s2 + i3 * p.d_s3] = r;
}
