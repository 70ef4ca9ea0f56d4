/* at-ops-quant.h: ops that read weights of any type (plain or block-quantized):
 * row gathers and the decode-path matrix-vector product. */
#pragma once

#include "ops/at-tensor.h"

G_BEGIN_DECLS

/* Largest number of x columns at_op_mul_mat_vec() takes in one call. */
#define AT_MUL_MAT_VEC_MAX_COLS 8

/* dst [ne0, n] F32 = the rows ids[i] of table [ne0, n_rows] (any weight type),
 * dequantized; ids is I32 [n]. An id outside [0, n_rows) gives a row of zeros. */
void at_op_get_rows (AtBatch *batch, const AtTensor *table, const AtTensor *ids,
                     const AtTensor *dst);

/* ggml mul_mat for few columns: w [k, m] of any weight type, x [k, n] F32 or F16 with
 * 1 <= n <= AT_MUL_MAT_VEC_MAX_COLS, dst [m, n] F32 with
 * dst[i, j] = sum_k w[k, i] * x[k, j]. Weights larger than the device's largest
 * storage binding are read in row ranges, one dispatch each. */
void at_op_mul_mat_vec (AtBatch *batch, const AtTensor *w, const AtTensor *x, const AtTensor *dst);
/* Whether at_op_mul_mat_vec() takes weights of this type. */
gboolean at_op_mul_mat_vec_supports (AtType type);

/* How many rows of t (2D, rows nb[1] apart) one storage binding of at most max_range
 * bytes covers wherever the rows start, allowing for the alignment of binding offsets;
 * records an error on the batch and returns 0 when not even one row fits. */
/* Records an error unless w's rows are contiguous and aligned as the shaders read
 * them; returns whether they are. op names the op in the message. */
gboolean at_op_check_weight_rows (AtBatch *batch, const AtTensor *w, const char *op);

gint64 at_op_rows_per_binding (AtBatch *batch, const AtTensor *t, guint64 max_range);

/* The binding of rows [first_row, first_row + n_rows) of w; *first_byte receives the
 * byte offset of the first row inside it. */
AtBinding at_op_weight_rows_binding (AtBatch *batch, const AtTensor *w, gint64 first_row,
                                     gint64 n_rows, guint32 *first_byte);
/* The shader variant of op for weights of type: "mul_mat_vec_q4_k" + suffix. */
char *at_op_weight_shader_name (const char *op, AtType type, const char *suffix);

/* The ops above with the device limits they depend on given explicitly, so that tests
 * can exercise the split into row ranges and the variant without subgroup operations
 * on any device. max_range is capped at the device's max_storage_buffer_range. */
void at_op_get_rows_ext (AtBatch *batch, const AtTensor *table, const AtTensor *ids,
                         const AtTensor *dst, guint64 max_range);
void at_op_mul_mat_vec_ext (AtBatch *batch, const AtTensor *w, const AtTensor *x,
                            const AtTensor *dst, guint64 max_range, gboolean use_subgroups);

G_END_DECLS
