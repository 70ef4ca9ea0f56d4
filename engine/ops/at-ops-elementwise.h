/* at-ops-elementwise.h: element-wise ops on F32 activations. */
#pragma once

#include "ops/at-tensor.h"

G_BEGIN_DECLS

/* dst = a + b and dst = a * b; b broadcasts over a (each of its dimensions is a's or
 * 1). dst has a's shape; all three are F32 with any strides. dst may alias a. */
void at_op_add (AtBatch *batch, const AtTensor *a, const AtTensor *b, const AtTensor *dst);
void at_op_mul (AtBatch *batch, const AtTensor *a, const AtTensor *b, const AtTensor *dst);

G_END_DECLS
