#version 450
// Concatenation along dimension p.dim: dst element at index (i0, i1, i2, i3) comes from
// a while i_dim < a's extent there, else from c at i_dim - that extent. A pure move of
// bits: BITS_32 serves F32, BITS_16 serves F16 and BF16. Any strides.
#include "common.glsl"

layout(local_size_x_id = 0) in;

#if defined(BITS_32)
#define T uint
#elif defined(BITS_16)
#define T uint16_t
#endif

layout(binding = 0) readonly buffer A { T a[]; };
layout(binding = 1) readonly buffer C { T c[]; };
layout(binding = 2) writeonly buffer D { T d[]; };

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2, ne3; // shape of dst
    uint dim, a_n;           // the joined dimension, and a's extent along it
    uint a_first, c_first, d_first;
    uint a_s0, a_s1, a_s2, a_s3; // element strides
    uint c_s0, c_s1, c_s2, c_s3;
    uint d_s0, d_s1, d_s2, d_s3;
} p;

void main()
{
    const uint i = at_global_index(gl_WorkGroupSize.x);
    if (i >= p.ne0 * p.ne1 * p.ne2 * p.ne3)
        return;
    uint idx[4];
    idx[0] = i % p.ne0;
    idx[1] = (i / p.ne0) % p.ne1;
    idx[2] = (i / (p.ne0 * p.ne1)) % p.ne2;
    idx[3] = i / (p.ne0 * p.ne1 * p.ne2);

    const uint o = p.d_first + idx[0] * p.d_s0 + idx[1] * p.d_s1 + idx[2] * p.d_s2 +
                   idx[3] * p.d_s3;
    if (idx[p.dim] < p.a_n) {
        d[o] = a[p.a_first + idx[0] * p.a_s0 + idx[1] * p.a_s1 + idx[2] * p.a_s2 +
                 idx[3] * p.a_s3];
    } else {
        idx[p.dim] -= p.a_n;
        d[o] = c[p.c_first + idx[0] * p.c_s0 + idx[1] * p.c_s1 + idx[2] * p.c_s2 +
                 idx[3] * p.c_s3];
    }
}
