/* at-gpu.h: the Vulkan compute core — device, memory, pipelines, command batches.
 *
 * Internal to the engine: front ends use atelier-engine.h. One AtGpu owns one logical
 * device and one compute queue. Buffers are sub-allocated from large memory blocks.
 * Work is recorded into an AtBatch (one command buffer: a forward pass, a denoising
 * step), which inserts the barriers its dispatches need and is submitted once.
 */
#pragma once

#include <glib.h>
#include <vulkan/vulkan.h>

G_BEGIN_DECLS

#define AT_GPU_MAX_BINDINGS 8
#define AT_GPU_MAX_SPEC_CONSTANTS 8
#define AT_GPU_PUSH_CONSTANT_SIZE 128

typedef struct _AtGpu AtGpu;
typedef struct _AtGpuBuffer AtGpuBuffer;
typedef struct _AtBatch AtBatch;

typedef enum {
  AT_GPU_MEMORY_DEVICE,   /* device-local: weights, activations, caches */
  AT_GPU_MEMORY_UPLOAD,   /* host-visible, written by the CPU */
  AT_GPU_MEMORY_READBACK, /* host-visible and cached, read by the CPU */
  AT_GPU_MEMORY_N_KINDS
} AtGpuMemoryKind;

/* What the device offers that the shaders use; filled when the device is opened. */
typedef struct {
  char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
  VkPhysicalDeviceType type;
  guint32 vendor_id;
  guint32 device_id;
  char driver[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 2];
  guint32 api_version;
  guint64 device_local_bytes;       /* sum of device-local heaps */
  guint64 max_storage_buffer_range;
  guint64 max_allocation_size;
  guint32 min_storage_offset_alignment;
  guint32 max_workgroup_count[3];
  guint32 max_workgroup_invocations;
  guint32 max_shared_memory;
  guint32 subgroup_size;
  gboolean subgroup_arithmetic;     /* subgroupAdd etc. in compute shaders */
  gboolean subgroup_size_control;
  gboolean storage_16bit;           /* required */
  gboolean storage_8bit;            /* required */
  gboolean push_descriptor;         /* required */
  gboolean shader_float16;          /* f16 arithmetic */
  gboolean shader_int8;             /* i8 arithmetic */
  gboolean integer_dot_product;
  gboolean cooperative_matrix;
  gboolean timestamps;
  float timestamp_period_ns;
  gboolean usable;                  /* has every required feature */
  char *unusable_reason;            /* why not, when !usable */
} AtGpuDeviceInfo;

void at_gpu_device_info_free (AtGpuDeviceInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtGpuDeviceInfo, at_gpu_device_info_free)

/* Every Vulkan device the loader reports, in enumeration order (the index that
 * ATELIER_DEVICE takes). *chosen_index is the one at_gpu_new() would open. */
GPtrArray *at_gpu_list_devices (int *chosen_index, GError **error);

/* Opens the best device: discrete > integrated > virtual > CPU, unless selector (or,
 * when selector is NULL, $ATELIER_DEVICE) names one by index or name substring.
 * $ATELIER_VALIDATION=1 enables the Khronos validation layer; its errors are reported
 * with g_critical(). $ATELIER_PROFILE=1 prints per-dispatch GPU times of each batch. */
AtGpu *at_gpu_new (const char *selector, GError **error);
void at_gpu_free (AtGpu *gpu);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtGpu, at_gpu_free)

const AtGpuDeviceInfo *at_gpu_get_info (AtGpu *gpu);
/* Bytes currently allocated from the device (all blocks), and the peak. */
guint64 at_gpu_get_allocated_bytes (AtGpu *gpu, guint64 *peak);
/* Validation messages of error severity seen so far (0 unless validation is on). */
guint at_gpu_get_validation_errors (AtGpu *gpu);

/* --- Buffers ---------------------------------------------------------------- */

AtGpuBuffer *at_gpu_buffer_new (AtGpu *gpu, gsize size, AtGpuMemoryKind kind,
                                GError **error);
void at_gpu_buffer_free (AtGpuBuffer *buffer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtGpuBuffer, at_gpu_buffer_free)

gsize at_gpu_buffer_get_size (const AtGpuBuffer *buffer);
VkBuffer at_gpu_buffer_get_handle (const AtGpuBuffer *buffer);
/* Host pointer of an UPLOAD or READBACK buffer (persistently mapped), else NULL. */
void *at_gpu_buffer_get_mapped (const AtGpuBuffer *buffer);

/* Copies between host memory and a buffer through a staging buffer, in chunks;
 * synchronous. */
gboolean at_gpu_upload (AtGpu *gpu, AtGpuBuffer *dst, gsize dst_offset,
                        const void *src, gsize size, GError **error);
gboolean at_gpu_download (AtGpu *gpu, AtGpuBuffer *src, gsize src_offset,
                          void *dst, gsize size, GError **error);
/* Fills size bytes at offset (a multiple of 4) with a repeated 32-bit word. */
gboolean at_gpu_fill (AtGpu *gpu, AtGpuBuffer *dst, gsize offset, gsize size,
                      guint32 word, GError **error);

/* --- Batches ---------------------------------------------------------------- */

/* One storage-buffer binding of a dispatch. range must not exceed
 * max_storage_buffer_range and offset must be a multiple of
 * min_storage_offset_alignment. */
typedef struct {
  const AtGpuBuffer *buffer;
  gsize offset;
  gsize range;
  gboolean write;  /* the shader writes it (used to place barriers) */
} AtBinding;

AtBatch *at_batch_new (AtGpu *gpu);
void at_batch_free (AtBatch *batch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtBatch, at_batch_free)

AtGpu *at_batch_get_gpu (AtBatch *batch);

/* Records a dispatch of the embedded shader variant `shader` with the given
 * specialization constants (ids 0..n_spec-1), bindings (0..n_bindings-1) and push
 * constants. A barrier is inserted first if it reads or writes anything that an
 * earlier dispatch of the batch wrote, or writes what one read. Errors (unknown
 * shader, bad binding) are kept and returned by at_batch_run(). */
void at_batch_dispatch (AtBatch *batch, const char *shader,
                        const guint32 *spec, guint n_spec,
                        const AtBinding *bindings, guint n_bindings,
                        const void *push, guint push_size,
                        guint32 groups_x, guint32 groups_y, guint32 groups_z);

/* Like at_batch_dispatch() for a 1D launch of n_groups workgroups, folded into a 2D
 * grid when it exceeds the device's limit (shaders use at_workgroup_index()). */
void at_batch_dispatch_1d (AtBatch *batch, const char *shader,
                           const guint32 *spec, guint n_spec,
                           const AtBinding *bindings, guint n_bindings,
                           const void *push, guint push_size, guint64 n_groups);

/* Records a buffer-to-buffer copy, with the same barrier tracking. */
void at_batch_copy (AtBatch *batch, const AtGpuBuffer *src, gsize src_offset,
                    const AtGpuBuffer *dst, gsize dst_offset, gsize size);

/* Device memory for intermediate results inside the current recording (partial sums of
 * a split reduction, say): size bytes at *offset in the returned buffer, aligned for
 * binding. Valid until at_batch_run() returns; later recordings reuse the memory, so
 * steady-state forward passes allocate nothing. NULL (and the batch fails) when memory
 * runs out. */
AtGpuBuffer *at_batch_get_scratch (AtBatch *batch, gsize size, gsize *offset);

/* Records that the batch failed; the first error wins and at_batch_run() returns it. */
void at_batch_take_error (AtBatch *batch, GError *error);
gboolean at_batch_has_error (AtBatch *batch);

/* Per-dispatch GPU timestamps for this batch (also on with $ATELIER_PROFILE=1).
 * Timing puts a barrier between all dispatches so each time is the dispatch's own. */
void at_batch_set_timing (AtBatch *batch, gboolean timing);

/* Submits what was recorded, waits for it, and resets the batch for reuse. */
gboolean at_batch_run (AtBatch *batch, GError **error);

typedef struct {
  const char *label;  /* shader variant name */
  double ms;
} AtDispatchTime;

/* After at_batch_run() with timing on: the dispatches' times in recording order. */
const AtDispatchTime *at_batch_get_timings (AtBatch *batch, guint *n_timings);
/* After at_batch_run() with timing on: GPU time from the first to the last command. */
double at_batch_get_total_ms (AtBatch *batch);

G_END_DECLS
