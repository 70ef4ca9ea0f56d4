#version 450
// Rotary position embedding with ggml's semantics (rope without YaRN extrapolation):
// pair k of a row rotates by theta_k = pos * freq_scale * freq_base^(-2k / n_dims).
// Pairs are (2k, 2k+1) normally and (k, k + n_dims/2) with NEOX; elements from n_dims
// on are copied. One invocation per pair; x is [head_dim, n_heads, n_tokens, 1] with
// any strides, positions I32 [n_tokens]; DST_F16 writes half floats (a KV cache).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer P { int pos[]; };
#if defined(DST_F16)
layout(binding = 2) writeonly buffer D { float16_t d[]; };
#define STORE(i, v) d[i] = float16_t(v)
#else
layout(binding = 2) writeonly buffer D { float d[]; };
#define STORE(i, v) d[i] = (v)
#endif

layout(push_constant) uniform Params {
    uint ne0, ne1, ne2;
    uint x_first, p_first, d_first;
    uint x_s0, x_s1, x_s2;  // element strides
    uint d_s0, d_s1, d_s2;
    uint n_dims;
    float log2_theta_scale;  // log2(freq_base^(-2 / n_dims)), from the host in double
    float freq_scale;
} p;

void main()
{
    const uint half_ne0 = p.ne0 / 2;
    const uint i = at_global_index(gl_WorkGroupSize.x);
    if (i >= half_ne0 * p.ne1 * p.ne2)
        return;
    const uint k = i % half_ne0;
    const uint i1 = (i / half_ne0) % p.ne1;
    const uint i2 = i / (half_ne0 * p.ne1);
    const uint xb = p.x_first + i1 * p.x_s1 + i2 * p.x_s2;
    const uint db = p.d_first + i1 * p.d_s1 + i2 * p.d_s2;

    if (2 * k >= p.n_dims) {
        STORE(db + 2 * k * p.d_s0, x[xb + 2 * k * p.x_s0]);
        STORE(db + (2 * k + 1) * p.d_s0, x[xb + (2 * k + 1) * p.x_s0]);
        return;
    }
#if defined(NEOX)
    const uint a = k, b = k + p.n_dims / 2;
#else
    const uint a = 2 * k, b = 2 * k + 1;
#endif
    // The frequency's exponent is one product (host-computed log2 in double) rather
    // than a pow() or repeated multiplications; the angle is still a float, so at large
    // positions its rounding (half an ulp of pos * freq) bounds the accuracy.
    const float theta = float(pos[p.p_first + i2]) * p.freq_scale *
                        exp2(float(k) * p.log2_theta_scale);
    const float c = cos(theta), s = sin(theta);
    const float x0 = x[xb + a * p.x_s0], x1 = x[xb + b * p.x_s0];
    STORE(db + a * p.d_s0, x0 * c - x1 * s);
    STORE(db + b * p.d_s0, x0 * s + x1 * c);
}
