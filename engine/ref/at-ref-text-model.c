/* at-ref-text-model.c: the llama-family forward pass on the CPU, one function per block,
 * from weights dequantized row by row with at_ref_dequantize_row. */
#include "ref/at-ref-text-model.h"

#include <math.h>
#include <string.h>

#include "ref/at-ref-attention.h"
#include "ref/at-ref-norm.h"
#include "ref/at-ref-quant.h"
#include "ref/at-ref.h"

/* Rows of a weight dequantized at a time: bounds the F32 copy of big matrices. */
#define ROWS_PER_CHUNK 256

/* A weight matrix in the file: m rows of k elements of type. */
typedef struct
{
  AtType type;
  const guint8 *data;
  gint64 k, m;
} Matrix;

typedef struct
{
  float *attn_norm;
  Matrix attn_q, attn_k, attn_v;
  float *attn_q_bias, *attn_k_bias, *attn_v_bias; /* NULL when absent */
  float *attn_q_norm, *attn_k_norm;               /* qwen3 */
  Matrix attn_output;
  float *ffn_norm;
  Matrix ffn_gate, ffn_up, ffn_down;
} Block;

struct _AtRefTextModel
{
  AtTextHParams hp;
  gint64 n_ctx;
  Matrix token_embd, output;
  float *output_norm;
  Block *blocks;
  /* [n_layer][n_head_kv][n_ctx][head_dim], F16-rounded values */
  float *key_cache, *value_cache;
};

static Matrix
matrix (const AtGgufTensor *t)
{
  return (Matrix){ t->type, t->data, t->ne[0], t->ne[1] };
}

/* A vector as F32, or NULL for an absent one. */
static float *
vector (const AtGgufTensor *t)
{
  float *v;

  if (t == NULL)
    return NULL;
  v = g_new (float, t->ne[0]);
  at_ref_dequantize_row (t->type, t->data, v, t->ne[0]);
  return v;
}

AtRefTextModel *
at_ref_text_model_new (AtGguf *gguf, gint64 n_ctx, GError **error)
{
  g_autoptr (AtRefTextModel) model = g_new0 (AtRefTextModel, 1);
  AtTextModelFile file;
  const AtTextHParams *hp = &model->hp;
  gsize cache_size;

  if (!at_text_model_file_init (&file, gguf, error))
    return NULL;
  model->hp = file.hp;
  model->n_ctx = n_ctx;
  model->token_embd = matrix (file.token_embd);
  model->output = matrix (file.output);
  model->output_norm = vector (file.output_norm);
  model->blocks = g_new0 (Block, hp->n_layer);
  for (gint64 il = 0; il < hp->n_layer; il++)
    {
      const AtTextBlockTensors *f = &file.blocks[il];
      Block *b = &model->blocks[il];

      b->attn_norm = vector (f->attn_norm);
      b->attn_q = matrix (f->attn_q);
      b->attn_k = matrix (f->attn_k);
      b->attn_v = matrix (f->attn_v);
      b->attn_q_bias = vector (f->attn_q_bias);
      b->attn_k_bias = vector (f->attn_k_bias);
      b->attn_v_bias = vector (f->attn_v_bias);
      b->attn_q_norm = vector (f->attn_q_norm);
      b->attn_k_norm = vector (f->attn_k_norm);
      b->attn_output = matrix (f->attn_output);
      b->ffn_norm = vector (f->ffn_norm);
      b->ffn_gate = matrix (f->ffn_gate);
      b->ffn_up = matrix (f->ffn_up);
      b->ffn_down = matrix (f->ffn_down);
    }
  at_text_model_file_clear (&file);
  cache_size = (gsize)hp->n_layer * hp->n_head_kv * n_ctx * hp->head_dim;
  model->key_cache = g_new0 (float, cache_size);
  model->value_cache = g_new0 (float, cache_size);
  return g_steal_pointer (&model);
}

void
at_ref_text_model_free (AtRefTextModel *model)
{
  if (model == NULL)
    return;
  for (gint64 il = 0; model->blocks != NULL && il < model->hp.n_layer; il++)
    {
      Block *b = &model->blocks[il];
      g_free (b->attn_norm);
      g_free (b->attn_q_bias);
      g_free (b->attn_k_bias);
      g_free (b->attn_v_bias);
      g_free (b->attn_q_norm);
      g_free (b->attn_k_norm);
      g_free (b->ffn_norm);
    }
  g_free (model->blocks);
  g_free (model->output_norm);
  g_free (model->key_cache);
  g_free (model->value_cache);
  g_free (model);
}

const AtTextHParams *
at_ref_text_model_get_hparams (AtRefTextModel *model)
{
  return &model->hp;
}

/* out [n][w.m] = w x for x [n][w.k] (+ bias [w.m] when not NULL). */
static void
matmul (const Matrix *w, const float *bias, const float *x, gint64 n, float *out)
{
  const gsize row_bytes = at_type_row_size (w->type, w->k);
  g_autofree float *rows = g_new (float, (gsize)ROWS_PER_CHUNK * w->k);
  g_autofree float *part = g_new (float, (gsize)ROWS_PER_CHUNK *n);

  for (gint64 r0 = 0; r0 < w->m; r0 += ROWS_PER_CHUNK)
    {
      gint64 m = MIN (ROWS_PER_CHUNK, w->m - r0);

      for (gint64 i = 0; i < m; i++)
        at_ref_dequantize_row (w->type, w->data + (gsize)(r0 + i) * row_bytes, rows + i * w->k,
                               w->k);
      at_ref_mul_mat (rows, x, part, w->k, m, n);
      for (gint64 j = 0; j < n; j++)
        for (gint64 i = 0; i < m; i++)
          out[j * w->m + r0 + i] = part[j * m + i] + (bias != NULL ? bias[r0 + i] : 0.0f);
    }
}

/* The cache slot of (layer, kv head, position). */
static float *
cache_at (AtRefTextModel *model, float *cache, gint64 il, gint64 h, gint64 pos)
{
  const AtTextHParams *hp = &model->hp;

  return cache + (((gsize)il * hp->n_head_kv + h) * model->n_ctx + pos) * hp->head_dim;
}

static void
cache_store (AtRefTextModel *model, float *cache, gint64 il, const float *kv, gint64 n,
             gint64 n_past)
{
  const AtTextHParams *hp = &model->hp;

  for (gint64 t = 0; t < n; t++)
    for (gint64 h = 0; h < hp->n_head_kv; h++)
      {
        float *slot = cache_at (model, cache, il, h, n_past + t);
        const float *src = kv + (t * hp->n_head_kv + h) * hp->head_dim;
        for (gint64 d = 0; d < hp->head_dim; d++)
          slot[d] = at_fp16_to_fp32 (at_fp32_to_fp16 (src[d]));
      }
}

/* The first n_kv positions of a layer's cache, contiguous [head_dim, n_kv, n_head_kv]. */
static float *
cache_prefix (AtRefTextModel *model, float *cache, gint64 il, gint64 n_kv)
{
  const AtTextHParams *hp = &model->hp;
  float *out = g_new (float, (gsize)hp->n_head_kv *n_kv * hp->head_dim);

  for (gint64 h = 0; h < hp->n_head_kv; h++)
    memcpy (out + h * n_kv * hp->head_dim, cache_at (model, cache, il, h, 0),
            (gsize)n_kv * hp->head_dim * sizeof (float));
  return out;
}

/* x [n][n_embd] += attention (rms_norm (x)). */
static void
attention (AtRefTextModel *model, gint64 il, float *x, gint64 n, gint64 n_past,
           const gint32 *positions)
{
  const AtTextHParams *hp = &model->hp;
  const Block *b = &model->blocks[il];
  const gint64 hd = hp->head_dim, n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd;
  g_autofree float *xb = g_new (float, n * hp->n_embd);
  g_autofree float *q = g_new (float, n *n_q), *qr = g_new (float, n *n_q);
  g_autofree float *k = g_new (float, n *n_kv), *kr = g_new (float, n *n_kv);
  g_autofree float *v = g_new (float, n *n_kv);
  g_autofree float *q_by_head = g_new (float, n *n_q), *att = g_new (float, n *n_q);
  g_autofree float *keys = NULL, *values = NULL;
  const gint64 q_ne[3] = { hd, hp->n_head, n }, k_ne[3] = { hd, hp->n_head_kv, n };
  AtRefAttnShape shape
      = { hd, n, n_past + n, hp->n_head, hp->n_head_kv, 1.0 / sqrt ((double)hd), TRUE, n_past };

  at_ref_rms_norm (x, hp->n_embd, n, b->attn_norm, hp->rms_eps, xb);
  matmul (&b->attn_q, b->attn_q_bias, xb, n, q);
  matmul (&b->attn_k, b->attn_k_bias, xb, n, k);
  matmul (&b->attn_v, b->attn_v_bias, xb, n, v);
  if (b->attn_q_norm != NULL)
    {
      at_ref_rms_norm (q, hd, n * hp->n_head, b->attn_q_norm, hp->rms_eps, q);
      at_ref_rms_norm (k, hd, n * hp->n_head_kv, b->attn_k_norm, hp->rms_eps, k);
    }
  at_ref_rope (q, q_ne, positions, &hp->rope, qr);
  at_ref_rope (k, k_ne, positions, &hp->rope, kr);
  cache_store (model, model->key_cache, il, kr, n, n_past);
  cache_store (model, model->value_cache, il, v, n, n_past);

  /* [head_dim, n_head, n] to the [head_dim, n, n_head] that attention takes. */
  for (gint64 t = 0; t < n; t++)
    for (gint64 h = 0; h < hp->n_head; h++)
      memcpy (q_by_head + (h * n + t) * hd, qr + (t * hp->n_head + h) * hd, hd * sizeof (float));
  keys = cache_prefix (model, model->key_cache, il, n_past + n);
  values = cache_prefix (model, model->value_cache, il, n_past + n);
  at_ref_flash_attn (&shape, q_by_head, keys, values, NULL, att);

  matmul (&b->attn_output, NULL, att, n, xb);
  for (gint64 i = 0; i < n * hp->n_embd; i++)
    x[i] += xb[i];
}

/* x [n][n_embd] += ffn_down (silu (ffn_gate (xb)) * ffn_up (xb)), xb = rms_norm (x). */
static void
feed_forward (AtRefTextModel *model, gint64 il, float *x, gint64 n)
{
  const AtTextHParams *hp = &model->hp;
  const Block *b = &model->blocks[il];
  g_autofree float *xb = g_new (float, n * hp->n_embd);
  g_autofree float *hb = g_new (float, n * hp->n_ff), *hb2 = g_new (float, n * hp->n_ff);

  at_ref_rms_norm (x, hp->n_embd, n, b->ffn_norm, hp->rms_eps, xb);
  matmul (&b->ffn_gate, NULL, xb, n, hb);
  matmul (&b->ffn_up, NULL, xb, n, hb2);
  at_ref_glu (AT_GLU_SWIGLU, hb2, hb, n * hp->n_ff, hb);
  matmul (&b->ffn_down, NULL, hb, n, xb);
  for (gint64 i = 0; i < n * hp->n_embd; i++)
    x[i] += xb[i];
}

void
at_ref_text_model_decode (AtRefTextModel *model, const gint32 *tokens, gsize n_tokens, gsize n_past,
                          float *logits, gboolean all_logits)
{
  const AtTextHParams *hp = &model->hp;
  const gint64 n = (gint64)n_tokens, n_out = all_logits ? n : 1;
  g_autofree float *x = g_new (float, n * hp->n_embd);
  g_autofree float *xb = g_new (float, n_out * hp->n_embd);
  g_autofree gint32 *positions = g_new (gint32, n);

  g_return_if_fail (n_past + n_tokens <= (gsize)model->n_ctx);
  for (gint64 i = 0; i < n; i++)
    positions[i] = (gint32)(n_past + i);
  at_ref_get_rows (model->token_embd.type, model->token_embd.data,
                   at_type_row_size (model->token_embd.type, hp->n_embd), hp->n_embd, hp->n_vocab,
                   tokens, n, x);
  for (gint64 il = 0; il < hp->n_layer; il++)
    {
      attention (model, il, x, n, (gint64)n_past, positions);
      feed_forward (model, il, x, n);
    }
  at_ref_rms_norm (x + (n - n_out) * hp->n_embd, hp->n_embd, n_out, model->output_norm, hp->rms_eps,
                   xb);
  matmul (&model->output, NULL, xb, n_out, logits);
}
