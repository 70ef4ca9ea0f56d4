#include "ref/at-ref-norm.h"

#include <math.h>

static double
silu (double x)
{
  return x / (1 + exp (-x));
}

/* 0.5 x (1 + erf(x / sqrt(2))); 1 + erf(z) = erfc(-z) keeps the negative tail, where
 * erf(z) rounds to -1 even in double. */
static double
gelu_erf (double x)
{
  return 0.5 * x * erfc (-x / sqrt (2));
}

void
at_ref_rms_norm (const float *x, gint64 ne0, gint64 n_rows, const float *weight,
                 float eps, float *dst)
{
  for (gint64 r = 0; r < n_rows; r++)
    {
      const float *xr = x + r * ne0;
      double sum_sq = 0;

      for (gint64 i = 0; i < ne0; i++)
        sum_sq += (double) xr[i] * xr[i];
      double inv_rms = 1 / sqrt (sum_sq / ne0 + eps);
      for (gint64 i = 0; i < ne0; i++)
        dst[r * ne0 + i] = (float) (xr[i] * inv_rms * (weight ? weight[i] : 1));
    }
}

/* Normalizes n elements at x with stride 1; the affine part is the caller's. */
static void
standardize (const float *x, gint64 n, float eps, double *out)
{
  double mean = 0, var = 0;

  for (gint64 i = 0; i < n; i++)
    mean += x[i];
  mean /= n;
  for (gint64 i = 0; i < n; i++)
    var += (x[i] - mean) * (x[i] - mean);
  var /= n;
  for (gint64 i = 0; i < n; i++)
    out[i] = (x[i] - mean) / sqrt (var + eps);
}

void
at_ref_layer_norm (const float *x, gint64 ne0, gint64 n_rows, const float *weight,
                   const float *bias, float eps, float *dst)
{
  g_autofree double *y = g_new (double, ne0);

  for (gint64 r = 0; r < n_rows; r++)
    {
      standardize (x + r * ne0, ne0, eps, y);
      for (gint64 i = 0; i < ne0; i++)
        dst[r * ne0 + i] = (float) (y[i] * (weight ? weight[i] : 1) + (bias ? bias[i] : 0));
    }
}

void
at_ref_group_norm (const float *x, const gint64 ne[4], const float *weight,
                   const float *bias, int n_groups, float eps, gboolean fuse_silu,
                   float *dst)
{
  gint64 plane = ne[0] * ne[1];
  gint64 group_channels = ne[2] / n_groups;
  gint64 group_size = plane * group_channels;
  g_autofree double *y = g_new (double, group_size);

  for (gint64 n = 0; n < ne[3]; n++)
    for (gint64 g = 0; g < n_groups; g++)
      {
        gint64 start = (n * ne[2] + g * group_channels) * plane;

        standardize (x + start, group_size, eps, y);
        for (gint64 i = 0; i < group_size; i++)
          {
            gint64 c = g * group_channels + i / plane;
            double v = y[i] * (weight ? weight[c] : 1) + (bias ? bias[c] : 0);
            dst[start + i] = (float) (fuse_silu ? silu (v) : v);
          }
      }
}

void
at_ref_scale (const float *x, gint64 n, float scale, float bias, float *dst)
{
  for (gint64 i = 0; i < n; i++)
    dst[i] = (float) ((double) x[i] * scale + bias);
}

static double
unary (AtUnaryOp op, double x)
{
  switch (op)
    {
    case AT_UNARY_SILU:
      return silu (x);
    case AT_UNARY_GELU:
      /* 0.5 x (1 + tanh(u)) = x sigmoid(2u), without the cancellation for u << 0. */
      return x / (1 + exp (-2 * sqrt (2 / G_PI) * (x + 0.044715 * x * x * x)));
    case AT_UNARY_GELU_ERF:
      return gelu_erf (x);
    case AT_UNARY_GELU_QUICK:
      return x / (1 + exp (-1.702 * x));
    case AT_UNARY_RELU:
      return x > 0 ? x : 0;
    case AT_UNARY_TANH:
      return tanh (x);
    }
  g_return_val_if_reached (NAN);
}

void
at_ref_unary (AtUnaryOp op, const float *x, gint64 n, float *dst)
{
  for (gint64 i = 0; i < n; i++)
    dst[i] = (float) unary (op, x[i]);
}

void
at_ref_glu (AtGluOp op, const float *x, const float *gate, gint64 n, float *dst)
{
  for (gint64 i = 0; i < n; i++)
    dst[i] = (float) ((op == AT_GLU_SWIGLU ? silu (gate[i]) : gelu_erf (gate[i])) * x[i]);
}

void
at_ref_soft_max (const float *x, const gint64 ne[4], const float *mask,
                 const gint64 mask_ne[4], float scale, gboolean causal,
                 gint64 causal_offset, float *dst)
{
  g_autofree double *v = g_new (double, ne[0]);

  for (gint64 i3 = 0; i3 < ne[3]; i3++)
    for (gint64 i2 = 0; i2 < ne[2]; i2++)
      for (gint64 i1 = 0; i1 < ne[1]; i1++)
        {
          gint64 row = (i3 * ne[2] + i2) * ne[1] + i1;
          const float *m = mask ? mask + (((i3 % mask_ne[3]) * mask_ne[2] + i2 % mask_ne[2]) *
                                          mask_ne[1] + i1) * ne[0]
                                : NULL;
          double max = -INFINITY, sum = 0;

          for (gint64 j = 0; j < ne[0]; j++)
            {
              gboolean masked = causal && j > i1 + causal_offset;
              v[j] = masked ? -INFINITY : (double) x[row * ne[0] + j] * scale + (m ? m[j] : 0);
              max = MAX (max, v[j]);
            }
          for (gint64 j = 0; j < ne[0]; j++)
            sum += max == -INFINITY ? 0 : exp (v[j] - max);
          for (gint64 j = 0; j < ne[0]; j++)
            dst[row * ne[0] + j] = max == -INFINITY ? 0 : (float) (exp (v[j] - max) / sum);
        }
}

void
at_ref_rope (const float *x, const gint64 ne[3], const gint32 *positions,
             const AtRopeParams *params, float *dst)
{
  gint64 n_dims = params->n_dims;

  for (gint64 t = 0; t < ne[2]; t++)
    for (gint64 h = 0; h < ne[1]; h++)
      {
        const float *xr = x + (t * ne[1] + h) * ne[0];
        float *dr = dst + (t * ne[1] + h) * ne[0];

        for (gint64 i = n_dims; i < ne[0]; i++)
          dr[i] = xr[i];
        for (gint64 k = 0; k < n_dims / 2; k++)
          {
            double theta = positions[t] * (double) params->freq_scale *
                           pow (params->freq_base, -2.0 * k / n_dims);
            gint64 a = params->neox ? k : 2 * k;
            gint64 b = params->neox ? k + n_dims / 2 : 2 * k + 1;
            double x0 = xr[a], x1 = xr[b];

            dr[a] = (float) (x0 * cos (theta) - x1 * sin (theta));
            dr[b] = (float) (x0 * sin (theta) + x1 * cos (theta));
          }
      }
}
