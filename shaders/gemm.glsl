// Tiled GEMM core shared by mul-mat.comp and conv2d.comp: D[i, j] = sum_k A[i, k] B[j, k]
// for i < p.M, j < p.N, k < p.K. Both operands are read along k, as weights and
// activations are stored, so A and B play symmetric roles.
//
// Each workgroup computes a BM x BN tile of D: per BK slice of k it stages A and B in
// shared memory (k-major, so the inner loop reads consecutive rows), then each thread
// accumulates a TM x TN register tile whose rows and columns are strided by BM/TM and
// BN/TN (neighbouring threads touch neighbouring shared words and write neighbouring
// elements of D along i). The workgroup size (spec constant 0) must be
// (BM / TM) * (BN / TN); BK must be a multiple of 4.
//
// Before including, the shader includes dequant.glsl and declares its push constants as
// `p` (with M, N, K); afterwards it defines:
//   vec4 load_a(uint i, uint k)           A[i, k..k+3] for i < M, zero for k >= K
//   vec4 load_b(uint j, uint k)           B[j, k..k+3] for j < N, likewise
//   void store(uint i, uint j, float v)   D[i, j] = v
// and calls gemm_tile() from main(); workgroup (x, y) computes the tile at
// (j, i) = (x * BN, y * BM), z is left to the shader (batches).

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;

// The padding keeps the transposed stores of one 4-wide k group off a single bank.
const uint SA = BM + 2;
const uint SB = BN + 2;
shared float tile_a[BK * SA];
shared float tile_b[BK * SB];

vec4 load_a(uint i, uint k);
vec4 load_b(uint j, uint k);
void store(uint i, uint j, float v);

// Elements k..k+3 of the weight row at byte `row`, zero past K: a tile's last k group
// may stick out when K is not a multiple of 4 (plain types only; blocks divide K).
vec4 load_weights(uint row, uint k)
{
    if (k + 4 <= p.K)
        return dequant4(row, k);
    vec4 v = vec4(0.0);
    [[unroll]] for (uint c = 0; c < 4; c++)
        if (k + c < p.K)
            v[c] = dequant1(row, k + c);
    return v;
}

void gemm_stage(uint i0, uint j0, uint k0)
{
    const uint groups = BK / 4;
    for (uint u = gl_LocalInvocationIndex; u < BM * groups; u += gl_WorkGroupSize.x) {
        const uint r = u / groups, k = (u % groups) * 4;
        const vec4 v = i0 + r < p.M ? load_a(i0 + r, k0 + k) : vec4(0.0);
        tile_a[k * SA + r] = v.x;
        tile_a[(k + 1) * SA + r] = v.y;
        tile_a[(k + 2) * SA + r] = v.z;
        tile_a[(k + 3) * SA + r] = v.w;
    }
    for (uint u = gl_LocalInvocationIndex; u < BN * groups; u += gl_WorkGroupSize.x) {
        const uint r = u / groups, k = (u % groups) * 4;
        const vec4 v = j0 + r < p.N ? load_b(j0 + r, k0 + k) : vec4(0.0);
        tile_b[k * SB + r] = v.x;
        tile_b[(k + 1) * SB + r] = v.y;
        tile_b[(k + 2) * SB + r] = v.z;
        tile_b[(k + 3) * SB + r] = v.w;
    }
}

void gemm_tile()
{
    const uint i0 = gl_WorkGroupID.y * BM, j0 = gl_WorkGroupID.x * BN;
    const uint ti = gl_LocalInvocationIndex % (BM / TM);
    const uint tj = gl_LocalInvocationIndex / (BM / TM);
    float acc[TM * TN];
    float a[TM], b[TN];

    [[unroll]] for (uint t = 0; t < TM * TN; t++)
        acc[t] = 0.0;

    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        gemm_stage(i0, j0, k0);
        barrier();
        [[unroll]] for (uint k = 0; k < BK; k++) {
            [[unroll]] for (uint t = 0; t < TM; t++)
                a[t] = tile_a[k * SA + ti + t * (BM / TM)];
            [[unroll]] for (uint t = 0; t < TN; t++)
                b[t] = tile_b[k * SB + tj + t * (BN / TN)];
            [[unroll]] for (uint tm = 0; tm < TM; tm++)
                [[unroll]] for (uint tn = 0; tn < TN; tn++)
                    acc[tm * TN + tn] = fma(a[tm], b[tn], acc[tm * TN + tn]);
        }
        barrier();
    }

    [[unroll]] for (uint tn = 0; tn < TN; tn++) {
        const uint j = j0 + tj + tn * (BN / TN);
        [[unroll]] for (uint tm = 0; tm < TM; tm++) {
            const uint i = i0 + ti + tm * (BM / TM);
            if (i < p.M && j < p.N)
                store(i, j, acc[tm * TN + tn]);
        }
    }
}
