#include "ops/at-ops-elementwise.h"

AtTensor
at_tensor_permute (const AtTensor *t, int axis0, int axis1, int axis2, int axis3)
{
  const int axes[4] = { axis0, axis1, axis2, axis3 };
  AtTensor p = *t;
  guint seen = 0;

  for (int d = 0; d < 4; d++)
    {
      g_return_val_if_fail (axes[d] >= 0 && axes[d] < 4, *t);
      seen |= 1u << axes[d];
    }
  g_return_val_if_fail (seen == 0xf, *t);
  for (int d = 0; d < 4; d++)
    {
      p.ne[axes[d]] = t->ne[d];
      p.nb[axes[d]] = t->nb[d];
    }
  return p;
}
