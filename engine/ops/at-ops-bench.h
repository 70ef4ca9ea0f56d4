/* at-ops-bench.h: kernels that measure the device's roofs for `atelier-cli bench`. */
#pragma once

#include "ops/at-tensor.h"

G_BEGIN_DECLS

/* dst[i] = sum of 4 FMA chains x = x * a + b, n_iterations long, seeded from i (see
 * at_ref_peak_flops). Measures the FP32 arithmetic roof. */
void at_op_peak_flops (AtBatch *batch, const AtTensor *dst, guint32 n_iterations, float a,
                       float b);
/* Floating-point operations that one at_op_peak_flops dispatch performs. */
double at_op_peak_flops_count (const AtTensor *dst, guint32 n_iterations);

G_END_DECLS
