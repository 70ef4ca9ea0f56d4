#include <math.h>

#include "ref/at-ref-elementwise.h"

void
at_ref_timestep_embedding (const float *timesteps, gint64 n, int dim, int max_period,
                           float *dst)
{
  int half = dim / 2;

  for (gint64 i = 0; i < n; i++)
    {
      float *embedding = dst + i * dim;

      for (int j = 0; j < half; j++)
        {
          double freq = exp (-log ((double) max_period) * j / half);
          double angle = timesteps[i] * freq;
          embedding[j] = (float) cos (angle);
          embedding[half + j] = (float) sin (angle);
        }
      if (dim % 2 != 0)
        embedding[dim - 1] = 0.0f;
    }
}
