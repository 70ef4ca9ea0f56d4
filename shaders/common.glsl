// Shared by every Atelier compute shader.
//
// Launch shape: the host folds a large 1D workgroup count into a 2D grid (devices may
// limit maxComputeWorkGroupCount[0] to 65535), so shaders take their linear workgroup
// index from at_workgroup_index() and return when it is past the end.
//
// Tensor bindings may begin before the tensor itself (binding offsets must be aligned
// to minStorageBufferOffsetAlignment); the push constants carry the element offset of
// the tensor inside its binding.
//
// 8- and 16-bit storage are required (every desktop driver has them): loads of
// uint8_t/uint16_t/float16_t convert to 32-bit at once. Shaders that do arithmetic in
// 8/16 bits must opt in and have a 32-bit fallback (the host checks the features).

#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

uint at_workgroup_index()
{
    return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
}

uint at_global_index(uint local_size)
{
    return at_workgroup_index() * local_size + gl_LocalInvocationIndex;
}
