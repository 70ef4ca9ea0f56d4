#version 450
// Element-wise unary ops, F32 with any strides; dst may alias x. One op per variant:
// OP_SCALE (y = x * scale + bias), OP_SILU, OP_GELU (tanh approximation), OP_GELU_ERF
// (exact), OP_GELU_QUICK (x * sigmoid(1.702 x)), OP_RELU, OP_TANH.
#include "common.glsl"
#include "activation.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2, ne3;
    uint x_first, d_first;
    uint x_s0, x_s1, x_s2, x_s3;  // element strides
    uint d_s0, d_s1, d_s2, d_s3;
    float scale, bias;
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
#if defined(OP_SCALE)
    const float r = v * p.scale + p.bias;
#elif defined(OP_SILU)
    const float r = at_silu(v);
#elif defined(OP_GELU)
    const float r = at_gelu_tanh(v);
#elif defined(OP_GELU_ERF)
    const float r = at_gelu_erf(v);
#elif defined(OP_GELU_QUICK)
    const float r = at_gelu_quick(v);
#elif defined(OP_RELU)
    const float r = max(v, 0.0);
#elif defined(OP_TANH)
    const float r = at_tanh(v);
#endif
    d[p.d_first + i0 * p.d_s0 + i1 * p.d_s1 + i2 * p.d_s2 + i3 * p.d_s3] = r;
}
