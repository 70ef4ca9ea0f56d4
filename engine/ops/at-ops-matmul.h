/* at-ops-matmul.h: matrix-matrix products (prompt processing, attention batches) and
 * 2-D convolution (diffusion), both run by the tiled GEMM shaders. */
#pragma once

#include "ops/at-tensor.h"

G_BEGIN_DECLS

/* ggml's mul_mat: w [k, m, b2, b3] of a weight type, x [k, n, B2, B3] F32 or F16,
 * dst F32 [m, n, B2, B3] with dst[i, j] = sum_k w[k, i] x[k, j] per batch; w's batches
 * broadcast over x's (B2 % b2 == 0, B3 % b3 == 0). Rows must be contiguous along k;
 * other strides are free. A 2-D w larger than the device's storage buffer range is
 * bound in row ranges. */
void at_op_mul_mat (AtBatch *batch, const AtTensor *w, const AtTensor *x, const AtTensor *dst);

/* Whether at_op_mul_mat() takes weights of this type. */
gboolean at_op_mul_mat_supports (AtType weight_type);

/* Convolution in ggml's layout: weight [kw, kh, c_in, c_out] F32 or F16 (contiguous),
 * bias F32 [c_out] or NULL, x F32 [w, h, c_in, n], dst F32 [w_out, h_out, c_out, n] with
 * w_out = (w + 2 padding - kw) / stride + 1 (likewise h_out); zero padding. */
void at_op_conv2d (AtBatch *batch, const AtTensor *weight, const AtTensor *bias,
                   const AtTensor *x, const AtTensor *dst, int stride, int padding);

/* The same with pad_begin zeros before and pad_end after each of the two inner
 * dimensions: w_out = (w + pad_begin + pad_end - kw) / stride + 1. The LDM VAE's
 * downsample pads only the right and bottom (0, 1). */
void at_op_conv2d_padded (AtBatch *batch, const AtTensor *weight, const AtTensor *bias,
                          const AtTensor *x, const AtTensor *dst, int stride, int pad_begin,
                          int pad_end);

G_END_DECLS
