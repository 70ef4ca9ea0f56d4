#include "ref/at-ref.h"

typedef double (*BinaryFunc) (double x, double y);

static double add (double x, double y) { return x + y; }
static double mul (double x, double y) { return x * y; }

static void
binary (BinaryFunc func, const float *a, const gint64 ne[4], const float *b,
        const gint64 b_ne[4], float *dst)
{
  for (gint64 i3 = 0; i3 < ne[3]; i3++)
    for (gint64 i2 = 0; i2 < ne[2]; i2++)
      for (gint64 i1 = 0; i1 < ne[1]; i1++)
        for (gint64 i0 = 0; i0 < ne[0]; i0++)
          {
            gint64 i = ((i3 * ne[2] + i2) * ne[1] + i1) * ne[0] + i0;
            gint64 j = (((i3 % b_ne[3]) * b_ne[2] + i2 % b_ne[2]) * b_ne[1] + i1 % b_ne[1]) *
                       b_ne[0] + i0 % b_ne[0];
            dst[i] = (float) func (a[i], b[j]);
          }
}

void
at_ref_add (const float *a, const gint64 ne[4], const float *b, const gint64 b_ne[4], float *dst)
{
  binary (add, a, ne, b, b_ne, dst);
}

void
at_ref_mul (const float *a, const gint64 ne[4], const float *b, const gint64 b_ne[4], float *dst)
{
  binary (mul, a, ne, b, b_ne, dst);
}
