#include "ops/at-ops-attention.h"

#include <math.h>
#include <string.h>

#include "ops/at-ops-norm-private.h"

/* Rows up to which the split launch (flash-attn.comp with SPLIT) is used: a decoding
 * step of one query, or a few queries of a few heads per KV head. Past it the rows share
 * K/V tiles in shared memory instead. */
#define SPLIT_MAX_ROWS 8
/* Keys each lane group takes per step of the split launch (KB in the shader). */
#define SPLIT_KEYS_PER_STEP 4
/* Fewest keys per split: the split's K/V read (4 bytes per key and dimension in F16)
 * must dwarf its partial results (4 bytes per row and dimension, a few rows). */
#define SPLIT_MIN_KEYS 256

typedef struct {
  guint32 n_q, n_kv, gqa, n_rows;
  guint32 q_first, q_s1, q_s2;
  guint32 k_first, k_s1, k_s2;
  guint32 v_first, v_s1, v_s2;
  guint32 m_first, m_s1;
  guint32 d_first, d_s1, d_s2;
  guint32 flags;
  guint32 causal_offset;
  guint32 kv_per_split;
  float scale;
} AttnPush;

enum { FLAG_MASK = 1, FLAG_MASK_F16 = 2, FLAG_CAUSAL = 4 };

static guint32
next_pow2 (gint64 n)
{
  guint32 p = 1;

  while (p < n)
    p *= 2;
  return p;
}

/* How many splits of the keys: enough workgroups to keep the device busy, each split
 * keeping at least SPLIT_MIN_KEYS keys. A CPU device (lavapipe) runs one workgroup per
 * thread at a time, so a few per core balance the last ones; a GPU needs several per
 * compute unit to hide memory latency, and 256 covers 64 units four times over without
 * knowing the count (more only adds partial results to merge). */
static guint32
split_count (const AtGpuDeviceInfo *info, gint64 base_groups, gint64 n_kv)
{
  gint64 target = info->type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 4 * g_get_num_processors () : 256;
  gint64 n = (target + base_groups - 1) / base_groups;

  n = MIN (n, (n_kv + SPLIT_MIN_KEYS - 1) / SPLIT_MIN_KEYS);
  return (guint32) CLAMP (n, 1, (gint64) info->max_workgroup_count[2]);
}

/* Few rows: workgroups over (rows, KV head, split of the keys), then the reduce pass. */
static void
dispatch_split (AtBatch *batch, const AtBinding *bindings, AttnPush *push, AtType kv_type,
                guint32 head_dim, gint64 n_head_kv, gboolean aligned4)
{
  const AtGpuDeviceInfo *info = at_gpu_get_info (at_batch_get_gpu (batch));
  const char *variant = kv_type == AT_TYPE_F16
    ? at_op_pick_reduce_variant (batch, "flash_attn_split_f16", "flash_attn_split_f16_sg")
    : at_op_pick_reduce_variant (batch, "flash_attn_split_f32", "flash_attn_split_f32_sg");
  /* The subgroup variant's lane groups are the subgroups; the other sums in shared
   * memory over groups of any size. Four groups per workgroup. */
  guint32 group = strstr (variant, "_sg") ? info->subgroup_size : 8;
  guint32 br = next_pow2 (push->n_rows), wg = 4 * group, n_groups = wg / group;
  guint32 row_tiles = (push->n_rows + br - 1) / br;
  guint32 step = n_groups * SPLIT_KEYS_PER_STEP;
  guint32 n_split = split_count (info, (gint64) row_tiles * n_head_kv, push->n_kv);
  guint32 per_split = ((push->n_kv + n_split - 1) / n_split + step - 1) / step * step;
  guint64 n_gr = (guint64) n_head_kv * push->n_rows, n_slots, n_floats;
  guint32 spec[5] = { wg, head_dim, br, group, aligned4 };
  AtBinding split_bindings[5], reduce_bindings[2];
  AtGpuBuffer *scratch;
  gsize offset;
  struct {
    guint32 n_slots, n_gr, n_rows, gqa;
    guint32 o_first, ml_first;
    guint32 d_first, d_s1, d_s2;
  } reduce = { 0 };
  guint32 reduce_spec[2] = { 64, head_dim };

  n_split = (push->n_kv + per_split - 1) / per_split;
  n_slots = (guint64) n_split * n_groups;
  n_floats = n_slots * n_gr * (head_dim + 2);
  if (!at_op_check (batch, n_floats * 4 <= info->max_storage_buffer_range &&
                    n_head_kv <= info->max_workgroup_count[1],
                    "flash_attn: too many heads for one dispatch"))
    return;
  scratch = at_batch_get_scratch (batch, n_floats * 4, &offset);
  if (scratch == NULL)
    return;

  memcpy (split_bindings, bindings, sizeof split_bindings);
  split_bindings[4] = (AtBinding) { scratch, offset, n_floats * 4, TRUE };
  reduce.n_slots = (guint32) n_slots;
  reduce.n_gr = (guint32) n_gr;
  reduce.n_rows = push->n_rows;
  reduce.gqa = push->gqa;
  reduce.o_first = 0;
  reduce.ml_first = (guint32) (n_slots * n_gr * head_dim);
  reduce.d_first = push->d_first;
  reduce.d_s1 = push->d_s1;
  reduce.d_s2 = push->d_s2;
  push->d_first = reduce.o_first;
  push->d_s1 = reduce.ml_first;
  push->kv_per_split = per_split;
  at_batch_dispatch (batch, variant, spec, G_N_ELEMENTS (spec), split_bindings,
                     G_N_ELEMENTS (split_bindings), push, sizeof *push, row_tiles,
                     (guint32) n_head_kv, n_split);

  reduce_bindings[0] = (AtBinding) { scratch, offset, n_floats * 4, FALSE };
  reduce_bindings[1] = bindings[4];
  at_batch_dispatch_1d (batch, "flash_attn_reduce", reduce_spec, G_N_ELEMENTS (reduce_spec),
                        reduce_bindings, G_N_ELEMENTS (reduce_bindings), &reduce,
                        sizeof reduce, n_gr);
}

/* Many rows: one thread per row, workgroups over (rows, KV head); K/V tiles of as many
 * keys as shared memory holds, up to 32. */
static void
dispatch_rows (AtBatch *batch, const AtBinding *bindings, const AttnPush *push,
               AtType kv_type, guint32 head_dim, gint64 n_head_kv, gboolean aligned4)
{
  const AtGpuDeviceInfo *info = at_gpu_get_info (at_batch_get_gpu (batch));
  guint32 wg = CLAMP (next_pow2 (push->n_rows), 16, 64), keys = 32;
  guint32 spec[5];

  while (keys > 8 && 2 * keys * head_dim * 4 > info->max_shared_memory)
    keys /= 2;
  if (!at_op_check (batch, 2 * keys * head_dim * 4 <= info->max_shared_memory,
                    "flash_attn: head_dim %u needs more shared memory than the device has",
                    head_dim) ||
      !at_op_check (batch, (push->n_rows + wg - 1) / wg <= info->max_workgroup_count[0] &&
                    n_head_kv <= info->max_workgroup_count[1],
                    "flash_attn: too many queries or heads for one dispatch"))
    return;
  spec[0] = wg;
  spec[1] = head_dim;
  spec[2] = keys;
  spec[3] = 1;
  spec[4] = aligned4;
  at_batch_dispatch (batch, kv_type == AT_TYPE_F16 ? "flash_attn_f16" : "flash_attn_f32",
                     spec, G_N_ELEMENTS (spec), bindings, 5, push, sizeof *push,
                     (push->n_rows + wg - 1) / wg, (guint32) n_head_kv, 1);
}

static gboolean
check_kv (AtBatch *batch, const char *name, const AtTensor *t, gint64 head_dim)
{
  gsize size = at_type_info (t->type)->type_size;

  return at_op_check (batch, t->ne[0] == head_dim && t->ne[1] > 0 && t->ne[2] > 0 &&
                      t->ne[3] == 1, "flash_attn: %s must be [%" G_GINT64_FORMAT
                      ", n_kv, n_head_kv, 1]", name, head_dim) &&
         at_op_check (batch, t->nb[0] == size && t->nb[1] % size == 0 &&
                      t->nb[2] % size == 0 && t->offset % size == 0,
                      "flash_attn: %s must have contiguous rows and element-aligned strides",
                      name);
}

void
at_op_flash_attn (AtBatch *batch, const AtTensor *q, const AtTensor *k, const AtTensor *v,
                  const AtTensor *mask, const AtTensor *dst, const AtFlashAttnParams *params)
{
  const gint64 head_dim = q->ne[0], n_q = q->ne[1], n_head = q->ne[2];
  const gint64 n_kv = k->ne[1], n_head_kv = k->ne[2];
  AttnPush push = { 0 };
  AtBinding bindings[5];
  guint kv_size;
  gint64 n_rows;
  gboolean aligned4;

  if (!at_op_check (batch, q->type == AT_TYPE_F32 && dst->type == AT_TYPE_F32,
                    "flash_attn: q and dst must be F32") ||
      !at_op_check (batch, (k->type == AT_TYPE_F16 || k->type == AT_TYPE_F32) &&
                    v->type == k->type, "flash_attn: k and v must both be F16 or both F32") ||
      !at_op_check (batch, head_dim >= 8 && head_dim <= 256 && head_dim % 8 == 0,
                    "flash_attn: head_dim %" G_GINT64_FORMAT " is not a multiple of 8 "
                    "up to 256", head_dim) ||
      !at_op_check (batch, n_q > 0 && n_head > 0 && q->ne[3] == 1 && q->nb[0] == 4 &&
                    q->nb[1] % 4 == 0 && q->nb[2] % 4 == 0,
                    "flash_attn: q must be [head_dim, n_q, n_head, 1] with contiguous rows") ||
      !check_kv (batch, "k", k, head_dim) || !check_kv (batch, "v", v, head_dim) ||
      !at_op_check (batch, at_tensor_same_shape (k, v), "flash_attn: k and v differ in shape") ||
      !at_op_check (batch, n_head % n_head_kv == 0, "flash_attn: n_head %" G_GINT64_FORMAT
                    " is not a multiple of n_head_kv %" G_GINT64_FORMAT, n_head, n_head_kv) ||
      !at_op_check (batch, dst->ne[0] == head_dim && dst->ne[1] == n_head &&
                    dst->ne[2] == n_q && dst->ne[3] == 1 && dst->nb[0] == 4 &&
                    dst->nb[1] % 4 == 0 && dst->nb[2] % 4 == 0,
                    "flash_attn: dst must be F32 [head_dim, n_head, n_q, 1] with "
                    "contiguous rows") ||
      !at_op_check (batch, params->causal_offset >= 0 && isfinite (params->scale),
                    "flash_attn: causal_offset must be >= 0 and scale finite"))
    return;
  if (mask)
    {
      gsize size = mask->type == AT_TYPE_F16 ? 2 : 4;
      if (!at_op_check (batch, (mask->type == AT_TYPE_F32 || mask->type == AT_TYPE_F16) &&
                        mask->ne[0] == n_kv && mask->ne[1] == n_q && mask->ne[2] == 1 &&
                        mask->ne[3] == 1 && mask->nb[0] == size && mask->nb[1] % size == 0 &&
                        mask->offset % size == 0,
                        "flash_attn: mask must be F32 or F16 [n_kv, n_q, 1, 1]"))
        return;
    }

  n_rows = n_q * (n_head / n_head_kv);
  kv_size = at_type_info (k->type)->type_size;
  bindings[0] = at_tensor_binding (batch, q, FALSE, 4, &push.q_first);
  bindings[1] = at_tensor_binding (batch, k, FALSE, kv_size, &push.k_first);
  bindings[2] = at_tensor_binding (batch, v, FALSE, kv_size, &push.v_first);
  /* Without a mask the shader never reads binding 3; q stands in for it. */
  bindings[3] = mask ? at_tensor_binding (batch, mask, FALSE, (guint) mask->nb[0], &push.m_first)
                     : bindings[0];
  bindings[4] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);

  push.n_q = (guint32) n_q;
  push.n_kv = (guint32) n_kv;
  push.gqa = (guint32) (n_head / n_head_kv);
  push.n_rows = (guint32) n_rows;
  push.q_s1 = (guint32) (q->nb[1] / 4);
  push.q_s2 = (guint32) (q->nb[2] / 4);
  push.k_s1 = (guint32) (k->nb[1] / kv_size);
  push.k_s2 = (guint32) (k->nb[2] / kv_size);
  push.v_s1 = (guint32) (v->nb[1] / kv_size);
  push.v_s2 = (guint32) (v->nb[2] / kv_size);
  push.m_s1 = mask ? (guint32) (mask->nb[1] / mask->nb[0]) : 0;
  push.d_s1 = (guint32) (dst->nb[1] / 4);
  push.d_s2 = (guint32) (dst->nb[2] / 4);
  push.flags = (mask ? FLAG_MASK : 0) | (mask && mask->type == AT_TYPE_F16 ? FLAG_MASK_F16 : 0) |
               (params->causal ? FLAG_CAUSAL : 0);
  /* Past n_kv the offset masks nothing more; clamping keeps it in 32 bits. */
  push.causal_offset = (guint32) MIN (params->causal_offset, n_kv);
  push.scale = params->scale;

  /* Four elements per K/V load where every offset and stride allows it. */
  aligned4 = (push.k_first | push.k_s1 | push.k_s2 | push.v_first | push.v_s1 | push.v_s2) % 4 == 0;
  if (n_rows <= SPLIT_MAX_ROWS)
    dispatch_split (batch, bindings, &push, k->type, (guint32) head_dim, n_head_kv, aligned4);
  else
    dispatch_rows (batch, bindings, &push, k->type, (guint32) head_dim, n_head_kv, aligned4);
}
