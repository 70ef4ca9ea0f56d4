// Tiled GEMM core shared by mul-mat.comp and conv2d.comp: D[i, j] = sum_k A[i, k] B[j, k]
// for i < p.M, j < p.N, k < p.K. Both operands are read along k, as weights and
// activations are stored, so A and B play symmetric roles.
//
// Each workgroup computes a BM x BN tile of D: per BK slice of k it stages A and B in
// shared memory, k-major, so that each thread reads the TM rows and TN columns of its
// register tile as vec4s and accumulates TM x TN products per k. The workgroup size
// (spec constant 0) must be (BM / TM) * (BN / TN) and divide BM * BK / 4 and
// BN * BK / 4; TM, TN and BK must be multiples of 4.
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

// k-major tiles of vec4s: a thread reads its TM (TN) consecutive rows in vector loads.
const uint SA = BM / 4;
const uint SB = BN / 4;
shared vec4 tile_a[BK * SA];
shared vec4 tile_b[BK * SB];

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

// Each thread stages LOADS_A 4-wide k groups of A and LOADS_B of B per slice (the host
// picks tiles that divide evenly). It reads the next slice from memory into registers
// while the current one is multiplied, so that memory latency overlaps arithmetic.
const uint LOADS_A = BM * (BK / 4) / gl_WorkGroupSize.x;
const uint LOADS_B = BN * (BK / 4) / gl_WorkGroupSize.x;
vec4 staged_a[LOADS_A];
vec4 staged_b[LOADS_B];

void gemm_fetch(uint i0, uint j0, uint k0)
{
    [[unroll]] for (uint l = 0; l < LOADS_A; l++) {
        const uint u = gl_LocalInvocationIndex + l * gl_WorkGroupSize.x;
        const uint r = u / (BK / 4), k = (u % (BK / 4)) * 4;
        staged_a[l] = i0 + r < p.M ? load_a(i0 + r, k0 + k) : vec4(0.0);
    }
    [[unroll]] for (uint l = 0; l < LOADS_B; l++) {
        const uint u = gl_LocalInvocationIndex + l * gl_WorkGroupSize.x;
        const uint r = u / (BK / 4), k = (u % (BK / 4)) * 4;
        staged_b[l] = j0 + r < p.N ? load_b(j0 + r, k0 + k) : vec4(0.0);
    }
}

void gemm_stage()
{
    [[unroll]] for (uint l = 0; l < LOADS_A; l++) {
        const uint u = gl_LocalInvocationIndex + l * gl_WorkGroupSize.x;
        const uint r = u / (BK / 4), k = (u % (BK / 4)) * 4;
        [[unroll]] for (uint c = 0; c < 4; c++)
            tile_a[(k + c) * SA + r / 4][r % 4] = staged_a[l][c];
    }
    [[unroll]] for (uint l = 0; l < LOADS_B; l++) {
        const uint u = gl_LocalInvocationIndex + l * gl_WorkGroupSize.x;
        const uint r = u / (BK / 4), k = (u % (BK / 4)) * 4;
        [[unroll]] for (uint c = 0; c < 4; c++)
            tile_b[(k + c) * SB + r / 4][r % 4] = staged_b[l][c];
    }
}

void gemm_tile()
{
    const uint i0 = gl_WorkGroupID.y * BM, j0 = gl_WorkGroupID.x * BN;
    const uint ti = gl_LocalInvocationIndex % (BM / TM);
    const uint tj = gl_LocalInvocationIndex / (BM / TM);
    float acc[TM * TN];
    vec4 a[TM / 4], b[TN / 4];

    [[unroll]] for (uint t = 0; t < TM * TN; t++)
        acc[t] = 0.0;

    gemm_fetch(i0, j0, 0);
    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        gemm_stage();
        barrier();
        if (k0 + BK < p.K)
            gemm_fetch(i0, j0, k0 + BK);
        [[unroll]] for (uint k = 0; k < BK; k++) {
            [[unroll]] for (uint t = 0; t < TM / 4; t++)
                a[t] = tile_a[k * SA + ti * (TM / 4) + t];
            [[unroll]] for (uint t = 0; t < TN / 4; t++)
                b[t] = tile_b[k * SB + tj * (TN / 4) + t];
            [[unroll]] for (uint tm = 0; tm < TM; tm++)
                [[unroll]] for (uint tn = 0; tn < TN; tn++)
                    acc[tm * TN + tn] =
                        fma(a[tm / 4][tm % 4], b[tn / 4][tn % 4], acc[tm * TN + tn]);
        }
        barrier();
    }

    [[unroll]] for (uint tn = 0; tn < TN; tn++) {
        const uint j = j0 + tj * TN + tn;
        [[unroll]] for (uint tm = 0; tm < TM; tm++) {
            const uint i = i0 + ti * TM + tm;
            if (i < p.M && j < p.N)
                store(i, j, acc[tm * TN + tn]);
        }
    }
}
