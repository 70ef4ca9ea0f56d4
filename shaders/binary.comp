#version 450
// Element-wise binary ops with broadcasting: dst = a OP b, where each dimension of b
// is either a's or 1 (b's index wraps with modulo). F32 in, F32 out; any strides.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2, ne3;         // shape of a and dst
    uint b_ne0, b_ne1, b_ne2, b_ne3; // shape of b
    uint a_first, b_first, d_first;
    uint a_s0, a_s1, a_s2, a_s3;     // element strides
    uint b_s0, b_s1, b_s2, b_s3;
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

    const float x = a[p.a_first + i0 * p.a_s0 + i1 * p.a_s1 + i2 * p.a_s2 + i3 * p.a_s3];
    const float y = b[p.b_first + (i0 % p.b_ne0) * p.b_s0 + (i1 % p.b_ne1) * p.b_s1 +
                      (i2 % p.b_ne2) * p.b_s2 + (i3 % p.b_ne3) * p.b_s3];
#if defined(OP_ADD)
    const float r = x + y;
#elif defined(OP_MUL)
    const float r = x * y;
#endif
    d[p.d_first + i0 * p.d_s0 + i1 * p.d_s1 + i2 * p.d_s2 + i3 * p.d_s3] = r;
}
