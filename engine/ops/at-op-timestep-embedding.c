#include <math.h>

#include "ops/at-ops-elementwise.h"

#define WORKGROUP_SIZE 256

void
at_op_timestep_embedding (AtBatch *batch, const AtTensor *timesteps, const AtTensor *dst,
                          int dim, int max_period)
{
  struct {
    guint32 dim, half_dim, n;
    guint32 t_first, t_s0;
    guint32 d_first, d_s0, d_s1;
    float neg_log2_period_over_half;
  } push;
  AtBinding bindings[2];
  const guint32 spec[] = { WORKGROUP_SIZE };
  gint64 n = timesteps->ne[0];

  if (!at_op_check (batch, dim >= 2 && max_period >= 1,
                    "timestep_embedding: dim %d (at least 2) or max_period %d (at least 1) "
                    "is out of range", dim, max_period) ||
      !at_op_check (batch, timesteps->type == AT_TYPE_F32 && dst->type == AT_TYPE_F32,
                    "timestep_embedding: only F32 tensors are supported") ||
      !at_op_check (batch, at_tensor_n_elements (timesteps) == n && dst->ne[0] == dim &&
                    dst->ne[1] == n && dst->ne[2] == 1 && dst->ne[3] == 1,
                    "timestep_embedding: %" G_GINT64_FORMAT " timesteps of dim %d do not "
                    "fill dst [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                    ", %" G_GINT64_FORMAT "]", at_tensor_n_elements (timesteps), dim,
                    dst->ne[0], dst->ne[1], dst->ne[2], dst->ne[3]) ||
      !at_op_check (batch, timesteps->nb[0] % 4 == 0 && dst->nb[0] % 4 == 0 &&
                    dst->nb[1] % 4 == 0 && timesteps->offset % 4 == 0 && dst->offset % 4 == 0,
                    "timestep_embedding: strides must be whole elements"))
    return;
  if (n == 0)
    return;

  bindings[0] = at_tensor_binding (batch, timesteps, FALSE, 4, &push.t_first);
  bindings[1] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  push.dim = (guint32) dim;
  push.half_dim = (guint32) (dim / 2);
  push.n = (guint32) n;
  push.t_s0 = (guint32) (timesteps->nb[0] / 4);
  push.d_s0 = (guint32) (dst->nb[0] / 4);
  push.d_s1 = (guint32) (dst->nb[1] / 4);
  push.neg_log2_period_over_half = (float) (-log2 ((double) max_period) / (dim / 2));
  at_batch_dispatch_1d (batch, "timestep_embedding", spec, 1, bindings, 2, &push, sizeof push,
                        (n * dim + WORKGROUP_SIZE - 1) / WORKGROUP_SIZE);
}
