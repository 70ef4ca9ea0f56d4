/* at-ref.h: plain-C reference implementations of every GPU op, on contiguous host
 * arrays, accumulating in double. They define what the shaders must compute. */
#pragma once

#include <glib.h>

#include "at-types.h"

G_BEGIN_DECLS

/* --- Type conversion (at-ref-convert.c) --- */
guint16 at_fp32_to_fp16 (float f);
float at_fp16_to_fp32 (guint16 h);
guint16 at_fp32_to_bf16 (float f);
float at_bf16_to_fp32 (guint16 h);

/* Converts n floats to type (n a multiple of its block size) and back. The
 * quantizers are straightforward round-to-nearest ones; the block layouts are GGUF's,
 * bit for bit, so the dequantizers read real model files. Return FALSE for types
 * without a CPU codec. */
gboolean at_ref_quantize_row (AtType type, const float *src, void *dst, gint64 n);
gboolean at_ref_dequantize_row (AtType type, const void *src, float *dst, gint64 n);

/* --- Element-wise (at-ref-binary.c) --- */
/* Contiguous a [ne], b [b_ne] broadcast over a, dst [ne]. */
void at_ref_add (const float *a, const gint64 ne[4], const float *b, const gint64 b_ne[4],
                 float *dst);
void at_ref_mul (const float *a, const gint64 ne[4], const float *b, const gint64 b_ne[4],
                 float *dst);

/* --- Benchmark kernels (at-ref-bench.c) --- */
void at_ref_peak_flops (float *dst, gint64 n, guint32 n_iterations, float a, float b);

G_END_DECLS
