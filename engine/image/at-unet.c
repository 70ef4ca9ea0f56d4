/* at-unet.c: the Stable Diffusion UNet's tensors, weights and forward pass on the GPU. */
#include "image/at-unet.h"

#include <math.h>
#include <string.h>

#include "at-error.h"
#include "ops/at-ops-attention.h"
#include "ops/at-ops-elementwise.h"
#include "ops/at-ops-matmul.h"
#include "ops/at-ops-norm.h"
#include "ref/at-ref.h"

#define PREFIX "model.diffusion_model."

/* ldm's normalization(): GroupNorm32 with PyTorch's eps; the SpatialTransformer's own
 * GroupNorm has eps 1e-6; the transformer blocks' LayerNorms PyTorch's 1e-5. */
#define GN_GROUPS 32
#define GN_EPS 1e-5f
#define ST_GN_EPS 1e-6f
#define LN_EPS 1e-5f
#define TIME_MAX_PERIOD 10000
/* SD 1.x: num_heads = 8; SD 2.x: num_head_channels = 64. */
#define SD1_HEADS 8
#define SD2_HEAD_DIM 64
/* at_op_flash_attn's head sizes. */
#define MAX_HEAD_DIM 256

/* --- Tensors of the file ----------------------------------------------------------- */

/* Finds tensors one after the other; after the first failure the rest return NULL at
 * once and error holds what went wrong. */
typedef struct
{
  AtSafetensors *st;
  GError **error;
  gboolean ok;
} Finder;

static void
describe_shape (GString *out, guint n_dims, const gint64 *ne)
{
  for (guint i = 0; i < n_dims; i++)
    g_string_append_printf (out, "%s%" G_GINT64_FORMAT, i ? ", " : "", ne[i]);
}

/* PREFIX + block + name with shape ne[0..n_dims) (ggml order: a conv weight is [kw, kh,
 * c_in, c_out]). */
static const AtSafetensorsTensor *
find (Finder *f, const char *block, const char *name, guint n_dims, gint64 ne0, gint64 ne1,
      gint64 ne2, gint64 ne3)
{
  const gint64 ne[4] = { ne0, ne1, ne2, ne3 };
  g_autofree char *full = g_strconcat (PREFIX, block, name, NULL);
  const AtSafetensorsTensor *t;
  gboolean same;

  if (!f->ok)
    return NULL;
  t = at_safetensors_lookup (f->st, full);
  if (t == NULL)
    {
      g_set_error (f->error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: tensor '%s' is missing",
                   at_safetensors_get_name (f->st), full);
      f->ok = FALSE;
      return NULL;
    }
  same = t->n_dims == n_dims;
  for (guint i = 0; same && i < n_dims; i++)
    same = t->ne[i] == ne[i];
  if (!same)
    {
      g_autoptr (GString) got = g_string_new (NULL);
      g_autoptr (GString) want = g_string_new (NULL);

      describe_shape (got, t->n_dims, t->ne);
      describe_shape (want, n_dims, ne);
      g_set_error (f->error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: tensor '%s' is [%s], expected [%s]", at_safetensors_get_name (f->st), full,
                   got->str, want->str);
      f->ok = FALSE;
      return NULL;
    }
  if (!at_safetensors_tensor_check_supported (f->st, t, f->error))
    {
      f->ok = FALSE;
      return NULL;
    }
  return t;
}

static const AtSafetensorsTensor *
find_vector (Finder *f, const char *block, const char *name, gint64 n)
{
  return find (f, block, name, 1, n, 1, 1, 1);
}

static const AtSafetensorsTensor *
find_matrix (Finder *f, const char *block, const char *name, gint64 k, gint64 m)
{
  return find (f, block, name, 2, k, m, 1, 1);
}

static const AtSafetensorsTensor *
find_conv (Finder *f, const char *block, const char *name, gint64 kernel, gint64 c_in, gint64 c_out)
{
  return find (f, block, name, 4, kernel, kernel, c_in, c_out);
}

static gboolean
has (AtSafetensors *st, const char *block, const char *name)
{
  g_autofree char *full = g_strconcat (PREFIX, block, name, NULL);

  return at_safetensors_lookup (st, full) != NULL;
}

/* A tensor read for the hyper-parameters: present with n_dims dimensions. */
static const AtSafetensorsTensor *
shape_of (Finder *f, const char *block, const char *name, guint n_dims)
{
  g_autofree char *full = g_strconcat (PREFIX, block, name, NULL);
  const AtSafetensorsTensor *t;

  if (!f->ok)
    return NULL;
  t = at_safetensors_lookup (f->st, full);
  if (t == NULL || t->n_dims != n_dims)
    {
      g_set_error (f->error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   t == NULL ? "%s: tensor '%s' is missing"
                             : "%s: tensor '%s' does not have the dimensions of a UNet's",
                   at_safetensors_get_name (f->st), full);
      f->ok = FALSE;
      return NULL;
    }
  return t;
}

static void
find_res (Finder *f, const char *block, gint64 c_in, gint64 c_out, gint64 emb_dim,
          AtUnetResTensors *r)
{
  r->c_in = c_in;
  r->c_out = c_out;
  r->in_norm_w = find_vector (f, block, "in_layers.0.weight", c_in);
  r->in_norm_b = find_vector (f, block, "in_layers.0.bias", c_in);
  r->in_conv_w = find_conv (f, block, "in_layers.2.weight", 3, c_in, c_out);
  r->in_conv_b = find_vector (f, block, "in_layers.2.bias", c_out);
  r->emb_w = find_matrix (f, block, "emb_layers.1.weight", emb_dim, c_out);
  r->emb_b = find_vector (f, block, "emb_layers.1.bias", c_out);
  r->out_norm_w = find_vector (f, block, "out_layers.0.weight", c_out);
  r->out_norm_b = find_vector (f, block, "out_layers.0.bias", c_out);
  r->out_conv_w = find_conv (f, block, "out_layers.3.weight", 3, c_out, c_out);
  r->out_conv_b = find_vector (f, block, "out_layers.3.bias", c_out);
  if (c_in != c_out)
    {
      r->skip_w = find_conv (f, block, "skip_connection.weight", 1, c_in, c_out);
      r->skip_b = find_vector (f, block, "skip_connection.bias", c_out);
    }
}

static void
find_attn (Finder *f, const char *block, const char *attn, gint64 c, gint64 kv_dim,
           AtUnetAttnTensors *a)
{
  g_autofree char *q = g_strconcat (attn, ".to_q.weight", NULL);
  g_autofree char *k = g_strconcat (attn, ".to_k.weight", NULL);
  g_autofree char *v = g_strconcat (attn, ".to_v.weight", NULL);
  g_autofree char *out_w = g_strconcat (attn, ".to_out.0.weight", NULL);
  g_autofree char *out_b = g_strconcat (attn, ".to_out.0.bias", NULL);

  a->q = find_matrix (f, block, q, c, c);
  a->k = find_matrix (f, block, k, kv_dim, c);
  a->v = find_matrix (f, block, v, kv_dim, c);
  a->out_w = find_matrix (f, block, out_w, c, c);
  a->out_b = find_vector (f, block, out_b, c);
}

/* proj_in / proj_out: a Linear [C, C] (SD 2.x) or a 1x1 conv [1, 1, C, C]. */
static const AtSafetensorsTensor *
find_projection (Finder *f, const char *block, const char *name, gint64 c, gboolean linear)
{
  return linear ? find_matrix (f, block, name, c, c) : find_conv (f, block, name, 1, c, c);
}

static void
find_spatial (Finder *f, const char *block, const AtUnetHParams *hp, gint64 c, gint64 head_dim,
              AtUnetSpatialTensors *s)
{
  s->channels = c;
  s->head_dim = head_dim;
  s->norm_w = find_vector (f, block, "norm.weight", c);
  s->norm_b = find_vector (f, block, "norm.bias", c);
  s->proj_in_w = find_projection (f, block, "proj_in.weight", c, hp->linear_proj);
  s->proj_in_b = find_vector (f, block, "proj_in.bias", c);
  s->proj_out_w = find_projection (f, block, "proj_out.weight", c, hp->linear_proj);
  s->proj_out_b = find_vector (f, block, "proj_out.bias", c);
  s->blocks = g_new0 (AtUnetTransformerTensors, hp->transformer_depth);
  for (int d = 0; d < hp->transformer_depth; d++)
    {
      AtUnetTransformerTensors *t = &s->blocks[d];
      g_autofree char *tb = g_strdup_printf ("%stransformer_blocks.%d.", block, d);

      t->norm1_w = find_vector (f, tb, "norm1.weight", c);
      t->norm1_b = find_vector (f, tb, "norm1.bias", c);
      find_attn (f, tb, "attn1", c, c, &t->attn1);
      t->norm2_w = find_vector (f, tb, "norm2.weight", c);
      t->norm2_b = find_vector (f, tb, "norm2.bias", c);
      find_attn (f, tb, "attn2", c, hp->context_dim, &t->attn2);
      t->norm3_w = find_vector (f, tb, "norm3.weight", c);
      t->norm3_b = find_vector (f, tb, "norm3.bias", c);
      t->ff_proj_w = find_matrix (f, tb, "ff.net.0.proj.weight", c, 8 * c);
      t->ff_proj_b = find_vector (f, tb, "ff.net.0.proj.bias", 8 * c);
      t->ff_out_w = find_matrix (f, tb, "ff.net.2.weight", 4 * c, c);
      t->ff_out_b = find_vector (f, tb, "ff.net.2.bias", c);
    }
  /* Every SpatialTransformer of SD 1.x / 2.x has the middle block's depth; a deeper one
   * would be cut short without a word. */
  if (f->ok)
    {
      g_autofree char *next
          = g_strdup_printf ("transformer_blocks.%d.norm1.weight", hp->transformer_depth);

      if (has (f->st, block, next))
        {
          g_set_error (f->error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                       "%s: '%s%s' has more transformer blocks than the middle block's %d",
                       at_safetensors_get_name (f->st), PREFIX, block, hp->transformer_depth);
          f->ok = FALSE;
        }
    }
}

static gboolean fail (Finder *f, int code, const char *format, ...) G_GNUC_PRINTF (3, 4);

/* Sets the error (the file's name, then the message) and stops the finder. */
static gboolean
fail (Finder *f, int code, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  if (f->ok)
    g_set_error (f->error, AT_ERROR, code, "%s: %s", at_safetensors_get_name (f->st), message);
  f->ok = FALSE;
  return FALSE;
}

/* The levels: input_blocks.1.. are ResBlocks (with a SpatialTransformer at .1 where the
 * level has attention) and, between levels, a Downsample (.0.op). */
static gboolean
read_levels (Finder *f, AtUnetHParams *hp, int *n_input_blocks)
{
  int level = 0, in_level = 0, k;

  for (k = 1;; k++)
    {
      g_autofree char *block = g_strdup_printf ("input_blocks.%d.", k);
      const AtSafetensorsTensor *conv;

      if (has (f->st, block, "0.op.weight"))
        {
          if (in_level == 0 || (level > 0 && in_level != hp->n_res_blocks))
            return fail (f, AT_ERROR_INVALID_FILE,
                         "level %d of the UNet has %d ResBlocks, level 0 has %d", level, in_level,
                         hp->n_res_blocks);
          if (++level >= AT_UNET_MAX_LEVELS)
            return fail (f, AT_ERROR_UNSUPPORTED, "the UNet has more than %d levels",
                         AT_UNET_MAX_LEVELS);
          in_level = 0;
          continue;
        }
      if (!has (f->st, block, "0.in_layers.2.weight"))
        break;
      if (!(conv = shape_of (f, block, "0.in_layers.2.weight", 4)))
        return FALSE;
      if (in_level == 0)
        {
          hp->level_channels[level] = conv->ne[3];
          hp->level_attention[level] = has (f->st, block, "1.proj_in.weight");
        }
      if (level == 0)
        hp->n_res_blocks++;
      in_level++;
    }
  /* The walk stops at the first block without a ResBlock: a short last level (or none)
   * means that block's tensors are missing. */
  if (in_level < hp->n_res_blocks || hp->n_res_blocks == 0)
    return fail (f, AT_ERROR_INVALID_FILE,
                 "tensor '%sinput_blocks.%d.0.in_layers.2.weight' is missing", PREFIX, k);
  if (in_level > hp->n_res_blocks)
    return fail (f, AT_ERROR_INVALID_FILE, "the UNet's last level has %d ResBlocks, level 0 has %d",
                 in_level, hp->n_res_blocks);
  hp->n_levels = level + 1;
  *n_input_blocks = k;
  return TRUE;
}

static gboolean
read_hparams (Finder *f, const AtSdCheckpointInfo *info, AtUnetHParams *hp, gint64 *emb_dim,
              int *n_input_blocks)
{
  const AtSafetensorsTensor *conv_in, *time_embed, *out, *to_k, *proj_in;
  g_autofree char *proj_in_name = g_strconcat (PREFIX, "middle_block.1.proj_in.weight", NULL);

  if (has (f->st, "", "label_emb.0.0.weight"))
    return fail (f, AT_ERROR_UNSUPPORTED,
                 "class-conditioned UNets (unCLIP, SDXL-style label_emb) are not supported");
  if (!(conv_in = shape_of (f, "input_blocks.0.0.", "weight", 4))
      || !(time_embed = shape_of (f, "time_embed.0.", "weight", 2))
      || !(out = shape_of (f, "out.2.", "weight", 4))
      || !(to_k = shape_of (f, "middle_block.1.transformer_blocks.0.", "attn2.to_k.weight", 2))
      || !shape_of (f, "middle_block.1.transformer_blocks.0.", "norm1.weight", 1))
    return FALSE;
  hp->in_channels = conv_in->ne[2];
  hp->model_channels = conv_in->ne[3];
  hp->out_channels = out->ne[3];
  hp->context_dim = to_k->ne[0];
  *emb_dim = time_embed->ne[1];
  proj_in = at_safetensors_lookup (f->st, proj_in_name);
  hp->linear_proj = proj_in != NULL && proj_in->n_dims == 2;
  while (TRUE)
    {
      g_autofree char *name
          = g_strdup_printf ("transformer_blocks.%d.norm1.weight", hp->transformer_depth);

      if (!has (f->st, "middle_block.1.", name))
        break;
      hp->transformer_depth++;
    }
  if (!read_levels (f, hp, n_input_blocks))
    return FALSE;
  for (int l = 0; l < hp->n_levels; l++)
    {
      const gint64 c = hp->level_channels[l];
      const gint64 head_dim = info->family == AT_SD_FAMILY_SD2 ? SD2_HEAD_DIM : c / SD1_HEADS;

      if (c % GN_GROUPS != 0)
        return fail (f, AT_ERROR_INVALID_FILE,
                     "level %d has %" G_GINT64_FORMAT " channels, not groups of %d", l, c,
                     GN_GROUPS);
      hp->head_dim_per_level[l] = head_dim;
      /* The middle block attends at the last level. */
      if ((hp->level_attention[l] || l == hp->n_levels - 1)
          && (c % head_dim != 0 || head_dim % 8 != 0 || head_dim > MAX_HEAD_DIM))
        return fail (f, AT_ERROR_UNSUPPORTED,
                     "level %d: %" G_GINT64_FORMAT " channels in heads of %" G_GINT64_FORMAT
                     " (%s) do not fit the attention kernel (heads of a multiple of 8 up to %d)",
                     l, c, head_dim, at_sd_family_name (info->family), MAX_HEAD_DIM);
    }
  return TRUE;
}

static void
find_block_parts (Finder *f, const char *block, const AtUnetHParams *hp, int level, gint64 c_in,
                  gint64 emb_dim, AtUnetBlockTensors *b)
{
  const gint64 c = hp->level_channels[level];
  g_autofree char *res = g_strconcat (block, "0.", NULL);
  g_autofree char *attn = g_strconcat (block, "1.", NULL);

  b->level = level;
  b->has_res = TRUE;
  find_res (f, res, c_in, c, emb_dim, &b->res);
  b->has_attn = hp->level_attention[level];
  if (b->has_attn)
    find_spatial (f, attn, hp, c, hp->head_dim_per_level[level], &b->attn);
}

static void
find_blocks (Finder *f, AtUnetFile *file, gint64 emb_dim)
{
  const AtUnetHParams *hp = &file->hp;
  const int last = hp->n_levels - 1;
  g_autofree gint64 *skips = g_new (gint64, file->n_input_blocks);
  int n_skips = 0, k = 1;
  gint64 ch = hp->model_channels;

  skips[n_skips++] = ch;
  file->input_blocks = g_new0 (AtUnetBlockTensors, file->n_input_blocks);
  for (int l = 0; l < hp->n_levels; l++)
    {
      for (int i = 0; i < hp->n_res_blocks; i++, k++)
        {
          g_autofree char *block = g_strdup_printf ("input_blocks.%d.", k);

          find_block_parts (f, block, hp, l, ch, emb_dim, &file->input_blocks[k]);
          ch = skips[n_skips++] = hp->level_channels[l];
        }
      if (l != last)
        {
          g_autofree char *block = g_strdup_printf ("input_blocks.%d.0.", k);
          AtUnetBlockTensors *b = &file->input_blocks[k++];

          b->level = l;
          b->down_w = find_conv (f, block, "op.weight", 3, ch, ch);
          b->down_b = find_vector (f, block, "op.bias", ch);
          skips[n_skips++] = ch;
        }
    }

  file->middle[0].level = file->middle[1].level = file->middle[2].level = last;
  file->middle[0].has_res = file->middle[2].has_res = file->middle[1].has_attn = TRUE;
  find_res (f, "middle_block.0.", ch, ch, emb_dim, &file->middle[0].res);
  find_spatial (f, "middle_block.1.", hp, ch, hp->head_dim_per_level[last], &file->middle[1].attn);
  find_res (f, "middle_block.2.", ch, ch, emb_dim, &file->middle[2].res);

  file->n_output_blocks = hp->n_levels * (hp->n_res_blocks + 1);
  file->output_blocks = g_new0 (AtUnetBlockTensors, file->n_output_blocks);
  k = 0;
  for (int l = last; l >= 0; l--)
    for (int i = 0; i <= hp->n_res_blocks; i++, k++)
      {
        g_autofree char *block = g_strdup_printf ("output_blocks.%d.", k);
        AtUnetBlockTensors *b = &file->output_blocks[k];

        find_block_parts (f, block, hp, l, ch + skips[--n_skips], emb_dim, b);
        ch = hp->level_channels[l];
        if (l > 0 && i == hp->n_res_blocks)
          {
            g_autofree char *up = g_strdup_printf ("%s%d.", block, b->has_attn ? 2 : 1);

            b->up_w = find_conv (f, up, "conv.weight", 3, ch, ch);
            b->up_b = find_vector (f, up, "conv.bias", ch);
          }
      }
  file->out_norm_w = find_vector (f, "out.0.", "weight", ch);
  file->out_norm_b = find_vector (f, "out.0.", "bias", ch);
  file->out_conv_w = find_conv (f, "out.2.", "weight", 3, ch, hp->out_channels);
  file->out_conv_b = find_vector (f, "out.2.", "bias", hp->out_channels);
}

gboolean
at_unet_file_init (AtUnetFile *file, AtSafetensors *st, const AtSdCheckpointInfo *info,
                   GError **error)
{
  Finder f = { st, error, TRUE };
  AtUnetHParams *hp = &file->hp;
  gint64 emb_dim = 0;

  memset (file, 0, sizeof *file);
  file->info = *info;
  if (!read_hparams (&f, info, hp, &emb_dim, &file->n_input_blocks))
    return FALSE;
  file->time_embed0_w = find_matrix (&f, "time_embed.0.", "weight", hp->model_channels, emb_dim);
  file->time_embed0_b = find_vector (&f, "time_embed.0.", "bias", emb_dim);
  file->time_embed2_w = find_matrix (&f, "time_embed.2.", "weight", emb_dim, emb_dim);
  file->time_embed2_b = find_vector (&f, "time_embed.2.", "bias", emb_dim);
  file->conv_in_w
      = find_conv (&f, "input_blocks.0.0.", "weight", 3, hp->in_channels, hp->model_channels);
  file->conv_in_b = find_vector (&f, "input_blocks.0.0.", "bias", hp->model_channels);
  find_blocks (&f, file, emb_dim);
  if (!f.ok)
    at_unet_file_clear (file);
  return f.ok;
}

static void
clear_block (AtUnetBlockTensors *b)
{
  g_clear_pointer (&b->attn.blocks, g_free);
}

void
at_unet_file_clear (AtUnetFile *file)
{
  for (int k = 0; file->input_blocks != NULL && k < file->n_input_blocks; k++)
    clear_block (&file->input_blocks[k]);
  for (int k = 0; file->output_blocks != NULL && k < file->n_output_blocks; k++)
    clear_block (&file->output_blocks[k]);
  for (int k = 0; k < 3; k++)
    clear_block (&file->middle[k]);
  g_clear_pointer (&file->input_blocks, g_free);
  g_clear_pointer (&file->output_blocks, g_free);
}

/* --- Weights on the GPU ------------------------------------------------------------ */

typedef struct
{
  gint64 c_in, c_out;
  gboolean has_skip;
  AtTensor in_norm_w, in_norm_b, in_conv_w, in_conv_b, emb_w, emb_b;
  AtTensor out_norm_w, out_norm_b, out_conv_w, out_conv_b, skip_w, skip_b;
} Res;

typedef struct
{
  AtTensor q, k, v, out_w, out_b;
} Attn;

typedef struct
{
  AtTensor norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm3_b;
  Attn attn1, attn2;
  AtTensor ff_proj_w, ff_proj_b, ff_out_w, ff_out_b;
} Transformer;

typedef struct
{
  gint64 channels, head_dim;
  /* proj_in as a [1, 1, C, C] conv on the image, proj_out as a [C, C] matrix on the
   * tokens: the same memory either way. */
  AtTensor norm_w, norm_b, proj_in_w, proj_in_b, proj_out_w, proj_out_b;
  Transformer *blocks;
} Spatial;

typedef struct
{
  int level;
  gboolean has_res, has_attn, has_down, has_up;
  Res res;
  Spatial attn;
  AtTensor down_w, down_b, up_w, up_b;
} Block;

struct _AtUnetModel
{
  AtGpu *gpu;
  AtUnetHParams hp;
  gint64 emb_dim;
  AtTensor time_embed0_w, time_embed0_b, time_embed2_w, time_embed2_b;
  AtTensor conv_in_w, conv_in_b, out_norm_w, out_norm_b, out_conv_w, out_conv_b;
  int n_input_blocks, n_output_blocks;
  Block *input_blocks; /* entry 0 unused: conv_in */
  Block middle[3];
  Block *output_blocks;
  GPtrArray *weights; /* AtGpuBuffer: one per tensor */
  guint64 weight_bytes;
  AtBatch *batch;

  /* Activations of one shape (width 0: none yet), NCHW F32 unless said otherwise. */
  gint64 width, height, n, n_ctx;
  GPtrArray *activations;
  guint64 activation_bytes;
  AtGpuBuffer *x_in, *timesteps_in, *context_in;  /* written by the CPU */
  AtGpuBuffer *x, *context;                       /* their device copies */
  AtTensor *skips;                                /* [n_input_blocks], a buffer each */
  AtGpuBuffer *h[2];                              /* the stream through middle and output */
  AtGpuBuffer *cat;                               /* h joined with a skip */
  AtGpuBuffer *t1, *t2;                           /* block temporaries, any layout */
  AtGpuBuffer *tok, *q, *k, *v;                   /* tokens [C, h w, n]; k, v also the context's */
  AtGpuBuffer *ff, *glu;                          /* [8 C], [4 C] for some tokens at a time */
  gint64 ff_floats;                               /* ff's size: ff_floats / 8 C tokens a go */
  AtGpuBuffer *temb, *emb_hidden, *emb, *emb_out; /* [model_channels | emb_dim | C, n] */
  AtGpuBuffer *out, *readback;
};

typedef enum
{
  AS_VECTOR, /* norms and biases: F32 */
  AS_MATRIX, /* for mul_mat: the file's type */
  AS_CONV,   /* for conv2d: F32 or F16, BF16 converted to F16 */
} Use;

typedef struct
{
  AtUnetModel *model;
  GError **error;
  gboolean ok;
} Loader;

static void
load (Loader *l, const AtSafetensorsTensor *t, Use use, AtTensor *out)
{
  AtUnetModel *model = l->model;
  const AtType type = use == AS_VECTOR                            ? AT_TYPE_F32
                      : use == AS_CONV && t->type == AT_TYPE_BF16 ? AT_TYPE_F16
                                                                  : t->type;
  gint64 ne[4] = { 1, 1, 1, 1 };
  g_autofree float *f32 = NULL;
  g_autofree guint16 *f16 = NULL;
  const void *data = t->data;
  AtGpuBuffer *buffer;
  gsize size;

  if (!l->ok)
    return;
  memcpy (ne, t->ne, t->n_dims * sizeof (gint64));
  size = at_tensor_contiguous_size (type, ne[0], ne[1], ne[2], ne[3]);
  if (type != t->type)
    {
      f32 = g_new (float, t->n_elements);
      at_ref_dequantize_row (t->type, t->data, f32, t->n_elements);
      data = f32;
      if (type == AT_TYPE_F16)
        {
          f16 = g_new (guint16, t->n_elements);
          for (gint64 i = 0; i < t->n_elements; i++)
            f16[i] = at_fp32_to_fp16 (f32[i]);
          data = f16;
        }
    }
  if (!(buffer = at_gpu_buffer_new (model->gpu, size, AT_GPU_MEMORY_DEVICE, l->error)))
    {
      g_prefix_error (l->error, "tensor '%s': ", t->name);
      l->ok = FALSE;
      return;
    }
  g_ptr_array_add (model->weights, buffer);
  model->weight_bytes += size;
  *out = at_tensor_make (buffer, 0, type, ne[0], ne[1], ne[2], ne[3]);
  l->ok = at_gpu_upload (model->gpu, buffer, 0, data, size, l->error);
}

static void
load_res (Loader *l, const AtUnetResTensors *f, Res *r)
{
  r->c_in = f->c_in;
  r->c_out = f->c_out;
  load (l, f->in_norm_w, AS_VECTOR, &r->in_norm_w);
  load (l, f->in_norm_b, AS_VECTOR, &r->in_norm_b);
  load (l, f->in_conv_w, AS_CONV, &r->in_conv_w);
  load (l, f->in_conv_b, AS_VECTOR, &r->in_conv_b);
  load (l, f->emb_w, AS_MATRIX, &r->emb_w);
  load (l, f->emb_b, AS_VECTOR, &r->emb_b);
  load (l, f->out_norm_w, AS_VECTOR, &r->out_norm_w);
  load (l, f->out_norm_b, AS_VECTOR, &r->out_norm_b);
  load (l, f->out_conv_w, AS_CONV, &r->out_conv_w);
  load (l, f->out_conv_b, AS_VECTOR, &r->out_conv_b);
  r->has_skip = f->skip_w != NULL;
  if (r->has_skip)
    {
      load (l, f->skip_w, AS_CONV, &r->skip_w);
      load (l, f->skip_b, AS_VECTOR, &r->skip_b);
    }
}

static void
load_attn (Loader *l, const AtUnetAttnTensors *f, Attn *a)
{
  load (l, f->q, AS_MATRIX, &a->q);
  load (l, f->k, AS_MATRIX, &a->k);
  load (l, f->v, AS_MATRIX, &a->v);
  load (l, f->out_w, AS_MATRIX, &a->out_w);
  load (l, f->out_b, AS_VECTOR, &a->out_b);
}

static void
load_spatial (Loader *l, const AtUnetSpatialTensors *f, int depth, Spatial *s)
{
  const gint64 c = f->channels;

  s->channels = c;
  s->head_dim = f->head_dim;
  s->blocks = g_new0 (Transformer, depth);
  load (l, f->norm_w, AS_VECTOR, &s->norm_w);
  load (l, f->norm_b, AS_VECTOR, &s->norm_b);
  load (l, f->proj_in_w, AS_CONV, &s->proj_in_w);
  load (l, f->proj_in_b, AS_VECTOR, &s->proj_in_b);
  load (l, f->proj_out_w, AS_CONV, &s->proj_out_w);
  load (l, f->proj_out_b, AS_VECTOR, &s->proj_out_b);
  if (!l->ok)
    return;
  s->proj_in_w = at_tensor_make (s->proj_in_w.buffer, 0, s->proj_in_w.type, 1, 1, c, c);
  s->proj_out_w = at_tensor_make (s->proj_out_w.buffer, 0, s->proj_out_w.type, c, c, 1, 1);
  for (int d = 0; d < depth; d++)
    {
      const AtUnetTransformerTensors *ft = &f->blocks[d];
      Transformer *t = &s->blocks[d];

      load (l, ft->norm1_w, AS_VECTOR, &t->norm1_w);
      load (l, ft->norm1_b, AS_VECTOR, &t->norm1_b);
      load (l, ft->norm2_w, AS_VECTOR, &t->norm2_w);
      load (l, ft->norm2_b, AS_VECTOR, &t->norm2_b);
      load (l, ft->norm3_w, AS_VECTOR, &t->norm3_w);
      load (l, ft->norm3_b, AS_VECTOR, &t->norm3_b);
      load_attn (l, &ft->attn1, &t->attn1);
      load_attn (l, &ft->attn2, &t->attn2);
      load (l, ft->ff_proj_w, AS_MATRIX, &t->ff_proj_w);
      load (l, ft->ff_proj_b, AS_VECTOR, &t->ff_proj_b);
      load (l, ft->ff_out_w, AS_MATRIX, &t->ff_out_w);
      load (l, ft->ff_out_b, AS_VECTOR, &t->ff_out_b);
    }
}

static void
load_block (Loader *l, const AtUnetBlockTensors *f, int depth, Block *b)
{
  b->level = f->level;
  b->has_res = f->has_res;
  b->has_attn = f->has_attn;
  b->has_down = f->down_w != NULL;
  b->has_up = f->up_w != NULL;
  if (b->has_res)
    load_res (l, &f->res, &b->res);
  if (b->has_attn)
    load_spatial (l, &f->attn, depth, &b->attn);
  if (b->has_down)
    {
      load (l, f->down_w, AS_CONV, &b->down_w);
      load (l, f->down_b, AS_VECTOR, &b->down_b);
    }
  if (b->has_up)
    {
      load (l, f->up_w, AS_CONV, &b->up_w);
      load (l, f->up_b, AS_VECTOR, &b->up_b);
    }
}

AtUnetModel *
at_unet_model_new (AtGpu *gpu, AtSafetensors *st, const AtSdCheckpointInfo *info, GError **error)
{
  g_autoptr (AtUnetModel) model = g_new0 (AtUnetModel, 1);
  Loader l = { model, error, TRUE };
  AtUnetFile file;
  int depth;

  if (!at_unet_file_init (&file, st, info, error))
    return NULL;
  model->gpu = gpu;
  model->hp = file.hp;
  model->emb_dim = file.time_embed0_w->ne[1];
  model->weights = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  model->activations = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  model->n_input_blocks = file.n_input_blocks;
  model->n_output_blocks = file.n_output_blocks;
  model->input_blocks = g_new0 (Block, file.n_input_blocks);
  model->output_blocks = g_new0 (Block, file.n_output_blocks);
  depth = file.hp.transformer_depth;
  load (&l, file.time_embed0_w, AS_MATRIX, &model->time_embed0_w);
  load (&l, file.time_embed0_b, AS_VECTOR, &model->time_embed0_b);
  load (&l, file.time_embed2_w, AS_MATRIX, &model->time_embed2_w);
  load (&l, file.time_embed2_b, AS_VECTOR, &model->time_embed2_b);
  load (&l, file.conv_in_w, AS_CONV, &model->conv_in_w);
  load (&l, file.conv_in_b, AS_VECTOR, &model->conv_in_b);
  for (int k = 1; k < file.n_input_blocks; k++)
    load_block (&l, &file.input_blocks[k], depth, &model->input_blocks[k]);
  for (int k = 0; k < 3; k++)
    load_block (&l, &file.middle[k], depth, &model->middle[k]);
  for (int k = 0; k < file.n_output_blocks; k++)
    load_block (&l, &file.output_blocks[k], depth, &model->output_blocks[k]);
  load (&l, file.out_norm_w, AS_VECTOR, &model->out_norm_w);
  load (&l, file.out_norm_b, AS_VECTOR, &model->out_norm_b);
  load (&l, file.out_conv_w, AS_CONV, &model->out_conv_w);
  load (&l, file.out_conv_b, AS_VECTOR, &model->out_conv_b);
  at_unet_file_clear (&file);
  if (!l.ok)
    return NULL;
  model->batch = at_batch_new (gpu);
  return g_steal_pointer (&model);
}

static void
free_block (Block *b)
{
  g_clear_pointer (&b->attn.blocks, g_free);
}

void
at_unet_model_free (AtUnetModel *model)
{
  if (model == NULL)
    return;
  g_clear_pointer (&model->batch, at_batch_free);
  for (int k = 0; model->input_blocks != NULL && k < model->n_input_blocks; k++)
    free_block (&model->input_blocks[k]);
  for (int k = 0; model->output_blocks != NULL && k < model->n_output_blocks; k++)
    free_block (&model->output_blocks[k]);
  for (int k = 0; k < 3; k++)
    free_block (&model->middle[k]);
  g_free (model->input_blocks);
  g_free (model->output_blocks);
  g_free (model->skips);
  g_clear_pointer (&model->activations, g_ptr_array_unref);
  g_clear_pointer (&model->weights, g_ptr_array_unref);
  g_free (model);
}

const AtUnetHParams *
at_unet_model_get_hparams (AtUnetModel *model)
{
  return &model->hp;
}

guint64
at_unet_model_get_weight_bytes (AtUnetModel *model)
{
  return model->weight_bytes;
}

guint64
at_unet_model_get_activation_bytes (AtUnetModel *model)
{
  return model->activation_bytes;
}

/* --- Activations ------------------------------------------------------------------- */

/* The latent's size at each level: a stride-2 conv with padding 1 halves it rounding
 * up (65 -> 33 -> 17 -> 9). */
static void
level_sizes (const AtUnetHParams *hp, gint64 width, gint64 height, gint64 *w, gint64 *h)
{
  w[0] = width;
  h[0] = height;
  for (int l = 1; l < hp->n_levels; l++)
    {
      w[l] = (w[l - 1] + 1) / 2;
      h[l] = (h[l - 1] + 1) / 2;
    }
}

/* Block i of input_blocks (from 1), middle_block and output_blocks in a row. */
static int
n_blocks (AtUnetModel *model)
{
  return model->n_input_blocks - 1 + 3 + model->n_output_blocks;
}

static const Block *
nth_block (AtUnetModel *model, int i)
{
  if (i < model->n_input_blocks - 1)
    return &model->input_blocks[i + 1];
  i -= model->n_input_blocks - 1;
  return i < 3 ? &model->middle[i] : &model->output_blocks[i - 3];
}

static AtGpuBuffer *
activation (AtUnetModel *model, gint64 floats, AtGpuMemoryKind kind, GError **error)
{
  const gsize size = (gsize)MAX (floats, 1) * sizeof (float);
  AtGpuBuffer *buffer = at_gpu_buffer_new (model->gpu, size, kind, error);

  if (buffer != NULL)
    {
      g_ptr_array_add (model->activations, buffer);
      model->activation_bytes += size;
    }
  return buffer;
}

/* Sizes every buffer for the largest tensor it will hold at this shape, each one bound
 * whole by some op, so each must fit the device's storage buffer range; the FF is cut
 * into column ranges that do. */
static gboolean
alloc_activations (AtUnetModel *model, gint64 width, gint64 height, gint64 n, gint64 n_ctx,
                   GError **error)
{
  const AtUnetHParams *hp = &model->hp;
  const gint64 range
      = (gint64)(at_gpu_get_info (model->gpu)->max_storage_buffer_range / sizeof (float));
  gint64 lw[AT_UNET_MAX_LEVELS], lh[AT_UNET_MAX_LEVELS];
  gint64 s_nchw = width * height * n * hp->level_channels[0];
  gint64 s_tok = 0, c_max = 0, res_c_max = 0, s_kv, ch = hp->model_channels;

  g_ptr_array_set_size (model->activations, 0);
  model->activation_bytes = 0;
  model->width = 0;
  level_sizes (hp, width, height, lw, lh);
  for (int i = 0; i < n_blocks (model); i++)
    {
      const Block *b = nth_block (model, i);
      const gint64 area = lw[b->level] * lh[b->level] * n;

      if (b->has_res)
        {
          s_nchw = MAX (s_nchw, area * MAX (b->res.c_in, b->res.c_out));
          res_c_max = MAX (res_c_max, b->res.c_out);
        }
      if (b->has_attn)
        {
          s_tok = MAX (s_tok, area * b->attn.channels);
          c_max = MAX (c_max, b->attn.channels);
        }
      if (b->has_up)
        s_nchw = MAX (s_nchw, lw[b->level - 1] * lh[b->level - 1] * n * b->res.c_out);
    }
  s_kv = MAX (s_tok, c_max * n_ctx * n);
  /* The FF's 8 C rows per token would be the largest activation by far: it runs on as
   * many tokens at a time as fit in a block activation's size, which costs a few more
   * dispatches at the first level and keeps memory lean. */
  model->ff_floats = MIN (range, MAX (s_nchw, 8 * c_max));
  if (MAX (s_nchw, s_kv) > range || 8 * c_max > range
      || width * height * n * MAX (hp->in_channels, hp->out_channels) > range
      || hp->context_dim * n_ctx * n > range)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "a latent of %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                   " in a batch of %" G_GINT64_FORMAT " needs activations of %" G_GINT64_FORMAT
                   " MiB, more than the GPU binds at once (%" G_GINT64_FORMAT " MiB)",
                   width, height, n, MAX (s_nchw, s_kv) * 4 >> 20, range * 4 >> 20);
      return FALSE;
    }

#define ACTIVATION(field, floats, kind)                                                            \
  if (!(model->field = activation (model, floats, kind, error)))                                   \
    return FALSE;
  ACTIVATION (x_in, width * height * hp->in_channels * n, AT_GPU_MEMORY_UPLOAD);
  ACTIVATION (timesteps_in, n, AT_GPU_MEMORY_UPLOAD);
  ACTIVATION (context_in, hp->context_dim * n_ctx * n, AT_GPU_MEMORY_UPLOAD);
  ACTIVATION (x, width * height * hp->in_channels * n, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (context, hp->context_dim * n_ctx * n, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (h[0], s_nchw, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (h[1], s_nchw, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (cat, s_nchw, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (t1, s_nchw, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (t2, s_nchw, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (tok, s_tok, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (q, s_tok, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (k, s_kv, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (v, s_kv, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (ff, model->ff_floats, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (glu, model->ff_floats / 2, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (temb, hp->model_channels * n, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (emb_hidden, model->emb_dim * n, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (emb, model->emb_dim * n, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (emb_out, res_c_max * n, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (out, width * height * hp->out_channels * n, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (readback, width * height * hp->out_channels * n, AT_GPU_MEMORY_READBACK);
#undef ACTIVATION

  /* Every input block's output stays for its output block. */
  g_free (model->skips);
  model->skips = g_new0 (AtTensor, model->n_input_blocks);
  for (int k = 0; k < model->n_input_blocks; k++)
    {
      const Block *b = &model->input_blocks[k];
      const int l = k == 0 ? 0 : b->has_down ? b->level + 1 : b->level;
      const gint64 c = k == 0 ? ch : b->has_down ? ch : b->res.c_out;
      AtGpuBuffer *buffer = activation (model, lw[l] * lh[l] * c * n, AT_GPU_MEMORY_DEVICE, error);

      if (buffer == NULL)
        return FALSE;
      model->skips[k] = at_tensor_make (buffer, 0, AT_TYPE_F32, lw[l], lh[l], c, n);
      ch = c;
    }
  model->width = width;
  model->height = height;
  model->n = n;
  model->n_ctx = n_ctx;
  return TRUE;
}

/* --- The forward pass -------------------------------------------------------------- */

static AtTensor
f32 (AtGpuBuffer *buffer, gsize offset, gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3)
{
  return at_tensor_make (buffer, offset, AT_TYPE_F32, ne0, ne1, ne2, ne3);
}

/* dst = w x + bias. */
static void
linear (AtBatch *batch, const AtTensor *w, const AtTensor *bias, const AtTensor *x,
        const AtTensor *dst)
{
  at_op_mul_mat (batch, w, x, dst);
  at_op_add (batch, dst, bias, dst);
}

/* dst = skip (x) + out_layers (in_layers (x) + emb_layers (emb)); x [w, h, c_in, n] and
 * dst [w, h, c_out, n] in buffers of their own. */
static void
res_block (AtUnetModel *model, const Res *r, const AtTensor *x, const AtTensor *dst)
{
  AtBatch *batch = model->batch;
  const gint64 w = x->ne[0], h = x->ne[1], n = x->ne[3];
  AtTensor t1_in = f32 (model->t1, 0, w, h, r->c_in, n), t1 = f32 (model->t1, 0, w, h, r->c_out, n);
  AtTensor t2 = f32 (model->t2, 0, w, h, r->c_out, n);
  AtTensor emb = f32 (model->emb, 0, model->emb_dim, n, 1, 1);
  AtTensor emb_out = f32 (model->emb_out, 0, r->c_out, n, 1, 1);
  AtTensor emb_channels = f32 (model->emb_out, 0, 1, 1, r->c_out, n);

  at_op_group_norm (batch, x, &r->in_norm_w, &r->in_norm_b, &t1_in, GN_GROUPS, GN_EPS, TRUE);
  at_op_conv2d (batch, &r->in_conv_w, &r->in_conv_b, &t1_in, &t2, 1, 1);
  linear (batch, &r->emb_w, &r->emb_b, &emb, &emb_out);
  at_op_add (batch, &t2, &emb_channels, &t2);
  at_op_group_norm (batch, &t2, &r->out_norm_w, &r->out_norm_b, &t1, GN_GROUPS, GN_EPS, TRUE);
  at_op_conv2d (batch, &r->out_conv_w, &r->out_conv_b, &t1, dst, 1, 1);
  if (r->has_skip)
    {
      at_op_conv2d (batch, &r->skip_w, &r->skip_b, x, &t2, 1, 0);
      at_op_add (batch, dst, &t2, dst);
    }
  else
    at_op_add (batch, dst, x, dst);
}

/* [C, n_tok] of sample s of a [C, n_tok, n] buffer seen as its heads [head_dim, n_tok,
 * n_head], as attention reads them. */
static AtTensor
sample_heads (AtGpuBuffer *buffer, gint64 c, gint64 n_tok, gint64 s, gint64 head_dim)
{
  AtTensor heads
      = f32 (buffer, (gsize)(s * c * n_tok) * sizeof (float), head_dim, c / head_dim, n_tok, 1);

  return at_tensor_permute (&heads, 0, 2, 1, 3);
}

/* tok += to_out (attention (to_q (xn), to_k (kv), to_v (kv))) for xn [C, n_q, n] in t1 and
 * kv [kv_dim, n_kv, n]; the heads' outputs go to t2. */
static void
attention (AtUnetModel *model, const Spatial *s, const Attn *a, const AtTensor *kv, gint64 n_q,
           gint64 n_kv)
{
  AtBatch *batch = model->batch;
  const gint64 c = s->channels, n = model->n;
  AtTensor xn = f32 (model->t1, 0, c, n_q * n, 1, 1), att = f32 (model->t2, 0, c, n_q * n, 1, 1);
  AtTensor q = f32 (model->q, 0, c, n_q * n, 1, 1), k = f32 (model->k, 0, c, n_kv * n, 1, 1);
  AtTensor v = f32 (model->v, 0, c, n_kv * n, 1, 1), tok = f32 (model->tok, 0, c, n_q * n, 1, 1);
  const AtFlashAttnParams params = { 1.0f / sqrtf ((float)s->head_dim), FALSE, 0 };

  at_op_mul_mat (batch, &a->q, &xn, &q);
  at_op_mul_mat (batch, &a->k, kv, &k);
  at_op_mul_mat (batch, &a->v, kv, &v);
  for (gint64 i = 0; i < n; i++)
    {
      AtTensor qh = sample_heads (model->q, c, n_q, i, s->head_dim);
      AtTensor kh = sample_heads (model->k, c, n_kv, i, s->head_dim);
      AtTensor vh = sample_heads (model->v, c, n_kv, i, s->head_dim);
      AtTensor out = f32 (model->t2, (gsize)(i * c * n_q) * sizeof (float), s->head_dim,
                          c / s->head_dim, n_q, 1);

      at_op_flash_attn (batch, &qh, &kh, &vh, NULL, &out, &params);
    }
  linear (batch, &a->out_w, &a->out_b, &att, &xn);
  at_op_add (batch, &tok, &xn, &tok);
}

/* tok += ff.net.2 (GEGLU (ff.net.0.proj (xn))) for xn in t1, as many tokens at a time as
 * the ff buffer holds. */
static void
feed_forward (AtUnetModel *model, const Transformer *t, gint64 c, gint64 cols)
{
  AtBatch *batch = model->batch;
  const gint64 chunk = model->ff_floats / (8 * c);
  AtTensor out = f32 (model->t2, 0, c, cols, 1, 1), tok = f32 (model->tok, 0, c, cols, 1, 1);

  for (gint64 j = 0; j < cols; j += chunk)
    {
      const gint64 m = MIN (chunk, cols - j);
      const gsize offset = (gsize)(j * c) * sizeof (float);
      AtTensor xn = f32 (model->t1, offset, c, m, 1, 1), ff = f32 (model->ff, 0, 8 * c, m, 1, 1);
      AtTensor glu = f32 (model->glu, 0, 4 * c, m, 1, 1), y = f32 (model->t2, offset, c, m, 1, 1);

      linear (batch, &t->ff_proj_w, &t->ff_proj_b, &xn, &ff);
      at_op_glu (batch, AT_GLU_GEGLU, &ff, NULL, &glu);
      linear (batch, &t->ff_out_w, &t->ff_out_b, &glu, &y);
    }
  at_op_add (batch, &tok, &out, &tok);
}

/* x [w, h, C, n] += proj_out (blocks (proj_in (GN (x)))), the blocks on tokens [C, h w, n]. */
static void
spatial_transformer (AtUnetModel *model, const Spatial *s, const AtTensor *x)
{
  AtBatch *batch = model->batch;
  const gint64 c = s->channels, hw = x->ne[0] * x->ne[1], n = x->ne[3], cols = hw * n;
  AtTensor t1 = f32 (model->t1, 0, x->ne[0], x->ne[1], c, n);
  AtTensor t2 = f32 (model->t2, 0, x->ne[0], x->ne[1], c, n);
  AtTensor t2_hw = f32 (model->t2, 0, hw, c, n, 1),
           t2_tokens = at_tensor_permute (&t2_hw, 1, 0, 2, 3);
  AtTensor tok = f32 (model->tok, 0, c, cols, 1, 1), tok3 = f32 (model->tok, 0, c, hw, n, 1);
  AtTensor xn = f32 (model->t1, 0, c, cols, 1, 1), y = f32 (model->t1, 0, c, hw, n, 1);
  AtTensor y_hw = at_tensor_permute (&y, 1, 0, 2, 3),
           x_hw = f32 (x->buffer, x->offset, hw, c, n, 1);
  AtTensor context = f32 (model->context, 0, model->hp.context_dim, model->n_ctx * n, 1, 1);

  at_op_group_norm (batch, x, &s->norm_w, &s->norm_b, &t1, GN_GROUPS, ST_GN_EPS, FALSE);
  at_op_conv2d (batch, &s->proj_in_w, &s->proj_in_b, &t1, &t2, 1, 0);
  at_op_cpy (batch, &t2_tokens, &tok3);
  for (int d = 0; d < model->hp.transformer_depth; d++)
    {
      const Transformer *t = &s->blocks[d];

      at_op_layer_norm (batch, &tok, &t->norm1_w, &t->norm1_b, &xn, LN_EPS);
      attention (model, s, &t->attn1, &xn, hw, hw);
      at_op_layer_norm (batch, &tok, &t->norm2_w, &t->norm2_b, &xn, LN_EPS);
      attention (model, s, &t->attn2, &context, hw, model->n_ctx);
      at_op_layer_norm (batch, &tok, &t->norm3_w, &t->norm3_b, &xn, LN_EPS);
      feed_forward (model, t, c, cols);
    }
  linear (batch, &s->proj_out_w, &s->proj_out_b, &tok, &xn);
  at_op_add (batch, &x_hw, &y_hw, &x_hw);
}

static AtGpuBuffer *
other_h (AtUnetModel *model, const AtGpuBuffer *buffer)
{
  return buffer == model->h[0] ? model->h[1] : model->h[0];
}

/* Records one block on h and returns its output: a Downsample or a ResBlock writes into
 * dst's buffer, a SpatialTransformer works in place, an Upsample (to up_to's size) goes
 * through t1 into whichever of h[0] and h[1] the output is not in. */
static AtTensor
block (AtUnetModel *model, const Block *b, const AtTensor *h, const AtTensor *dst,
       const AtTensor *up_to)
{
  AtBatch *batch = model->batch;
  AtTensor out = *h;

  if (b->has_down)
    {
      at_op_conv2d (batch, &b->down_w, &b->down_b, h, dst, 2, 1);
      return *dst;
    }
  if (b->has_res)
    {
      out = f32 (dst->buffer, dst->offset, h->ne[0], h->ne[1], b->res.c_out, h->ne[3]);
      res_block (model, &b->res, h, &out);
    }
  if (b->has_attn)
    spatial_transformer (model, &b->attn, &out);
  if (b->has_up)
    {
      AtTensor up = f32 (model->t1, 0, up_to->ne[0], up_to->ne[1], out.ne[2], out.ne[3]);
      at_op_upscale_nearest_to (batch, &out, &up);
      out = f32 (other_h (model, out.buffer), 0, up.ne[0], up.ne[1], up.ne[2], up.ne[3]);
      at_op_conv2d (batch, &b->up_w, &b->up_b, &up, &out, 1, 1);
    }
  return out;
}

/* emb = SiLU (time_embed (timestep_embedding (t))): the ResBlocks only use it through
 * emb_layers.0, a SiLU, so it is applied once here. */
static void
time_embedding (AtUnetModel *model)
{
  AtBatch *batch = model->batch;
  const gint64 n = model->n;
  AtTensor timesteps = f32 (model->timesteps_in, 0, n, 1, 1, 1);
  AtTensor temb = f32 (model->temb, 0, model->hp.model_channels, n, 1, 1);
  AtTensor hidden = f32 (model->emb_hidden, 0, model->emb_dim, n, 1, 1);
  AtTensor emb = f32 (model->emb, 0, model->emb_dim, n, 1, 1);

  at_op_timestep_embedding (batch, &timesteps, &temb, (int)model->hp.model_channels,
                            TIME_MAX_PERIOD);
  linear (batch, &model->time_embed0_w, &model->time_embed0_b, &temb, &hidden);
  at_op_unary (batch, AT_UNARY_SILU, &hidden, &hidden);
  linear (batch, &model->time_embed2_w, &model->time_embed2_b, &hidden, &emb);
  at_op_unary (batch, AT_UNARY_SILU, &emb, &emb);
}

/* Checks the shape, (re)allocates the activations for it, and records the copies of the
 * inputs (x unless NULL) and the time embedding. */
static gboolean
begin (AtUnetModel *model, const float *x, gint64 width, gint64 height, gint64 n,
       const float *timesteps, const float *context, gint64 n_ctx, GError **error)
{
  const AtUnetHParams *hp = &model->hp;
  const gsize x_size = (gsize)(width * height * hp->in_channels * n) * sizeof (float);
  const gsize context_size = (gsize)(hp->context_dim * n_ctx * n) * sizeof (float);

  if (width < 1 || height < 1 || n < 1 || n_ctx < 1)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "UNet input of %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                   ", batch %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                   " context tokens: every size must be "
                   "at least 1",
                   width, height, n, n_ctx);
      return FALSE;
    }
  if ((model->width != width || model->height != height || model->n != n || model->n_ctx != n_ctx)
      && !alloc_activations (model, width, height, n, n_ctx, error))
    return FALSE;
  if (x != NULL)
    {
      memcpy (at_gpu_buffer_get_mapped (model->x_in), x, x_size);
      at_batch_copy (model->batch, model->x_in, 0, model->x, 0, x_size);
    }
  memcpy (at_gpu_buffer_get_mapped (model->timesteps_in), timesteps, n * sizeof (float));
  memcpy (at_gpu_buffer_get_mapped (model->context_in), context, context_size);
  at_batch_copy (model->batch, model->context_in, 0, model->context, 0, context_size);
  time_embedding (model);
  return TRUE;
}

gboolean
at_unet_model_forward (AtUnetModel *model, const float *x, gint64 width, gint64 height, gint64 n,
                       const float *timesteps, const float *context, gint64 n_ctx, float *out,
                       GError **error)
{
  const AtUnetHParams *hp = &model->hp;
  const gsize out_size = (gsize)(width * height * hp->out_channels * n) * sizeof (float);
  AtBatch *batch = model->batch;
  AtTensor h, final, result;
  int n_skips;

  if (!begin (model, x, width, height, n, timesteps, context, n_ctx, error))
    return FALSE;
  {
    AtTensor xt = f32 (model->x, 0, width, height, hp->in_channels, n);

    at_op_conv2d (batch, &model->conv_in_w, &model->conv_in_b, &xt, &model->skips[0], 1, 1);
  }
  h = model->skips[0];
  for (int k = 1; k < model->n_input_blocks; k++)
    h = block (model, &model->input_blocks[k], &h, &model->skips[k], NULL);
  for (int k = 0; k < 3; k++)
    {
      AtTensor dst = f32 (other_h (model, h.buffer), 0, h.ne[0], h.ne[1], h.ne[2], n);

      h = block (model, &model->middle[k], &h, &dst, NULL);
    }
  n_skips = model->n_input_blocks;
  for (int k = 0; k < model->n_output_blocks; k++)
    {
      const AtTensor *skip = &model->skips[--n_skips];
      AtTensor cat = f32 (model->cat, 0, h.ne[0], h.ne[1], h.ne[2] + skip->ne[2], n);
      AtTensor dst = f32 (other_h (model, h.buffer), 0, h.ne[0], h.ne[1], h.ne[2], n);

      at_op_concat (batch, &h, skip, &cat, 2);
      h = block (model, &model->output_blocks[k], &cat, &dst,
                 n_skips > 0 ? &model->skips[n_skips - 1] : NULL);
    }
  final = f32 (model->t1, 0, width, height, h.ne[2], n);
  result = f32 (model->out, 0, width, height, hp->out_channels, n);
  at_op_group_norm (batch, &h, &model->out_norm_w, &model->out_norm_b, &final, GN_GROUPS, GN_EPS,
                    TRUE);
  at_op_conv2d (batch, &model->out_conv_w, &model->out_conv_b, &final, &result, 1, 1);
  at_batch_copy (batch, model->out, 0, model->readback, 0, out_size);
  if (!at_batch_run (batch, error))
    return FALSE;
  memcpy (out, at_gpu_buffer_get_mapped (model->readback), out_size);
  return TRUE;
}

gboolean
at_unet_model_forward_block (AtUnetModel *model, int index, gboolean attention, const float *x,
                             gint64 width, gint64 height, gint64 n, const float *timesteps,
                             const float *context, gint64 n_ctx, float *out, GError **error)
{
  const Block *b = index >= 1 && index < model->n_input_blocks ? &model->input_blocks[index] : NULL;
  gint64 c_in, c_out;
  AtTensor h, dst;

  if (b == NULL || (attention ? !b->has_attn : !b->has_res))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT, "input_blocks.%d has no %s", index,
                   attention ? "SpatialTransformer" : "ResBlock");
      return FALSE;
    }
  c_in = attention ? b->attn.channels : b->res.c_in;
  c_out = attention ? c_in : b->res.c_out;
  /* Activations for the whole model at the size that puts this block's level at
   * width x height. */
  if (!begin (model, NULL, width << b->level, height << b->level, n, timesteps, context, n_ctx,
              error)
      || !at_gpu_upload (model->gpu, model->h[0], 0, x,
                         (gsize)(width * height * c_in * n) * sizeof (float), error))
    return FALSE;
  h = f32 (model->h[0], 0, width, height, c_in, n);
  dst = f32 (attention ? model->h[0] : model->h[1], 0, width, height, c_out, n);
  if (attention)
    spatial_transformer (model, &b->attn, &h);
  else
    res_block (model, &b->res, &h, &dst);
  return at_batch_run (model->batch, error)
         && at_gpu_download (model->gpu, dst.buffer, 0, out,
                             (gsize)(width * height * c_out * n) * sizeof (float), error);
}

/* --- FLOPs ------------------------------------------------------------------------- */

static double
conv_flops (gint64 kernel, gint64 c_in, gint64 c_out, gint64 pixels)
{
  return 2.0 * kernel * kernel * c_in * c_out * pixels;
}

/* The projections and both attentions' products (Q K^T and P V: 2 C n_q n_kv each per
 * sample), and the feed-forward. */
static double
spatial_flops (const Spatial *s, int depth, gint64 context_dim, gint64 hw, gint64 n, gint64 n_ctx)
{
  const double c = (double)s->channels, cols = (double)(hw * n);
  double flops = 2.0 * 2.0 * c * c * cols; /* proj_in, proj_out */

  for (int d = 0; d < depth; d++)
    {
      flops += 2.0 * 4.0 * c * c * cols + 4.0 * c * hw * hw * n;
      flops += 2.0 * 2.0 * c * c * cols + 2.0 * 2.0 * context_dim * c * n_ctx * n
               + 4.0 * c * hw * n_ctx * n;
      flops += 2.0 * (8.0 * c * c + 4.0 * c * c) * cols;
    }
  return flops;
}

double
at_unet_model_forward_flops (AtUnetModel *model, gint64 width, gint64 height, gint64 n,
                             gint64 n_ctx)
{
  const AtUnetHParams *hp = &model->hp;
  gint64 lw[AT_UNET_MAX_LEVELS], lh[AT_UNET_MAX_LEVELS];
  double flops;

  level_sizes (hp, width, height, lw, lh);
  flops = 2.0 * (hp->model_channels + model->emb_dim) * model->emb_dim * n
          + conv_flops (3, hp->in_channels, hp->model_channels, width * height * n)
          + conv_flops (3, hp->level_channels[0], hp->out_channels, width * height * n);
  for (int i = 0; i < n_blocks (model); i++)
    {
      const Block *b = nth_block (model, i);
      const gint64 pixels = lw[b->level] * lh[b->level] * n;
      const Res *r = &b->res;

      if (b->has_res)
        flops += conv_flops (3, r->c_in, r->c_out, pixels)
                 + conv_flops (3, r->c_out, r->c_out, pixels)
                 + (r->has_skip ? conv_flops (1, r->c_in, r->c_out, pixels) : 0.0)
                 + 2.0 * model->emb_dim * r->c_out * n;
      if (b->has_attn)
        flops += spatial_flops (&b->attn, hp->transformer_depth, hp->context_dim,
                                lw[b->level] * lh[b->level], n, n_ctx);
      if (b->has_down)
        flops += conv_flops (3, b->down_w.ne[2], b->down_w.ne[3],
                             lw[b->level + 1] * lh[b->level + 1] * n);
      if (b->has_up)
        flops += conv_flops (3, b->up_w.ne[2], b->up_w.ne[3],
                             lw[b->level - 1] * lh[b->level - 1] * n);
    }
  return flops;
}
