/* at-ref-vae.c: the SD VAE on the CPU, plain and slow: one image, no tiles. */
#include "ref/at-ref-vae.h"

#include <math.h>
#include <string.h>

#include "ref/at-ref-attention.h"
#include "ref/at-ref-elementwise.h"
#include "ref/at-ref-matmul.h"
#include "ref/at-ref-norm.h"
#include "ref/at-ref-quant.h"
#include "ref/at-ref.h"

#define GN_GROUPS 32
#define GN_EPS 1e-6f

static float *
to_f32 (const AtSafetensorsTensor *t)
{
  float *values = g_new (float, t->n_elements);

  at_ref_dequantize_row (t->type, t->data, values, t->n_elements);
  return values;
}

/* dst [w, h, c_out] = conv of x [w, h, c_in], stride 1, "same" padding. */
static void
conv (const AtVaeTensorPair *p, const float *x, gint64 w, gint64 h, float *dst)
{
  g_autofree float *wf = to_f32 (p->w);
  g_autofree float *bf = to_f32 (p->b);
  const gint64 x_ne[4] = { w, h, p->w->ne[2], 1 };

  at_ref_conv2d (wf, p->w->ne, bf, x, x_ne, dst, 1, (int)(p->w->ne[0] - 1) / 2);
}

static void
norm (const AtVaeTensorPair *p, const float *x, gint64 w, gint64 h, gboolean silu, float *dst)
{
  g_autofree float *wf = to_f32 (p->w);
  g_autofree float *bf = to_f32 (p->b);
  const gint64 ne[4] = { w, h, p->w->ne[0], 1 };

  at_ref_group_norm (x, ne, wf, bf, GN_GROUPS, GN_EPS, silu, dst);
}

static void
add (float *x, const float *y, gint64 n)
{
  const gint64 ne[4] = { n, 1, 1, 1 };

  at_ref_add (x, ne, y, ne, x);
}

/* x [w, h, c_in] to out [w, h, c_out] (out may be x when the widths agree). */
static void
resnet (const AtVaeResnetTensors *r, const float *x, gint64 w, gint64 h, float *out)
{
  const gint64 n = w * h;
  g_autofree float *a = g_new (float, n *MAX (r->c_in, r->c_out));
  g_autofree float *b = g_new (float, n * r->c_out);
  g_autofree float *shortcut = g_new (float, n * r->c_out);

  norm (&r->norm1, x, w, h, TRUE, a);
  conv (&r->conv1, a, w, h, b);
  norm (&r->norm2, b, w, h, TRUE, a);
  conv (&r->conv2, a, w, h, b);
  if (r->nin_shortcut.w != NULL)
    conv (&r->nin_shortcut, x, w, h, shortcut);
  else
    memcpy (shortcut, x, n * r->c_out * sizeof (float));
  add (shortcut, b, n * r->c_out);
  memcpy (out, shortcut, n * r->c_out * sizeof (float));
}

/* dst [c, n] = W src + b for src [c, n] (channels innermost) and the projection's
 * [C_in, C_out] weights (a 1x1 conv's are the same numbers). */
static void
project (const AtVaeTensorPair *p, const float *src, gint64 c, gint64 n, float *dst)
{
  g_autofree float *wf = to_f32 (p->w);
  g_autofree float *bf = to_f32 (p->b);
  const gint64 ne[4] = { c, n, 1, 1 }, b_ne[4] = { c, 1, 1, 1 };

  at_ref_mul_mat (wf, src, dst, c, c, n);
  at_ref_add (dst, ne, bf, b_ne, dst);
}

/* [rows, cols] to [cols, rows]. */
static void
transpose (const float *src, gint64 rows, gint64 cols, float *dst)
{
  for (gint64 r = 0; r < rows; r++)
    for (gint64 c = 0; c < cols; c++)
      dst[c * rows + r] = src[r * cols + c];
}

/* In place on x [w, h, c]: one head of c channels over all w h positions, through the
 * reference flash attention. */
static void
attention (const AtVaeAttnTensors *a, float *x, gint64 w, gint64 h)
{
  const gint64 c = a->norm.w->ne[0], n = w * h;
  const AtRefAttnShape shape = { c, n, n, 1, 1, 1.0 / sqrt ((double)c), FALSE, 0 };
  g_autofree float *xn = g_new (float, n *c), *xt = g_new (float, n *c);
  g_autofree float *q = g_new (float, n *c), *k = g_new (float, n *c);
  g_autofree float *v = g_new (float, n *c), *att = g_new (float, n *c);

  norm (&a->norm, x, w, h, FALSE, xn);
  transpose (xn, c, n, xt);
  project (&a->q, xt, c, n, q);
  project (&a->k, xt, c, n, k);
  project (&a->v, xt, c, n, v);
  at_ref_flash_attn (&shape, q, k, v, NULL, att);
  project (&a->proj_out, att, c, n, q);
  transpose (q, n, c, xn);
  add (x, xn, n * c);
}

static void
mid (const AtVaeCoderTensors *t, float *x, gint64 w, gint64 h)
{
  resnet (&t->mid_block_1, x, w, h, x);
  attention (&t->mid_attn_1, x, w, h);
  resnet (&t->mid_block_2, x, w, h, x);
}

/* Room for the widest activation of either coder over a latent of n pixels, at the
 * highest resolution (generous). */
static gsize
scratch_size (const AtVaeFile *file, gint64 n)
{
  const AtVaeHParams *hp = &file->hp;
  gint64 most = 2 * MAX (hp->z_channels, file->decoder.conv_in.w->ne[2]);

  for (int i = 0; i < hp->n_levels; i++)
    most = MAX (most, hp->level_channels[i]);
  return (gsize)n * ((gint64)1 << (2 * (hp->n_levels - 1))) * most;
}

void
at_ref_vae_decode (const AtVaeFile *file, const float *latent, gint64 width, gint64 height,
                   float *rgb)
{
  const AtVaeCoderTensors *d = &file->decoder;
  const AtVaeHParams *hp = &file->hp;
  const gsize size = scratch_size (file, width * height);
  g_autofree float *x = g_new (float, size), *t = g_new (float, size);
  gint64 w = width, h = height;

  conv (&d->quant, latent, w, h, t);
  conv (&d->conv_in, t, w, h, x);
  mid (d, x, w, h);
  for (int i = hp->n_levels - 1; i >= 0; i--)
    {
      for (int j = 0; j < d->blocks_per_level; j++)
        resnet (&d->blocks[i * d->blocks_per_level + j], x, w, h, x);
      if (i > 0)
        {
          const gint64 ne[4] = { w, h, hp->level_channels[i], 1 };

          at_ref_upscale_nearest (x, ne, 2, t);
          w *= 2, h *= 2;
          conv (&d->resample[i], t, w, h, x);
        }
    }
  norm (&d->norm_out, x, w, h, TRUE, t);
  conv (&d->conv_out, t, w, h, rgb);
}

void
at_ref_vae_encode (const AtVaeFile *file, const float *rgb, gint64 width, gint64 height,
                   const float *noise, float *latent)
{
  const AtVaeCoderTensors *e = &file->encoder;
  const AtVaeHParams *hp = &file->hp;
  const gint64 ds = hp->downscale, z = hp->z_channels;
  const gint64 n = (width / ds) * (height / ds);
  const gsize size = scratch_size (file, n);
  g_autofree float *x = g_new (float, size), *t = g_new (float, size);
  gint64 w = width, h = height;

  conv (&e->conv_in, rgb, w, h, x);
  for (int i = 0; i < hp->n_levels; i++)
    {
      for (int j = 0; j < e->blocks_per_level; j++)
        resnet (&e->blocks[i * e->blocks_per_level + j], x, w, h, x);
      if (i < hp->n_levels - 1)
        {
          g_autofree float *wf = to_f32 (e->resample[i].w);
          g_autofree float *bf = to_f32 (e->resample[i].b);
          const gint64 ne[4] = { w, h, hp->level_channels[i], 1 };

          at_ref_conv2d_padded (wf, e->resample[i].w->ne, bf, x, ne, t, 2, 0, 1);
          w /= 2, h /= 2;
          memcpy (x, t, (gsize)w * h * hp->level_channels[i] * sizeof (float));
        }
    }
  mid (e, x, w, h);
  norm (&e->norm_out, x, w, h, TRUE, t);
  conv (&e->conv_out, t, w, h, x);
  conv (&e->quant, x, w, h, t);
  for (gint64 i = 0; i < n * z; i++)
    latent[i] = noise == NULL
                    ? t[i]
                    : (float)(t[i] + exp (0.5 * CLAMP (t[n * z + i], -30.0f, 20.0f)) * noise[i]);
}

void
at_ref_vae_block (const AtVaeFile *file, const char *name, const float *x, gint64 width,
                  gint64 height, float *out)
{
  gboolean decoder;
  int level, index;
  const AtVaeCoderTensors *t;

  if (!at_vae_block_locate (&file->hp, name, &decoder, &level, &index))
    g_return_if_reached ();
  t = decoder ? &file->decoder : &file->encoder;
  if (level >= 0)
    resnet (&t->blocks[level * t->blocks_per_level + index], x, width, height, out);
  else if (index != 1)
    resnet (index == 0 ? &t->mid_block_1 : &t->mid_block_2, x, width, height, out);
  else
    {
      const gint64 c = t->mid_attn_1.norm.w->ne[0];

      memcpy (out, x, (gsize)width * height * c * sizeof (float));
      attention (&t->mid_attn_1, out, width, height);
    }
}
