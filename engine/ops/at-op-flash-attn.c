#include "ops/at-ops-attention.h"

#include <math.h>

/* A launch shape of flash-attn.comp: WG threads for BR rows (query, head sharing a KV
 * head), keys in tiles of BC. Many rows share each key load; a single row (decoding
 * without grouped-query attention) instead spreads a wider key tile over the workgroup. */
typedef struct {
  guint wg, br, bc;
} Tile;

static const Tile tiles[] = {
  { 128, 16, 32 }, /* prefill, diffusion */
  { 128, 4, 32 },  /* a few queries, or a large head_dim where 16 rows do not fit */
  { 64, 1, 64 },   /* decode */
};

static gsize
tile_shared_bytes (const Tile *tile, guint head_dim, guint cs)
{
  gsize bytes = (gsize) tile->br * head_dim * 4 + 2 * (gsize) tile->br * tile->bc * 4 +
                (gsize) tile->br * 4;
  return bytes + (cs > 1 ? (gsize) tile->br * cs * head_dim * 4 : 16);
}

/* Threads of a row beyond the head_dim chunks take interleaved subsets of the keys. */
static guint
tile_key_subsets (const Tile *tile, guint head_dim)
{
  guint threads = tile->wg / tile->br, cs = 1;

  while (threads / (cs * 2) >= head_dim / 4 && cs * 2 <= tile->bc)
    cs *= 2;
  return cs;
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
  const AtGpuDeviceInfo *info = at_gpu_get_info (at_batch_get_gpu (batch));
  const gint64 head_dim = q->ne[0], n_q = q->ne[1], n_head = q->ne[2];
  const gint64 n_kv = k->ne[1], n_head_kv = k->ne[2];
  struct {
    guint32 n_q, n_kv, gqa, n_rows;
    guint32 q_first, q_s1, q_s2;
    guint32 k_first, k_s1, k_s2;
    guint32 v_first, v_s1, v_s2;
    guint32 m_first, m_s1;
    guint32 d_first, d_s1, d_s2;
    guint32 flags;
    guint32 causal_offset;
    float scale;
  } push = { 0 };
  enum { FLAG_MASK = 1, FLAG_MASK_F16 = 2, FLAG_CAUSAL = 4 };
  AtBinding bindings[5];
  const Tile *tile = NULL;
  guint32 spec[5];
  guint cs = 1, kv_size;
  gint64 n_rows;

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
  for (guint i = n_rows == 1 ? 2 : n_rows < 16 ? 1 : 0; i < G_N_ELEMENTS (tiles); i++)
    {
      cs = tile_key_subsets (&tiles[i], (guint) head_dim);
      if (tile_shared_bytes (&tiles[i], (guint) head_dim, cs) <= info->max_shared_memory)
        {
          tile = &tiles[i];
          break;
        }
    }
  if (!at_op_check (batch, tile != NULL, "flash_attn: head_dim %" G_GINT64_FORMAT
                    " needs more shared memory than the device has", head_dim) ||
      !at_op_check (batch, (n_rows + tile->br - 1) / tile->br <= info->max_workgroup_count[0] &&
                    n_head_kv <= info->max_workgroup_count[1],
                    "flash_attn: too many queries or heads for one dispatch"))
    return;

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

  spec[0] = tile->wg;
  spec[1] = (guint32) head_dim;
  spec[2] = tile->br;
  spec[3] = tile->bc;
  spec[4] = cs;
  at_batch_dispatch (batch, k->type == AT_TYPE_F16 ? "flash_attn_f16" : "flash_attn_f32",
                     spec, G_N_ELEMENTS (spec), bindings, G_N_ELEMENTS (bindings), &push,
                     sizeof push, (guint32) ((n_rows + tile->br - 1) / tile->br),
                     (guint32) n_head_kv, 1);
}
