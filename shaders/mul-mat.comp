#version 450
// Matrix-matrix product with ggml's mul_mat semantics: dst[i, j] = sum_k w[k, i] x[k, j]
// for every batch (dimensions 2 and 3); w's batch dimensions broadcast over x's.
// w is of the weight type TYPE_<T> (dequantized while staging tiles, see dequant.glsl),
// x is F32 or, with X_F16, F16; dst is F32. Rows are contiguous along k, other strides
// are free. Workgroups: x over column tiles, y over row tiles, z over batches.
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "dequant.glsl"

#if defined(X_F16)
layout(binding = 1) readonly buffer X { float16_t x[]; };
layout(binding = 1) readonly buffer X4 { f16vec4 x4[]; };
#else
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
#endif
layout(binding = 2) writeonly buffer D { float d[]; };

// Every x row starts on a 4-element boundary, so whole vec4s can be loaded.
layout(constant_id = 6) const bool X_ALIGNED = false;

layout(push_constant) uniform Params {
    uint M, N, K;                      // m (rows of w and dst), n (columns), k
    uint ne2, r2, r3;                  // x's dimension 2; x / w batch ratios
    uint w_first, w_s1, w_s2, w_s3;    // bytes
    uint x_first, x_s1, x_s2, x_s3;    // elements
    uint d_first, d_s1, d_s2, d_s3;    // elements
} p;

uint w_base, x_base, d_base;

#include "gemm.glsl"

vec4 load_a(uint i, uint k)
{
    return load_weights(w_base + i * p.w_s1, k);
}

vec4 load_b(uint j, uint k)
{
    const uint e = x_base + j * p.x_s1 + k;
    if (k + 4 <= p.K) {
        if (X_ALIGNED)
            return vec4(x4[e / 4]);
        return vec4(x[e], x[e + 1], x[e + 2], x[e + 3]);
    }
    vec4 v = vec4(0.0);
    [[unroll]] for (uint c = 0; c < 4; c++)
        if (k + c < p.K)
            v[c] = float(x[e + c]);
    return v;
}

void store(uint i, uint j, float v)
{
    d[d_base + j * p.d_s1 + i] = v;
}

void main()
{
    const uint i2 = gl_WorkGroupID.z % p.ne2, i3 = gl_WorkGroupID.z / p.ne2;
    w_base = p.w_first + (i2 / p.r2) * p.w_s2 + (i3 / p.r3) * p.w_s3;
    x_base = p.x_first + i2 * p.x_s2 + i3 * p.x_s3;
    d_base = p.d_first + i2 * p.d_s2 + i3 * p.d_s3;
    gemm_tile();
}
