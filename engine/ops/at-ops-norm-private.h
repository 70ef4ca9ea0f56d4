/* at-ops-norm-private.h: helpers shared by the norm family's host code. */
#pragma once

#include "ops/at-ops-norm.h"

G_BEGIN_DECLS

/* The variant of a one-workgroup-per-row shader to use: `subgroup` (built with
 * USE_SUBGROUP_ARITHMETIC) where the device has subgroup arithmetic and
 * $ATELIER_DISABLE_SUBGROUP_ARITHMETIC is unset, else `plain`. */
const char *at_op_pick_reduce_variant (AtBatch *batch, const char *plain,
                                       const char *subgroup);

/* Power-of-two workgroup size for one workgroup per row of row_length elements. */
guint32 at_op_row_workgroup_size (AtBatch *batch, gint64 row_length);

/* t's byte strides in elements of elem_size bytes. */
void at_op_element_strides (const AtTensor *t, guint elem_size, guint32 strides[4]);

/* The shape of F32 x (and dst), and both tensors' element strides, for push constants. */
void at_op_push_shape (const AtTensor *x, const AtTensor *dst, guint32 ne[4],
                       guint32 x_strides[4], guint32 dst_strides[4]);

/* Refuses (with an error on the batch) a tensor whose type is not `type`; op and role
 * name it in the message. */
gboolean at_op_check_type (AtBatch *batch, const AtTensor *t, AtType type, const char *op,
                           const char *role);

/* Refuses tensors of different shapes, describing both in the message. */
gboolean at_op_check_same_shape (AtBatch *batch, const AtTensor *a, const AtTensor *b,
                                 const char *op, const char *a_role, const char *b_role);

G_END_DECLS
