/* at-ref-matmul.h: CPU references of the mat-mul and conv2d family (at-ref-matmul.c),
 * on contiguous host arrays, accumulating in double. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* w [k, m, b2, b3], x [k, n, B2, B3] with B2 % b2 == 0 and B3 % b3 == 0, dst
 * [m, n, B2, B3]: dst[i, j, i2, i3] = sum_k w[k, i, i2 / (B2 / b2), i3 / (B3 / b3)]
 * x[k, j, i2, i3]. */
void at_ref_mul_mat_batched (const float *w, const gint64 w_ne[4], const float *x,
                             const gint64 x_ne[4], float *dst);

/* weight [kw, kh, c_in, c_out], bias [c_out] or NULL, x [w, h, c_in, n], dst
 * [w_out, h_out, c_out, n] with w_out = (w + 2 padding - kw) / stride + 1; taps outside
 * x are zero. */
void at_ref_conv2d (const float *weight, const gint64 weight_ne[4], const float *bias,
                    const float *x, const gint64 x_ne[4], float *dst, int stride,
                    int padding);
/* The same with padding zeros before and pad_end after each inner dimension: w_out =
 * (w + padding + pad_end - kw) / stride + 1. */
void at_ref_conv2d_padded (const float *weight, const gint64 weight_ne[4], const float *bias,
                           const float *x, const gint64 x_ne[4], float *dst, int stride,
                           int padding, int pad_end);

G_END_DECLS
