#include "ops/at-ops-bench.h"

#define WORKGROUP_SIZE 256

void
at_op_peak_flops (AtBatch *batch, const AtTensor *dst, guint32 n_iterations, float a, float b)
{
  const guint32 spec[] = { WORKGROUP_SIZE };
  struct {
    guint32 n, n_iterations;
    float a, b;
  } push = { (guint32) at_tensor_n_elements (dst), n_iterations, a, b };
  AtBinding binding;

  if (!at_op_check (batch, dst->type == AT_TYPE_F32 && at_tensor_is_contiguous (dst),
                    "peak_flops: the output must be a contiguous F32 tensor"))
    return;
  binding = at_tensor_binding (batch, dst, TRUE, 4, NULL);
  at_batch_dispatch_1d (batch, "peak_flops", spec, 1, &binding, 1, &push, sizeof push,
                        (push.n + WORKGROUP_SIZE - 1) / WORKGROUP_SIZE);
}

double
at_op_peak_flops_count (const AtTensor *dst, guint32 n_iterations)
{
  /* 4 chains of one FMA (2 FLOP) per iteration, per element. */
  return (double) at_tensor_n_elements (dst) * n_iterations * 4 * 2;
}
