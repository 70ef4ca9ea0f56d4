#include "ref/at-ref-quant.h"

void
at_ref_mul_mat (const float *w, const float *x, float *dst, gint64 k, gint64 m, gint64 n)
{
  for (gint64 j = 0; j < n; j++)
    for (gint64 i = 0; i < m; i++)
      {
        double sum = 0;
        for (gint64 l = 0; l < k; l++)
          sum += (double)w[i * k + l] * x[j * k + l];
        dst[j * m + i] = (float)sum;
      }
}
