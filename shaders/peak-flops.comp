#version 450
// Compute roof for the benchmark: each invocation runs 4 independent chains of
// n_iterations fused multiply-adds and writes their sum, so the work cannot be elided
// and the result can be checked against the CPU reference (at_ref_peak_flops).
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 0) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint n;
    uint n_iterations;
    float a;
    float b;
} p;

void main()
{
    const uint i = at_global_index(gl_WorkGroupSize.x);
    if (i >= p.n)
        return;
    float x0 = float(i & 255) * 1e-3, x1 = x0 + 0.25, x2 = x0 + 0.5, x3 = x0 + 0.75;
    for (uint it = 0; it < p.n_iterations; it++)
    {
        x0 = fma(x0, p.a, p.b);
        x1 = fma(x1, p.a, p.b);
        x2 = fma(x2, p.a, p.b);
        x3 = fma(x3, p.a, p.b);
    }
    d[i] = x0 + x1 + x2 + x3;
}
