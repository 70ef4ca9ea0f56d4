#include "ref/at-ref-matmul.h"
#include "ref/at-ref-quant.h"

void
at_ref_mul_mat_batched (const float *w, const gint64 w_ne[4], const float *x,
                        const gint64 x_ne[4], float *dst)
{
  const gint64 k = w_ne[0], m = w_ne[1], n = x_ne[1];
  const gint64 r2 = x_ne[2] / w_ne[2], r3 = x_ne[3] / w_ne[3];

  for (gint64 i3 = 0; i3 < x_ne[3]; i3++)
    for (gint64 i2 = 0; i2 < x_ne[2]; i2++)
      {
        const float *w_mat = w + ((i3 / r3) * w_ne[2] + i2 / r2) * m * k;
        const float *x_mat = x + (i3 * x_ne[2] + i2) * n * k;
        float *d_mat = dst + (i3 * x_ne[2] + i2) * n * m;

        at_ref_mul_mat (w_mat, x_mat, d_mat, k, m, n);
      }
}

void
at_ref_conv2d (const float *weight, const gint64 weight_ne[4], const float *bias,
               const float *x, const gint64 x_ne[4], float *dst, int stride, int padding)
{
  at_ref_conv2d_padded (weight, weight_ne, bias, x, x_ne, dst, stride, padding, padding);
}

void
at_ref_conv2d_padded (const float *weight, const gint64 weight_ne[4], const float *bias,
                      const float *x, const gint64 x_ne[4], float *dst, int stride,
                      int padding, int pad_end)
{
  const gint64 kw = weight_ne[0], kh = weight_ne[1], c_in = weight_ne[2], c_out = weight_ne[3];
  const gint64 w = x_ne[0], h = x_ne[1], n = x_ne[3];
  const gint64 w_out = (w + padding + pad_end - kw) / stride + 1;
  const gint64 h_out = (h + padding + pad_end - kh) / stride + 1;

  for (gint64 b = 0; b < n; b++)
    for (gint64 co = 0; co < c_out; co++)
      for (gint64 oy = 0; oy < h_out; oy++)
        for (gint64 ox = 0; ox < w_out; ox++)
          {
            double sum = bias ? bias[co] : 0;
            for (gint64 ci = 0; ci < c_in; ci++)
              for (gint64 ky = 0; ky < kh; ky++)
                for (gint64 kx = 0; kx < kw; kx++)
                  {
                    gint64 ix = ox * stride + kx - padding, iy = oy * stride + ky - padding;
                    if (ix < 0 || ix >= w || iy < 0 || iy >= h)
                      continue;
                    sum += (double) weight[((co * c_in + ci) * kh + ky) * kw + kx] *
                           x[((b * c_in + ci) * h + iy) * w + ix];
                  }
            dst[((b * c_out + co) * h_out + oy) * w_out + ox] = (float) sum;
          }
}
