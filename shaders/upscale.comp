#version 450
// Nearest-neighbour resampling of dimensions 0 and 1 to dst's size with PyTorch's rule:
// dst element (i0, i1, i2, i3) = x (i0 * x_ne0 / ne0, i1 * x_ne1 / ne1, i2, i3) rounded
// down (an integer factor f gives i0 / f). F32 moved as bits; any strides.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer X { uint x[]; };
layout(binding = 1) writeonly buffer D { uint d[]; };

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2, ne3; // shape of dst
    uint x_ne0, x_ne1;
    uint x_first, d_first;
    uint x_s0, x_s1, x_s2, x_s3; // element strides
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

    d[p.d_first + i0 * p.d_s0 + i1 * p.d_s1 + i2 * p.d_s2 + i3 * p.d_s3] =
        x[p.x_first + (i0 * p.x_ne0 / p.ne0) * p.x_s0 + (i1 * p.x_ne1 / p.ne1) * p.x_s1 + i2 * p.x_s2 +
          i3 * p.x_s3];
}
