/* at-ref-clip-text-model.c: the CLIP text encoder on the CPU, plain and slow. */
#include "ref/at-ref-clip-text-model.h"

#include <math.h>
#include <string.h>

#include "ref/at-ref-attention.h"
#include "ref/at-ref-norm.h"
#include "ref/at-ref-quant.h"
#include "ref/at-ref.h"

#define LN_EPS 1e-5f

/* Part `part` of n_parts equal parts of t's elements as F32 (freed by the caller). */
static float *
part_f32 (const AtSafetensorsTensor *t, guint part, guint n_parts)
{
  const gint64 n = t->n_elements / n_parts;
  float *values = g_new (float, n);

  at_ref_dequantize_row (t->type, t->data + part * (t->size / n_parts), values, n);
  return values;
}

static float *
to_f32 (const AtSafetensorsTensor *t)
{
  return part_f32 (t, 0, 1);
}

/* dst [n][m] = w x + bias for x [n][k], with w [k, m] and bias part `part` of n_parts of
 * the file's tensors. */
static void
linear_part (const AtSafetensorsTensor *w, const AtSafetensorsTensor *bias, guint part,
             guint n_parts, const float *x, gint64 n, float *dst)
{
  const gint64 m = w->ne[1] / n_parts;
  g_autofree float *wf = part_f32 (w, part, n_parts);
  g_autofree float *bf = part_f32 (bias, part, n_parts);
  const gint64 dst_ne[4] = { m, n, 1, 1 }, b_ne[4] = { m, 1, 1, 1 };

  at_ref_mul_mat (wf, x, dst, w->ne[0], m, n);
  at_ref_add (dst, dst_ne, bf, b_ne, dst);
}

static void
linear (const AtSafetensorsTensor *w, const AtSafetensorsTensor *bias, const float *x,
        gint64 n, float *dst)
{
  linear_part (w, bias, 0, 1, x, n, dst);
}

static void
layer_norm (const AtSafetensorsTensor *w, const AtSafetensorsTensor *b, const float *x,
            gint64 d, gint64 n, float *dst)
{
  g_autofree float *wf = to_f32 (w);
  g_autofree float *bf = to_f32 (b);

  at_ref_layer_norm (x, d, n, wf, bf, LN_EPS, dst);
}

/* [n][n_head][head_dim] (tokens outermost) to [n_head][n][head_dim]. */
static void
split_heads (const float *src, gint64 head_dim, gint64 n_head, gint64 n, float *dst)
{
  for (gint64 t = 0; t < n; t++)
    for (gint64 h = 0; h < n_head; h++)
      memcpy (dst + (h * n + t) * head_dim, src + (t * n_head + h) * head_dim,
              head_dim * sizeof (float));
}

static void
add_in_place (float *x, const float *y, gint64 n)
{
  const gint64 ne[4] = { n, 1, 1, 1 };

  at_ref_add (x, ne, y, ne, x);
}

void
at_ref_clip_text_encode (const AtClipTextFile *file, const gint32 *ids, int clip_skip,
                         float *out)
{
  const AtClipTextHParams *hp = &file->info.clip;
  const gint64 d = hp->n_embd, n = hp->n_ctx, hd = d / hp->n_head;
  const guint n_parts = file->qkv_fused ? 3 : 1;
  const AtRefAttnShape shape = { hd, n, n, hp->n_head, hp->n_head, 1.0 / sqrt ((double)hd),
                                 TRUE, 0 };
  g_autofree float *x = g_new (float, d * n), *xb = g_new (float, d * n);
  g_autofree float *q = g_new (float, d * n), *k = g_new (float, d * n);
  g_autofree float *v = g_new (float, d * n), *att = g_new (float, d * n);
  g_autofree float *qh = g_new (float, d * n), *kh = g_new (float, d * n);
  g_autofree float *vh = g_new (float, d * n), *ff = g_new (float, hp->n_ff * n);
  g_autofree float *pos = to_f32 (file->pos_embd);

  at_ref_get_rows (file->token_embd->type, file->token_embd->data,
                   file->token_embd->size / hp->n_vocab, d, hp->n_vocab, ids, n, x);
  add_in_place (x, pos, d * n);
  for (gint64 il = 0; il < hp->n_layer - (clip_skip - 1); il++)
    {
      const AtClipLayerTensors *l = &file->layers[il];

      layer_norm (l->ln1_w, l->ln1_b, x, d, n, xb);
      linear_part (l->q_w, l->q_b, 0, n_parts, xb, n, q);
      linear_part (l->k_w, l->k_b, n_parts == 3 ? 1 : 0, n_parts, xb, n, k);
      linear_part (l->v_w, l->v_b, n_parts == 3 ? 2 : 0, n_parts, xb, n, v);
      split_heads (q, hd, hp->n_head, n, qh);
      split_heads (k, hd, hp->n_head, n, kh);
      split_heads (v, hd, hp->n_head, n, vh);
      at_ref_flash_attn (&shape, qh, kh, vh, NULL, att);
      linear (l->out_w, l->out_b, att, n, xb);
      add_in_place (x, xb, d * n);

      layer_norm (l->ln2_w, l->ln2_b, x, d, n, xb);
      linear (l->fc1_w, l->fc1_b, xb, n, ff);
      at_ref_unary (file->activation, ff, hp->n_ff * n, ff);
      linear (l->fc2_w, l->fc2_b, ff, n, xb);
      add_in_place (x, xb, d * n);
    }
  layer_norm (file->final_ln_w, file->final_ln_b, x, d, n, out);
}
