#version 450
// 2-D convolution as an implicit GEMM (no im2col buffer): the rows of A are the output
// pixels (ox, oy, b) with their input patches gathered on the fly, k = (kx, ky, ci) in
// the weight's own order, and the columns of B are the weight's output channels:
//   dst[ox, oy, co, b] = bias[co] + sum_(kx, ky, ci) w[kx, ky, ci, co] x[ix, iy, ci, b]
// with ix = ox * stride + kx - pad (likewise iy); taps outside x read zero.
// Weights F32 or F16 (TYPE_<T>, contiguous), x and dst F32 with free strides along
// dimensions 1..3. Pixels are the GEMM's rows so that stores run along dst's rows.
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "dequant.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };

// Without a bias the host binds another buffer at binding 3; it is never read.
layout(constant_id = 6) const bool HAS_BIAS = false;

layout(push_constant) uniform Params {
    uint M, N, K;                   // output pixels, c_out, kw * kh * c_in
    uint kw, kh, stride, pad;
    uint w_in, h_in, w_out, h_out;
    uint w_first, w_s3;             // bytes
    uint x_first, x_s1, x_s2, x_s3; // elements
    uint d_first, d_s1, d_s2, d_s3; // elements
    uint bias_first;
} p;

#include "gemm.glsl"

vec4 load_a(uint i, uint k)
{
    const uint ox = i % p.w_out, oy = (i / p.w_out) % p.h_out, b = i / (p.w_out * p.h_out);
    const int x0 = int(ox * p.stride) - int(p.pad), y0 = int(oy * p.stride) - int(p.pad);
    const uint base = p.x_first + b * p.x_s3;
    // Divide once for the group, then step through the kernel taps.
    uint kx = k % p.kw, ky = (k / p.kw) % p.kh, ci = k / (p.kw * p.kh);
    vec4 v = vec4(0.0);
    [[unroll]] for (uint c = 0; c < 4; c++) {
        const int ix = x0 + int(kx), iy = y0 + int(ky);
        if (k + c < p.K && ix >= 0 && ix < int(p.w_in) && iy >= 0 && iy < int(p.h_in))
            v[c] = x[base + uint(ix) + uint(iy) * p.x_s1 + ci * p.x_s2];
        if (++kx == p.kw) {
            kx = 0;
            if (++ky == p.kh) {
                ky = 0;
                ci++;
            }
        }
    }
    return v;
}

vec4 load_b(uint j, uint k)
{
    return load_weights(p.w_first + j * p.w_s3, k);
}

void store(uint i, uint j, float v)
{
    const uint ox = i % p.w_out, oy = (i / p.w_out) % p.h_out, b = i / (p.w_out * p.h_out);
    if (HAS_BIAS)
        v += bias[p.bias_first + j];
    d[p.d_first + ox + oy * p.d_s1 + j * p.d_s2 + b * p.d_s3] = v;
}

void main()
{
    gemm_tile();
}
