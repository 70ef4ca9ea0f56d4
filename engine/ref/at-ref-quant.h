/* at-ref-quant.h: CPU codecs of the block-quantized GGUF types, and the references of
 * get_rows and mat-vec/mat-mul. */
#pragma once

#include <glib.h>

#include "at-types.h"

G_BEGIN_DECLS

/* --- Block codecs (at-ref-quant.c) ---
 * One function pair per block-quantized type, reached through at_ref_quantize_row()
 * and at_ref_dequantize_row(). Dequantization reproduces ggml's dequantize_row_*
 * bit for bit (same block layouts, same float operations in the same order). The
 * quantizers are simple round-to-nearest ones with a per-(sub-)block scale search;
 * they make valid blocks, not ggml's exact bytes. Return FALSE for other types. */
gboolean at_ref_quant_quantize_row (AtType type, const float *src, void *dst, gint64 n);
gboolean at_ref_quant_dequantize_row (AtType type, const void *src, float *dst, gint64 n);

/* --- get_rows (at-ref-quant.c) ---
 * table holds n_rows rows of ne0 elements of type (row_bytes apart); dst [n][ne0] are
 * the rows ids[i] dequantized. An id outside [0, n_rows) gives a row of zeros. */
void at_ref_get_rows (AtType type, const void *table, gsize row_bytes, gint64 ne0, gint64 n_rows,
                      const gint32 *ids, gint64 n, float *dst);

/* --- mat-mul (at-ref-mul-mat.c) ---
 * ggml mul_mat on dequantized weights, accumulating in double: w [m][k] row-major,
 * x [n][k], dst [n][m] with dst[j][i] = sum_l w[i][l] * x[j][l]. */
void at_ref_mul_mat (const float *w, const float *x, float *dst, gint64 k, gint64 m, gint64 n);

G_END_DECLS
