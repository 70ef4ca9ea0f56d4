// Workgroup-wide reductions for shaders that give one workgroup to each row.
//
// Define USE_SUBGROUP_ARITHMETIC where the device has subgroup arithmetic (the host
// checks): each subgroup reduces in registers and only one value per subgroup goes
// through shared memory. Without it, a shared-memory tree (the workgroup size, a spec
// constant, must then be a power of two). Every invocation of the workgroup must call
// these in uniform control flow; consecutive calls may reuse the shared array because
// each begins with a barrier.

#if defined(USE_SUBGROUP_ARITHMETIC)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

// The workgroup size (local_size_x_id = 0) as a plain specialization constant: shared
// arrays sized by gl_WorkGroupSize.x are not resized by every driver.
layout(constant_id = 0) const uint AT_WORKGROUP_SIZE = 64;
shared float at_reduce_shared[AT_WORKGROUP_SIZE];

#if defined(USE_SUBGROUP_ARITHMETIC)
#define AT_DEFINE_REDUCE(NAME, SUBGROUP_OP, COMBINE)                                 \
    float NAME(float v)                                                              \
    {                                                                                \
        v = SUBGROUP_OP(v);                                                          \
        if (gl_NumSubgroups == 1)                                                    \
            return v;                                                                \
        barrier();                                                                   \
        if (subgroupElect())                                                         \
            at_reduce_shared[gl_SubgroupID] = v;                                     \
        barrier();                                                                   \
        v = at_reduce_shared[0];                                                     \
        for (uint i = 1; i < gl_NumSubgroups; i++)                                   \
            v = COMBINE(v, at_reduce_shared[i]);                                     \
        return v;                                                                    \
    }
#else
#define AT_DEFINE_REDUCE(NAME, SUBGROUP_OP, COMBINE)                                 \
    float NAME(float v)                                                              \
    {                                                                                \
        const uint lid = gl_LocalInvocationIndex;                                    \
        barrier();                                                                   \
        at_reduce_shared[lid] = v;                                                   \
        barrier();                                                                   \
        [[unroll]] for (uint s = AT_WORKGROUP_SIZE / 2; s > 0; s >>= 1) {           \
            if (lid < s)                                                             \
                at_reduce_shared[lid] = COMBINE(at_reduce_shared[lid],               \
                                                at_reduce_shared[lid + s]);          \
            barrier();                                                               \
        }                                                                            \
        return at_reduce_shared[0];                                                  \
    }
#endif

float at_add(float a, float b) { return a + b; }

AT_DEFINE_REDUCE(at_reduce_sum, subgroupAdd, at_add)
AT_DEFINE_REDUCE(at_reduce_max, subgroupMax, max)
