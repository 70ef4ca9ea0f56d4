#version 450
// Sinusoidal timestep embedding: one invocation per dst element (j, i); with
// freq = 2^(j * neg_log2_period_over_half) = exp(-ln(max_period) * j / half),
// dst[j] = cos(t_i * freq) and dst[half + j] = sin(t_i * freq); past 2 * half (odd dim) 0.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer T { float t[]; };
layout(binding = 1) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint dim, half_dim, n;
    uint t_first, t_s0;
    uint d_first, d_s0, d_s1;
    float neg_log2_period_over_half;
} p;

// x - k * 2pi with k = round(x / 2pi). Vulkan defines sin and cos only on [-pi, pi], and
// angles reach ~1000 rad (SD's timesteps go to 999). 2pi is split Cody-Waite style into
// a part with 8 significant bits, one with 12 and the rest, so k * part is exact for
// |k| < 4096 and only the last subtraction rounds.
float reduce_angle(float x)
{
    const float k = round(x * 0.15915494309189535);
    return ((x - k * 6.28125) - k * 0.0019354820251464844) - k * -1.7484555314695172e-7;
}

void main()
{
    const uint idx = at_global_index(gl_WorkGroupSize.x);
    if (idx >= p.dim * p.n)
        return;
    const uint j = idx % p.dim;
    const uint i = idx / p.dim;

    float value = 0.0;
    if (j < 2u * p.half_dim) {
        const uint k = j < p.half_dim ? j : j - p.half_dim;
        const float freq = exp2(float(k) * p.neg_log2_period_over_half);
        const float angle = reduce_angle(t[p.t_first + i * p.t_s0] * freq);
        value = j < p.half_dim ? cos(angle) : sin(angle);
    }
    d[p.d_first + j * p.d_s0 + i * p.d_s1] = value;
}
