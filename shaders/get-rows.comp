#version 450
// get_rows: dst row i = row ids[i] of the weight table, dequantized. One invocation per
// output element. Tables larger than one binding are gathered in row ranges, one
// dispatch each: a dispatch writes the rows whose id lies in its range, and the one
// with zero_out_of_range writes zeros for ids outside the whole table.
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "dequant.glsl"

layout(local_size_x_id = 0) in;

layout(binding = 1) readonly buffer Ids { int ids[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

layout(push_constant) uniform Params {
    uint ne0, n;            // row length; number of ids
    uint table_first;       // byte offset of the range's first row in binding 0
    uint row_stride;        // bytes between table rows
    uint row_base;          // table row of the range's first row
    uint n_rows_bound;      // rows in this range
    uint n_rows_total;      // rows in the whole table
    uint ids_first, d_first, d_stride;
    uint zero_out_of_range;
} p;

void main()
{
    const uint i = at_global_index(gl_WorkGroupSize.x);
    if (i >= p.ne0 * p.n)
        return;
    const uint col = i % p.ne0, r = i / p.ne0;
    const int id = ids[p.ids_first + r];
    const uint dst = p.d_first + r * p.d_stride + col;

    if (id >= int(p.row_base) && id < int(p.row_base + p.n_rows_bound))
        d[dst] = dequant1(p.table_first + (uint(id) - p.row_base) * p.row_stride, col);
    else if (p.zero_out_of_range != 0 && (id < 0 || id >= int(p.n_rows_total)))
        d[dst] = 0.0;
}
