/* at-tensor.h: a view of GPU memory as a typed tensor of up to four dimensions.
 *
 * Dimensions follow ggml/GGUF order: ne[0] is the innermost (contiguous) one. nb[] are
 * byte strides; for block-quantized types nb[0] is the block size in bytes and a row
 * (ne[0] elements) is ne[0] / block_size consecutive blocks.
 */
#pragma once

#include "at-types.h"
#include "gpu/at-gpu.h"

G_BEGIN_DECLS

typedef struct {
  AtGpuBuffer *buffer;
  gsize offset; /* bytes from the start of buffer */
  AtType type;
  gint64 ne[4];
  gsize nb[4];
} AtTensor;

/* A contiguous tensor at offset in buffer; unused dimensions are 1. */
AtTensor at_tensor_make (AtGpuBuffer *buffer, gsize offset, AtType type,
                         gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3);
/* Bytes a contiguous tensor of this type and shape takes. */
gsize at_tensor_contiguous_size (AtType type, gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3);

gint64 at_tensor_n_elements (const AtTensor *t);
gint64 at_tensor_n_rows (const AtTensor *t);
/* Bytes from the tensor's first to one past its last byte. */
gsize at_tensor_extent (const AtTensor *t);
gboolean at_tensor_is_contiguous (const AtTensor *t);
gboolean at_tensor_same_shape (const AtTensor *a, const AtTensor *b);
/* "f32 [4096, 32, 1, 1]" for messages; free with g_free. */
char *at_tensor_describe (const AtTensor *t);

/* The storage binding that covers t. Binding offsets must be aligned, so it may start
 * before the tensor: *first receives the tensor's position inside the binding in units
 * of `unit` bytes (the element size the shader indexes with). */
AtBinding at_tensor_binding (AtBatch *batch, const AtTensor *t, gboolean write,
                             guint unit, guint32 *first);

/* Records an "invalid argument" error on the batch unless cond holds; returns cond.
 * Ops use it to refuse shapes and types they cannot take. */
gboolean at_op_check (AtBatch *batch, gboolean cond, const char *format, ...)
  G_GNUC_PRINTF (3, 4);

G_END_DECLS
