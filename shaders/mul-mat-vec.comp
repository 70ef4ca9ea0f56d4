#version 450
// mul_mat_vec: dst[j][row] = dot(w row, x column j) for NUM_COLS columns of x and
// NUM_ROWS rows of w per workgroup. The threads of a workgroup stride over k in chunks
// (a whole 32-element block, or sub-block of a K-quant super-block; four elements for
// plain types), so each weight byte is read once and x once per workgroup; then the
// partial sums are reduced with subgroupAdd (USE_SUBGROUP) or a shared-memory tree.
// Weights larger than one binding come in row ranges, one dispatch each (row_base).
#if defined(USE_SUBGROUP)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "dequant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG_SIZE = 64; // a power of two
layout(constant_id = 1) const uint NUM_COLS = 1;
layout(constant_id = 2) const uint NUM_ROWS = 1;

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint k, m;              // row length; rows in this dispatch
    uint w_first, w_stride; // bytes: first row in binding 0, between rows
    uint x_first, x_stride; // floats
    uint d_first, d_stride; // floats
    uint row_base;          // output row of this dispatch's first row
} p;

#if QK == 1
#define CHUNK 4
#else
#define CHUNK 32
#endif

shared float partial[NUM_ROWS * NUM_COLS * WG_SIZE];

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint row0 = at_workgroup_index() * NUM_ROWS;
    if (row0 >= p.m)
        return;

    // Rows past the end repeat the last one, so that every thread runs the same loop;
    // their sums are not written.
    uint rows[NUM_ROWS];
    float acc[NUM_ROWS][NUM_COLS];
    [[unroll]] for (uint r = 0; r < NUM_ROWS; r++) {
        rows[r] = p.w_first + min(row0 + r, p.m - 1) * p.w_stride;
        [[unroll]] for (uint j = 0; j < NUM_COLS; j++)
            acc[r][j] = 0.0;
    }

    const uint n_chunks = p.k / CHUNK;
    for (uint c = tid; c < n_chunks; c += WG_SIZE) {
        // Left rolled: unrolling it multiplies the code by eight for little gain.
        for (uint i = 0; i < CHUNK; i += 4) {
            const uint kk = c * CHUNK + i;
            vec4 xv[NUM_COLS];
            [[unroll]] for (uint j = 0; j < NUM_COLS; j++) {
                const uint xi = p.x_first + j * p.x_stride + kk;
                xv[j] = vec4(x[xi], x[xi + 1], x[xi + 2], x[xi + 3]);
            }
            [[unroll]] for (uint r = 0; r < NUM_ROWS; r++) {
                const vec4 wv = dequant4(rows[r], kk);
                [[unroll]] for (uint j = 0; j < NUM_COLS; j++)
                    acc[r][j] += dot(wv, xv[j]);
            }
        }
    }
#if QK == 1
    for (uint kk = n_chunks * CHUNK + tid; kk < p.k; kk += WG_SIZE)
        [[unroll]] for (uint r = 0; r < NUM_ROWS; r++) {
            const float wv = dequant1(rows[r], kk);
            [[unroll]] for (uint j = 0; j < NUM_COLS; j++)
                acc[r][j] += wv * x[p.x_first + j * p.x_stride + kk];
        }
#endif

#if defined(USE_SUBGROUP)
    [[unroll]] for (uint r = 0; r < NUM_ROWS; r++)
        [[unroll]] for (uint j = 0; j < NUM_COLS; j++) {
            const float s = subgroupAdd(acc[r][j]);
            if (subgroupElect())
                partial[(r * NUM_COLS + j) * WG_SIZE + gl_SubgroupID] = s;
        }
    barrier();
    const uint n_partials = gl_NumSubgroups;
#else
    [[unroll]] for (uint r = 0; r < NUM_ROWS; r++)
        [[unroll]] for (uint j = 0; j < NUM_COLS; j++)
            partial[(r * NUM_COLS + j) * WG_SIZE + tid] = acc[r][j];
    barrier();
    [[unroll]] for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (tid < s)
            [[unroll]] for (uint rj = 0; rj < NUM_ROWS * NUM_COLS; rj++)
                partial[rj * WG_SIZE + tid] += partial[rj * WG_SIZE + tid + s];
        barrier();
    }
    const uint n_partials = 1;
#endif

    if (tid < NUM_ROWS * NUM_COLS) {
        const uint r = tid / NUM_COLS, j = tid % NUM_COLS;
        float sum = 0.0;
        for (uint g = 0; g < n_partials; g++)
            sum += partial[tid * WG_SIZE + g];
        if (row0 + r < p.m)
            d[p.d_first + j * p.d_stride + p.row_base + row0 + r] = sum;
    }
}
