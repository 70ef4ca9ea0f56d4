#version 450
// Row normalizations, one workgroup per row (a "row" is GROUP_NORM's group):
//   RMS_NORM:   y = x / sqrt(mean(x^2) + eps) * w
//   LAYER_NORM: y = (x - mean) / sqrt(var + eps) * w + b
//   GROUP_NORM: LAYER_NORM over a group of channels of one sample, w and b per
//               channel, optionally followed by SiLU (Stable Diffusion's resblocks).
// The variance is taken around the mean in a second pass (no E[x^2] - E[x]^2
// cancellation). w and b are optional (push flags; the host binds a stand-in buffer).
#include "common.glsl"
#include "reduce.glsl"
#if defined(GROUP_NORM)
#include "activation.glsl"
#endif

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer W { float w[]; };
layout(binding = 2) readonly buffer B { float b[]; };
layout(binding = 3) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2, ne3;   // a row has ne0 elements; rows span dims 1..3
    uint x_first, w_first, b_first, d_first;
    uint x_s0, x_s1, x_s2, x_s3;  // element strides
    uint d_s0, d_s1, d_s2, d_s3;
    uint has_weight, has_bias;
    uint channel_size;  // GROUP_NORM: elements per channel (w * h)
    uint group_channels;  // GROUP_NORM: channels per group
    uint fuse_silu;
    float eps;
} p;

void main()
{
    const uint row = at_workgroup_index();
    if (row >= p.ne1 * p.ne2 * p.ne3)
        return;
    const uint i1 = row % p.ne1;
    const uint i2 = (row / p.ne1) % p.ne2;
    const uint i3 = row / (p.ne1 * p.ne2);
    const uint xb = p.x_first + i1 * p.x_s1 + i2 * p.x_s2 + i3 * p.x_s3;
    const uint db = p.d_first + i1 * p.d_s1 + i2 * p.d_s2 + i3 * p.d_s3;
    const uint lid = gl_LocalInvocationIndex;
    const uint wg = gl_WorkGroupSize.x;

#if defined(RMS_NORM)
    const float mean = 0.0;
    float sum_sq = 0.0;
    for (uint i = lid; i < p.ne0; i += wg) {
        const float v = x[xb + i * p.x_s0];
        sum_sq += v * v;
    }
#else
    float sum = 0.0;
    for (uint i = lid; i < p.ne0; i += wg)
        sum += x[xb + i * p.x_s0];
    const float mean = at_reduce_sum(sum) / float(p.ne0);
    float sum_sq = 0.0;
    for (uint i = lid; i < p.ne0; i += wg) {
        const float v = x[xb + i * p.x_s0] - mean;
        sum_sq += v * v;
    }
#endif
    const float inv_std = 1.0 / sqrt(at_reduce_sum(sum_sq) / float(p.ne0) + p.eps);

#if defined(GROUP_NORM)
    // The channel of element i is the group's first channel (i1 is the group) plus
    // i / channel_size.
    const uint c0 = i1 * p.group_channels;
#endif
    for (uint i = lid; i < p.ne0; i += wg) {
        float v = (x[xb + i * p.x_s0] - mean) * inv_std;
#if defined(GROUP_NORM)
        const uint wi = c0 + i / p.channel_size;
#else
        const uint wi = i;
#endif
        if (p.has_weight != 0)
            v *= w[p.w_first + wi];
        if (p.has_bias != 0)
            v += b[p.b_first + wi];
#if defined(GROUP_NORM)
        if (p.fuse_silu != 0)
            v = at_silu(v);
#endif
        d[db + i * p.d_s0] = v;
    }
}
