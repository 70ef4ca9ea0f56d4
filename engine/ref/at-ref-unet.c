/* at-ref-unet.c: the Stable Diffusion UNet on the CPU, plain and slow. */
#include "ref/at-ref-unet.h"

#include <math.h>
#include <string.h>

#include "ref/at-ref-attention.h"
#include "ref/at-ref-elementwise.h"
#include "ref/at-ref-matmul.h"
#include "ref/at-ref-norm.h"
#include "ref/at-ref-quant.h"
#include "ref/at-ref.h"

#define GN_GROUPS 32
#define GN_EPS 1e-5f
#define ST_GN_EPS 1e-6f
#define LN_EPS 1e-5f
#define TIME_MAX_PERIOD 10000

static float *
to_f32 (const AtSafetensorsTensor *t)
{
  float *values = g_new (float, t->n_elements);

  at_ref_dequantize_row (t->type, t->data, values, t->n_elements);
  return values;
}

/* A [w, h, c, n] image. */
typedef struct
{
  gint64 ne[4];
  float *data;
} Image;

static Image
image_new (gint64 w, gint64 h, gint64 c, gint64 n)
{
  Image im = { { w, h, c, n }, g_new0 (float, w *h *c *n) };

  return im;
}

static gint64
image_size (const Image *im)
{
  return im->ne[0] * im->ne[1] * im->ne[2] * im->ne[3];
}

/* dst = conv (x) + bias; a [C, C] matrix (SD 2.x's Linear proj_in) is the 1x1 conv. */
static Image
conv (const AtSafetensorsTensor *w, const AtSafetensorsTensor *b, const Image *x, int stride,
      int padding)
{
  const gint64 w_ne[4]
      = { w->n_dims == 2 ? 1 : w->ne[0], w->n_dims == 2 ? 1 : w->ne[1],
          w->n_dims == 2 ? w->ne[0] : w->ne[2], w->n_dims == 2 ? w->ne[1] : w->ne[3] };
  g_autofree float *wf = to_f32 (w);
  g_autofree float *bf = to_f32 (b);
  Image out = image_new ((x->ne[0] + 2 * padding - w_ne[0]) / stride + 1,
                         (x->ne[1] + 2 * padding - w_ne[1]) / stride + 1, w_ne[3], x->ne[3]);

  at_ref_conv2d (wf, w_ne, bf, x->data, x->ne, out.data, stride, padding);
  return out;
}

static Image
group_norm (const AtSafetensorsTensor *w, const AtSafetensorsTensor *b, const Image *x, float eps,
            gboolean silu)
{
  g_autofree float *wf = to_f32 (w);
  g_autofree float *bf = to_f32 (b);
  Image out = image_new (x->ne[0], x->ne[1], x->ne[2], x->ne[3]);

  at_ref_group_norm (x->data, x->ne, wf, bf, GN_GROUPS, eps, silu, out.data);
  return out;
}

/* dst [m, cols] = w x (+ bias) for x [k, cols]; w [k, m] (or a [1, 1, k, m] conv). */
static float *
linear (const AtSafetensorsTensor *w, const AtSafetensorsTensor *bias, const float *x, gint64 cols)
{
  const gint64 k = w->n_dims == 2 ? w->ne[0] : w->ne[2], m = w->n_dims == 2 ? w->ne[1] : w->ne[3];
  g_autofree float *wf = to_f32 (w);
  float *dst = g_new (float, m *cols);

  at_ref_mul_mat (wf, x, dst, k, m, cols);
  if (bias != NULL)
    {
      g_autofree float *bf = to_f32 (bias);
      const gint64 ne[4] = { m, cols, 1, 1 }, b_ne[4] = { m, 1, 1, 1 };

      at_ref_add (dst, ne, bf, b_ne, dst);
    }
  return dst;
}

static void
add_in_place (float *x, const float *y, gint64 n)
{
  const gint64 ne[4] = { n, 1, 1, 1 };

  at_ref_add (x, ne, y, ne, x);
}

static Image
res_block (const AtUnetResTensors *r, const Image *x, const float *emb)
{
  const gint64 n = x->ne[3];
  const gint64 e_ne[4] = { 1, 1, r->c_out, n };
  Image t = group_norm (r->in_norm_w, r->in_norm_b, x, GN_EPS, TRUE);
  Image h = conv (r->in_conv_w, r->in_conv_b, &t, 1, 1);
  g_autofree float *e = linear (r->emb_w, r->emb_b, emb, n);
  Image out;

  at_ref_add (h.data, h.ne, e, e_ne, h.data);
  g_free (t.data);
  t = group_norm (r->out_norm_w, r->out_norm_b, &h, GN_EPS, TRUE);
  out = conv (r->out_conv_w, r->out_conv_b, &t, 1, 1);
  if (r->skip_w != NULL)
    {
      Image skip = conv (r->skip_w, r->skip_b, x, 1, 0);

      add_in_place (out.data, skip.data, image_size (&out));
      g_free (skip.data);
    }
  else
    add_in_place (out.data, x->data, image_size (&out));
  g_free (t.data);
  g_free (h.data);
  return out;
}

/* [c, n_tok] (tokens outermost) to [n_head][n_tok][head_dim]. */
static void
split_heads (const float *src, gint64 c, gint64 head_dim, gint64 n_tok, float *dst)
{
  for (gint64 t = 0; t < n_tok; t++)
    for (gint64 h = 0; h < c / head_dim; h++)
      memcpy (dst + (h * n_tok + t) * head_dim, src + t * c + h * head_dim,
              head_dim * sizeof (float));
}

/* tok += to_out (attention (xn, kv)) with xn [c, n_q, n], kv [kv_dim, n_kv, n]. */
static void
attention (const AtUnetAttnTensors *a, gint64 c, gint64 head_dim, const float *xn, const float *kv,
           gint64 n_q, gint64 n_kv, gint64 n, float *tok)
{
  const AtRefAttnShape shape = {
    head_dim, n_q, n_kv, c / head_dim, c / head_dim, 1.0 / sqrt ((double)head_dim), FALSE, 0
  };
  g_autofree float *q = linear (a->q, NULL, xn, n_q * n);
  g_autofree float *k = linear (a->k, NULL, kv, n_kv * n);
  g_autofree float *v = linear (a->v, NULL, kv, n_kv * n);
  g_autofree float *qh = g_new (float, c *n_q), *kh = g_new (float, c *n_kv);
  g_autofree float *vh = g_new (float, c *n_kv), *att = g_new (float, c *n_q *n);
  g_autofree float *out = NULL;

  for (gint64 s = 0; s < n; s++)
    {
      split_heads (q + s * c * n_q, c, head_dim, n_q, qh);
      split_heads (k + s * c * n_kv, c, head_dim, n_kv, kh);
      split_heads (v + s * c * n_kv, c, head_dim, n_kv, vh);
      at_ref_flash_attn (&shape, qh, kh, vh, NULL, att + s * c * n_q);
    }
  out = linear (a->out_w, a->out_b, att, n_q * n);
  add_in_place (tok, out, c * n_q * n);
}

static void
layer_norm (const AtSafetensorsTensor *w, const AtSafetensorsTensor *b, const float *x, gint64 c,
            gint64 cols, float *dst)
{
  g_autofree float *wf = to_f32 (w);
  g_autofree float *bf = to_f32 (b);

  at_ref_layer_norm (x, c, cols, wf, bf, LN_EPS, dst);
}

static void
feed_forward (const AtUnetTransformerTensors *t, gint64 c, const float *xn, gint64 cols, float *tok)
{
  g_autofree float *ff = linear (t->ff_proj_w, t->ff_proj_b, xn, cols);
  g_autofree float *glu = g_new (float, 4 * c * cols);
  g_autofree float *out = NULL;

  /* GEGLU: each token's first half is the value, its second half the gate. */
  for (gint64 j = 0; j < cols; j++)
    at_ref_glu (AT_GLU_GEGLU, ff + j * 8 * c, ff + j * 8 * c + 4 * c, 4 * c, glu + j * 4 * c);
  out = linear (t->ff_out_w, t->ff_out_b, glu, cols);
  add_in_place (tok, out, c * cols);
}

/* x += proj_out (blocks (proj_in (GN (x)))), in place. */
static void
spatial_transformer (const AtUnetSpatialTensors *s, int depth, Image *x, const float *context,
                     gint64 n_ctx)
{
  const gint64 c = s->channels, hw = x->ne[0] * x->ne[1], n = x->ne[3], cols = hw * n;
  Image t = group_norm (s->norm_w, s->norm_b, x, ST_GN_EPS, FALSE);
  Image p = conv (s->proj_in_w, s->proj_in_b, &t, 1, 0);
  g_autofree float *tok = g_new (float, c *cols), *xn = g_new (float, c *cols);
  g_autofree float *y = NULL;

  for (gint64 i = 0; i < n; i++)
    for (gint64 ch = 0; ch < c; ch++)
      for (gint64 j = 0; j < hw; j++)
        tok[(i * hw + j) * c + ch] = p.data[(i * c + ch) * hw + j];
  for (int d = 0; d < depth; d++)
    {
      const AtUnetTransformerTensors *b = &s->blocks[d];

      layer_norm (b->norm1_w, b->norm1_b, tok, c, cols, xn);
      attention (&b->attn1, c, s->head_dim, xn, xn, hw, hw, n, tok);
      layer_norm (b->norm2_w, b->norm2_b, tok, c, cols, xn);
      attention (&b->attn2, c, s->head_dim, xn, context, hw, n_ctx, n, tok);
      layer_norm (b->norm3_w, b->norm3_b, tok, c, cols, xn);
      feed_forward (b, c, xn, cols, tok);
    }
  y = linear (s->proj_out_w, s->proj_out_b, tok, cols);
  for (gint64 i = 0; i < n; i++)
    for (gint64 ch = 0; ch < c; ch++)
      for (gint64 j = 0; j < hw; j++)
        x->data[(i * c + ch) * hw + j] += y[(i * hw + j) * c + ch];
  g_free (t.data);
  g_free (p.data);
}

/* SiLU (time_embed (timestep_embedding (t))) [emb_dim, n]. */
static float *
time_embedding (const AtUnetFile *file, const float *timesteps, gint64 n)
{
  const gint64 mc = file->hp.model_channels, emb_dim = file->time_embed0_w->ne[1];
  g_autofree float *temb = g_new (float, mc *n);
  g_autofree float *hidden = NULL;
  float *emb;

  at_ref_timestep_embedding (timesteps, n, (int)mc, TIME_MAX_PERIOD, temb);
  hidden = linear (file->time_embed0_w, file->time_embed0_b, temb, n);
  at_ref_unary (AT_UNARY_SILU, hidden, emb_dim * n, hidden);
  emb = linear (file->time_embed2_w, file->time_embed2_b, hidden, n);
  at_ref_unary (AT_UNARY_SILU, emb, emb_dim * n, emb);
  return emb;
}

/* Runs one block on h (replaced by the block's output); up_to is the size an Upsample
 * meets. */
static void
block (const AtUnetFile *file, const AtUnetBlockTensors *b, Image *h, const float *emb,
       const float *context, gint64 n_ctx, const Image *up_to)
{
  Image next;

  if (b->down_w != NULL)
    {
      next = conv (b->down_w, b->down_b, h, 2, 1);
      g_free (h->data);
      *h = next;
    }
  if (b->has_res)
    {
      next = res_block (&b->res, h, emb);
      g_free (h->data);
      *h = next;
    }
  if (b->has_attn)
    spatial_transformer (&b->attn, file->hp.transformer_depth, h, context, n_ctx);
  if (b->up_w != NULL)
    {
      Image up = image_new (up_to->ne[0], up_to->ne[1], h->ne[2], h->ne[3]);

      at_ref_upscale_nearest_to (h->data, h->ne, up.ne[0], up.ne[1], up.data);
      next = conv (b->up_w, b->up_b, &up, 1, 1);
      g_free (up.data);
      g_free (h->data);
      *h = next;
    }
}

static Image
image_copy (const Image *im)
{
  Image copy = *im;

  copy.data = g_memdup2 (im->data, image_size (im) * sizeof (float));
  return copy;
}

void
at_ref_unet_forward (const AtUnetFile *file, const float *x, gint64 width, gint64 height, gint64 n,
                     const float *timesteps, const float *context, gint64 n_ctx, float *out)
{
  const AtUnetHParams *hp = &file->hp;
  g_autofree float *emb = time_embedding (file, timesteps, n);
  g_autofree Image *skips = g_new (Image, file->n_input_blocks);
  Image input = { { width, height, hp->in_channels, n }, (float *)x };
  Image h, t, result;
  int n_skips = 0;

  h = conv (file->conv_in_w, file->conv_in_b, &input, 1, 1);
  skips[n_skips++] = image_copy (&h);
  for (int k = 1; k < file->n_input_blocks; k++)
    {
      block (file, &file->input_blocks[k], &h, emb, context, n_ctx, NULL);
      skips[n_skips++] = image_copy (&h);
    }
  for (int k = 0; k < 3; k++)
    block (file, &file->middle[k], &h, emb, context, n_ctx, NULL);
  for (int k = 0; k < file->n_output_blocks; k++)
    {
      Image skip = skips[--n_skips];
      Image cat = image_new (h.ne[0], h.ne[1], h.ne[2] + skip.ne[2], n);

      at_ref_concat (h.data, h.ne, skip.data, skip.ne, 2, cat.data);
      g_free (h.data);
      g_free (skip.data);
      h = cat;
      block (file, &file->output_blocks[k], &h, emb, context, n_ctx,
             n_skips > 0 ? &skips[n_skips - 1] : NULL);
    }
  t = group_norm (file->out_norm_w, file->out_norm_b, &h, GN_EPS, TRUE);
  result = conv (file->out_conv_w, file->out_conv_b, &t, 1, 1);
  memcpy (out, result.data, image_size (&result) * sizeof (float));
  g_free (result.data);
  g_free (t.data);
  g_free (h.data);
}

void
at_ref_unet_forward_block (const AtUnetFile *file, int index, gboolean attention, const float *x,
                           gint64 width, gint64 height, gint64 n, const float *timesteps,
                           const float *context, gint64 n_ctx, float *out)
{
  const AtUnetBlockTensors *b = &file->input_blocks[index];
  const gint64 c_in = attention ? b->attn.channels : b->res.c_in;
  g_autofree float *emb = time_embedding (file, timesteps, n);
  Image input = { { width, height, c_in, n }, (float *)x };
  Image h = image_copy (&input);

  if (attention)
    spatial_transformer (&b->attn, file->hp.transformer_depth, &h, context, n_ctx);
  else
    {
      Image next = res_block (&b->res, &h, emb);

      g_free (h.data);
      h = next;
    }
  memcpy (out, h.data, image_size (&h) * sizeof (float));
  g_free (h.data);
}
