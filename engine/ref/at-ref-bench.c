#include <math.h>

#include "ref/at-ref.h"

void
at_ref_peak_flops (float *dst, gint64 n, guint32 n_iterations, float a, float b)
{
  for (gint64 i = 0; i < n; i++)
    {
      float x[4];
      x[0] = (float) (i & 255) * 1e-3f;
      x[1] = x[0] + 0.25f;
      x[2] = x[0] + 0.5f;
      x[3] = x[0] + 0.75f;
      for (guint32 it = 0; it < n_iterations; it++)
        for (int c = 0; c < 4; c++)
          x[c] = fmaf (x[c], a, b);
      dst[i] = x[0] + x[1] + x[2] + x[3];
    }
}
