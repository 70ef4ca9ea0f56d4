/* at-vae.c: the SD VAE's weights, its tiled decode and encode on the GPU. */
#include "image/at-vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "at-error.h"
#include "ops/at-ops-elementwise.h"
#include "ops/at-ops-matmul.h"
#include "ops/at-ops-norm.h"
#include "ref/at-ref.h"

#define PREFIX "first_stage_model."
#define GN_GROUPS 32
#define GN_EPS 1e-6f
/* Image channels in and out. */
#define RGB 3
/* No activation binding larger than this even where the device allows more: with three
 * such buffers the activations of a 512x512 SD decode stay near 1 GiB. */
#define ACTIVATION_LIMIT ((guint64)256 << 20)
/* Overlap of neighbouring tiles, in latent pixels. */
#define TILE_OVERLAP 8

/* --- Tensors of the file ----------------------------------------------------------- */

static char *
describe_shape (guint n_dims, const gint64 *ne)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < n_dims; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", ne[i]);
  return g_string_free (s, FALSE);
}

static const AtSafetensorsTensor *
lookup (AtSafetensors *st, const char *name, GError **error)
{
  g_autofree char *full = g_strconcat (PREFIX, name, NULL);
  const AtSafetensorsTensor *t = at_safetensors_lookup (st, full);

  if (t == NULL)
    g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: tensor '%s' is missing",
                 at_safetensors_get_name (st), full);
  return t;
}

/* PREFIX + name of shape ne (n_dims sizes, ggml order); with linear_ok a [1, 1, C_in,
 * C_out] is also found as the linear [C_in, C_out]. */
static const AtSafetensorsTensor *
find (AtSafetensors *st, const char *name, guint n_dims, const gint64 *ne, gboolean linear_ok,
      GError **error)
{
  const AtSafetensorsTensor *t = lookup (st, name, error);
  gboolean ok;

  if (t == NULL)
    return NULL;
  ok = t->n_dims == n_dims && memcmp (t->ne, ne, n_dims * sizeof (gint64)) == 0;
  if (!ok && linear_ok)
    ok = t->n_dims == 2 && t->ne[0] == ne[2] && t->ne[1] == ne[3];
  if (!ok)
    {
      g_autofree char *got = describe_shape (t->n_dims, t->ne);
      g_autofree char *want = describe_shape (n_dims, ne);

      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: tensor '%s' is [%s], expected [%s]",
                   at_safetensors_get_name (st), t->name, got, want);
      return NULL;
    }
  return at_safetensors_tensor_check_supported (st, t, error) ? t : NULL;
}

/* name.weight of shape ne and name.bias of its output width. */
static gboolean
find_pair (AtSafetensors *st, const char *name, guint n_dims, const gint64 *ne, gboolean linear_ok,
           AtVaeTensorPair *pair, GError **error)
{
  g_autofree char *w = g_strconcat (name, ".weight", NULL);
  g_autofree char *b = g_strconcat (name, ".bias", NULL);
  const gint64 width = ne[n_dims - 1];

  return (pair->w = find (st, w, n_dims, ne, linear_ok, error))
         && (pair->b = find (st, b, 1, &width, FALSE, error));
}

static gboolean
find_conv (AtSafetensors *st, const char *name, gint64 k, gint64 c_in, gint64 c_out,
           AtVaeTensorPair *pair, GError **error)
{
  const gint64 ne[4] = { k, k, c_in, c_out };

  return find_pair (st, name, 4, ne, FALSE, pair, error);
}

static gboolean
find_norm (AtSafetensors *st, const char *name, gint64 c, AtVaeTensorPair *pair, GError **error)
{
  return find_pair (st, name, 1, &c, FALSE, pair, error);
}

/* base.name */
static char *
child (const char *base, const char *name)
{
  return g_strconcat (base, ".", name, NULL);
}

static gboolean
find_resnet (AtSafetensors *st, const char *base, gint64 c_in, gint64 c_out, AtVaeResnetTensors *r,
             GError **error)
{
  g_autofree char *norm1 = child (base, "norm1"), *conv1 = child (base, "conv1");
  g_autofree char *norm2 = child (base, "norm2"), *conv2 = child (base, "conv2");
  g_autofree char *nin = child (base, "nin_shortcut");

  r->c_in = c_in;
  r->c_out = c_out;
  return find_norm (st, norm1, c_in, &r->norm1, error)
         && find_conv (st, conv1, 3, c_in, c_out, &r->conv1, error)
         && find_norm (st, norm2, c_out, &r->norm2, error)
         && find_conv (st, conv2, 3, c_out, c_out, &r->conv2, error)
         && (c_in == c_out || find_conv (st, nin, 1, c_in, c_out, &r->nin_shortcut, error));
}

static gboolean
find_attn (AtSafetensors *st, const char *base, gint64 c, AtVaeAttnTensors *a, GError **error)
{
  const gint64 ne[4] = { 1, 1, c, c };
  AtVaeTensorPair *projections[] = { &a->q, &a->k, &a->v, &a->proj_out };
  const char *names[] = { "q", "k", "v", "proj_out" };
  g_autofree char *norm = child (base, "norm");

  if (!find_norm (st, norm, c, &a->norm, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *name = child (base, names[i]);

      if (!find_pair (st, name, 4, ne, TRUE, projections[i], error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
find_mid (AtSafetensors *st, const char *coder, gint64 c, AtVaeCoderTensors *t, GError **error)
{
  g_autofree char *block_1 = g_strconcat (coder, ".mid.block_1", NULL);
  g_autofree char *attn_1 = g_strconcat (coder, ".mid.attn_1", NULL);
  g_autofree char *block_2 = g_strconcat (coder, ".mid.block_2", NULL);

  return find_resnet (st, block_1, c, c, &t->mid_block_1, error)
         && find_attn (st, attn_1, c, &t->mid_attn_1, error)
         && find_resnet (st, block_2, c, c, &t->mid_block_2, error);
}

/* How many of PREFIX + before + 0, 1, ... + after exist in a row. */
static int
count (AtSafetensors *st, const char *before, const char *after)
{
  for (int n = 0;; n++)
    {
      g_autofree char *full = g_strdup_printf (PREFIX "%s%d%s", before, n, after);

      if (at_safetensors_lookup (st, full) == NULL)
        return n;
    }
}

/* A 4-d conv weight's sizes, for reading widths off it. */
static gboolean
conv_shape (AtSafetensors *st, const char *name, gint64 ne[4], GError **error)
{
  const AtSafetensorsTensor *t = lookup (st, name, error);

  if (t == NULL)
    return FALSE;
  if (t->n_dims != 4)
    {
      g_autofree char *got = describe_shape (t->n_dims, t->ne);

      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: tensor '%s' is [%s], expected a convolution's four dimensions",
                   at_safetensors_get_name (st), t->name, got);
      return FALSE;
    }
  memcpy (ne, t->ne, 4 * sizeof (gint64));
  return TRUE;
}

static gboolean
read_hparams (AtSafetensors *st, AtVaeHParams *hp, gint64 *dz, GError **error)
{
  const char *file = at_safetensors_get_name (st);
  gint64 ne[4];

  hp->n_levels = count (st, "decoder.up.", ".block.0.conv1.weight");
  if (hp->n_levels == 0 || hp->n_levels > AT_VAE_MAX_LEVELS)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: the VAE decoder has %d levels ('" PREFIX
                   "decoder.up.N.block.0.conv1.weight'), not 1 to %d",
                   file, hp->n_levels, AT_VAE_MAX_LEVELS);
      return FALSE;
    }
  hp->n_res_blocks = count (st, "decoder.up.0.block.", ".conv1.weight") - 1;
  for (int i = 0; i < hp->n_levels; i++)
    {
      g_autofree char *name = g_strdup_printf ("decoder.up.%d.block.0.conv1.weight", i);

      if (!conv_shape (st, name, ne, error))
        return FALSE;
      hp->level_channels[i] = ne[3];
      if (ne[3] % GN_GROUPS != 0)
        {
          g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                       "%s: tensor '" PREFIX "%s' has %" G_GINT64_FORMAT
                       " output channels, not a multiple of the %d norm groups",
                       file, name, ne[3], GN_GROUPS);
          return FALSE;
        }
    }
  if (!conv_shape (st, "post_quant_conv.weight", ne, error))
    return FALSE;
  hp->z_channels = ne[2];
  *dz = ne[3];
  hp->ch = hp->level_channels[0];
  hp->downscale = 1 << (hp->n_levels - 1);
  hp->has_encoder = at_safetensors_lookup (st, PREFIX "encoder.conv_in.weight") != NULL;
  return TRUE;
}

static gboolean
find_decoder (AtSafetensors *st, const AtVaeHParams *hp, gint64 dz, AtVaeCoderTensors *t,
              GError **error)
{
  const int top = hp->n_levels - 1;
  const gint64 *lc = hp->level_channels;

  t->blocks_per_level = hp->n_res_blocks + 1;
  t->blocks = g_new0 (AtVaeResnetTensors, hp->n_levels * t->blocks_per_level);
  if (!find_conv (st, "post_quant_conv", 1, hp->z_channels, dz, &t->quant, error)
      || !find_conv (st, "decoder.conv_in", 3, dz, lc[top], &t->conv_in, error)
      || !find_mid (st, "decoder", lc[top], t, error))
    return FALSE;
  for (int i = top; i >= 0; i--)
    {
      for (int j = 0; j < t->blocks_per_level; j++)
        {
          g_autofree char *base = g_strdup_printf ("decoder.up.%d.block.%d", i, j);
          const gint64 c_in = j > 0 ? lc[i] : i == top ? lc[top] : lc[i + 1];

          if (!find_resnet (st, base, c_in, lc[i], &t->blocks[i * t->blocks_per_level + j], error))
            return FALSE;
        }
      if (i > 0)
        {
          g_autofree char *name = g_strdup_printf ("decoder.up.%d.upsample.conv", i);

          if (!find_conv (st, name, 3, lc[i], lc[i], &t->resample[i], error))
            return FALSE;
        }
    }
  return find_norm (st, "decoder.norm_out", lc[0], &t->norm_out, error)
         && find_conv (st, "decoder.conv_out", 3, lc[0], RGB, &t->conv_out, error);
}

static gboolean
find_encoder (AtSafetensors *st, const AtVaeHParams *hp, gint64 dz, AtVaeCoderTensors *t,
              GError **error)
{
  const int top = hp->n_levels - 1;
  const gint64 *lc = hp->level_channels;

  t->blocks_per_level = hp->n_res_blocks;
  t->blocks = g_new0 (AtVaeResnetTensors, hp->n_levels * t->blocks_per_level);
  if (!find_conv (st, "encoder.conv_in", 3, RGB, lc[0], &t->conv_in, error))
    return FALSE;
  for (int i = 0; i <= top; i++)
    {
      for (int j = 0; j < t->blocks_per_level; j++)
        {
          g_autofree char *base = g_strdup_printf ("encoder.down.%d.block.%d", i, j);
          const gint64 c_in = j > 0 ? lc[i] : i == 0 ? lc[0] : lc[i - 1];

          if (!find_resnet (st, base, c_in, lc[i], &t->blocks[i * t->blocks_per_level + j], error))
            return FALSE;
        }
      if (i < top)
        {
          g_autofree char *name = g_strdup_printf ("encoder.down.%d.downsample.conv", i);

          if (!find_conv (st, name, 3, lc[i], lc[i], &t->resample[i], error))
            return FALSE;
        }
    }
  return find_mid (st, "encoder", lc[top], t, error)
         && find_norm (st, "encoder.norm_out", lc[top], &t->norm_out, error)
         && find_conv (st, "encoder.conv_out", 3, lc[top], 2 * dz, &t->conv_out, error)
         && find_conv (st, "quant_conv", 1, 2 * dz, 2 * hp->z_channels, &t->quant, error);
}

gboolean
at_vae_file_init (AtVaeFile *file, AtSafetensors *st, GError **error)
{
  gint64 dz;

  memset (file, 0, sizeof *file);
  /* With either of the decoder's first tensors the VAE is there, and a missing part of
   * it is named below. */
  if (at_safetensors_lookup (st, PREFIX "post_quant_conv.weight") == NULL
      && at_safetensors_lookup (st, PREFIX "decoder.conv_in.weight") == NULL)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: no VAE in this checkpoint (no '" PREFIX "decoder.conv_in.weight')",
                   at_safetensors_get_name (st));
      return FALSE;
    }
  if (!read_hparams (st, &file->hp, &dz, error)
      || !find_decoder (st, &file->hp, dz, &file->decoder, error)
      || (file->hp.has_encoder && !find_encoder (st, &file->hp, dz, &file->encoder, error)))
    {
      at_vae_file_clear (file);
      return FALSE;
    }
  return TRUE;
}

void
at_vae_file_clear (AtVaeFile *file)
{
  g_clear_pointer (&file->decoder.blocks, g_free);
  g_clear_pointer (&file->encoder.blocks, g_free);
}

gboolean
at_vae_block_locate (const AtVaeHParams *hp, const char *name, gboolean *decoder, int *level,
                     int *index)
{
  static const char *mid[] = { "mid.block_1", "mid.attn_1", "mid.block_2" };
  const char *rest;
  int consumed = 0;

  if (g_str_has_prefix (name, "decoder."))
    *decoder = TRUE;
  else if (g_str_has_prefix (name, "encoder.") && hp->has_encoder)
    *decoder = FALSE;
  else
    return FALSE;
  rest = name + strlen ("decoder.");
  for (int i = 0; i < 3; i++)
    if (strcmp (rest, mid[i]) == 0)
      {
        *level = -1;
        *index = i;
        return TRUE;
      }
  if ((*decoder ? sscanf (rest, "up.%d.block.%d%n", level, index, &consumed)
                : sscanf (rest, "down.%d.block.%d%n", level, index, &consumed))
          != 2
      || rest[consumed] != '\0')
    return FALSE;
  return *level >= 0 && *level < hp->n_levels && *index >= 0
         && *index < hp->n_res_blocks + (*decoder ? 1 : 0);
}

/* --- Weights on the GPU ------------------------------------------------------------ */

typedef struct
{
  AtTensor w, b;
} Pair;

typedef struct
{
  Pair norm1, conv1, norm2, conv2, nin_shortcut;
  gboolean has_nin;
  gint64 c_in, c_out;
} Resnet;

/* q, k, v, proj_out weights as [C_in, C_out] matrices. */
typedef struct
{
  Pair norm, q, k, v, proj_out;
  gint64 c;
} Attn;

typedef struct
{
  Pair quant, conv_in, norm_out, conv_out;
  Resnet *blocks;
  int blocks_per_level;
  Pair resample[AT_VAE_MAX_LEVELS];
  Resnet mid_block_1, mid_block_2;
  Attn mid_attn_1;
} Coder;

/* Activation buffers, grown on demand and kept across tiles and calls. */
enum
{
  SLOT_X,  /* the running activation */
  SLOT_T1, /* two scratch activations of the same size */
  SLOT_T2,
  SLOT_Q, /* attention queries and keys [C, positions] */
  SLOT_K,
  SLOT_SCORES,   /* [positions, queries of a chunk] */
  SLOT_UPLOAD,   /* a tile's input, written by the CPU */
  SLOT_READBACK, /* a tile's output, read by the CPU */
  N_SLOTS
};

struct _AtVaeModel
{
  AtGpu *gpu;
  AtVaeHParams hp;
  gint64 dz; /* the decoder's conv_in width; the encoder's conv_out makes 2 dz */
  Coder decoder, encoder;
  GPtrArray *weights; /* AtGpuBuffer, one per tensor */
  guint64 weight_bytes;
  AtBatch *batch;
  AtGpuBuffer *slots[N_SLOTS];
  gsize slot_sizes[N_SLOTS];
  guint64 peak_activation_bytes;
  gint64 attn_chunk; /* 0: automatic */
};

/* t uploaded as [ne0, ne1, ne2, ne3] (its own element order): vectors and BF16 as F32
 * (conv2d and mul_mat's x take F32 and F16), F16 and F32 as they are. */
static gboolean
upload (AtVaeModel *model, const AtSafetensorsTensor *t, gint64 ne0, gint64 ne1, gint64 ne2,
        gint64 ne3, AtTensor *out, GError **error)
{
  const AtType type = t->n_dims == 1 || t->type == AT_TYPE_BF16 ? AT_TYPE_F32 : t->type;
  const gsize size = at_tensor_contiguous_size (type, ne0, ne1, ne2, ne3);
  g_autofree float *converted = NULL;
  const void *data = t->data;
  AtGpuBuffer *buffer;

  if (type != t->type)
    {
      converted = g_new (float, t->n_elements);
      at_ref_dequantize_row (t->type, t->data, converted, t->n_elements);
      data = converted;
    }
  if (!(buffer = at_gpu_buffer_new (model->gpu, size, AT_GPU_MEMORY_DEVICE, error)))
    {
      g_prefix_error (error, "tensor '%s': ", t->name);
      return FALSE;
    }
  g_ptr_array_add (model->weights, buffer);
  model->weight_bytes += size;
  *out = at_tensor_make (buffer, 0, type, ne0, ne1, ne2, ne3);
  return at_gpu_upload (model->gpu, buffer, 0, data, size, error);
}

/* A conv or norm as the file shapes it; matrix: the 2-d [C_in, C_out] of a 1x1 conv or
 * linear. */
static gboolean
load_pair (AtVaeModel *model, const AtVaeTensorPair *f, gboolean matrix, Pair *p, GError **error)
{
  const AtSafetensorsTensor *w = f->w;
  const gint64 c_out = f->b->ne[0];

  if (matrix)
    return upload (model, w, w->n_elements / c_out, c_out, 1, 1, &p->w, error)
           && upload (model, f->b, c_out, 1, 1, 1, &p->b, error);
  return upload (model, w, w->ne[0], w->n_dims > 1 ? w->ne[1] : 1, w->n_dims > 2 ? w->ne[2] : 1,
                 w->n_dims > 3 ? w->ne[3] : 1, &p->w, error)
         && upload (model, f->b, c_out, 1, 1, 1, &p->b, error);
}

static gboolean
load_resnet (AtVaeModel *model, const AtVaeResnetTensors *f, Resnet *r, GError **error)
{
  r->c_in = f->c_in;
  r->c_out = f->c_out;
  r->has_nin = f->nin_shortcut.w != NULL;
  return load_pair (model, &f->norm1, FALSE, &r->norm1, error)
         && load_pair (model, &f->conv1, FALSE, &r->conv1, error)
         && load_pair (model, &f->norm2, FALSE, &r->norm2, error)
         && load_pair (model, &f->conv2, FALSE, &r->conv2, error)
         && (!r->has_nin || load_pair (model, &f->nin_shortcut, FALSE, &r->nin_shortcut, error));
}

static gboolean
load_coder (AtVaeModel *model, const AtVaeCoderTensors *f, Coder *c, GError **error)
{
  const int n_blocks = model->hp.n_levels * f->blocks_per_level;
  const AtVaeAttnTensors *fa = &f->mid_attn_1;
  Attn *a = &c->mid_attn_1;

  c->blocks_per_level = f->blocks_per_level;
  c->blocks = g_new0 (Resnet, n_blocks);
  a->c = fa->norm.w->ne[0];
  if (!load_pair (model, &f->quant, FALSE, &c->quant, error)
      || !load_pair (model, &f->conv_in, FALSE, &c->conv_in, error)
      || !load_resnet (model, &f->mid_block_1, &c->mid_block_1, error)
      || !load_pair (model, &fa->norm, FALSE, &a->norm, error)
      || !load_pair (model, &fa->q, TRUE, &a->q, error)
      || !load_pair (model, &fa->k, TRUE, &a->k, error)
      || !load_pair (model, &fa->v, TRUE, &a->v, error)
      || !load_pair (model, &fa->proj_out, TRUE, &a->proj_out, error)
      || !load_resnet (model, &f->mid_block_2, &c->mid_block_2, error)
      || !load_pair (model, &f->norm_out, FALSE, &c->norm_out, error)
      || !load_pair (model, &f->conv_out, FALSE, &c->conv_out, error))
    return FALSE;
  for (int i = 0; i < n_blocks; i++)
    if (!load_resnet (model, &f->blocks[i], &c->blocks[i], error))
      return FALSE;
  for (int i = 0; i < model->hp.n_levels; i++)
    if (f->resample[i].w != NULL
        && !load_pair (model, &f->resample[i], FALSE, &c->resample[i], error))
      return FALSE;
  return TRUE;
}

AtVaeModel *
at_vae_model_new (AtGpu *gpu, AtSafetensors *st, GError **error)
{
  g_autoptr (AtVaeModel) model = g_new0 (AtVaeModel, 1);
  AtVaeFile file;
  gboolean ok;

  if (!at_vae_file_init (&file, st, error))
    return NULL;
  model->gpu = gpu;
  model->hp = file.hp;
  model->dz = file.decoder.conv_in.w->ne[2];
  model->weights = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  ok = load_coder (model, &file.decoder, &model->decoder, error)
       && (!file.hp.has_encoder || load_coder (model, &file.encoder, &model->encoder, error));
  at_vae_file_clear (&file);
  if (!ok)
    return NULL;
  model->batch = at_batch_new (gpu);
  return g_steal_pointer (&model);
}

void
at_vae_model_free (AtVaeModel *model)
{
  if (model == NULL)
    return;
  g_clear_pointer (&model->batch, at_batch_free);
  for (int i = 0; i < N_SLOTS; i++)
    g_clear_pointer (&model->slots[i], at_gpu_buffer_free);
  g_free (model->decoder.blocks);
  g_free (model->encoder.blocks);
  g_clear_pointer (&model->weights, g_ptr_array_unref);
  g_free (model);
}

const AtVaeHParams *
at_vae_model_get_hparams (AtVaeModel *model)
{
  return &model->hp;
}

guint64
at_vae_model_get_weight_bytes (AtVaeModel *model)
{
  return model->weight_bytes;
}

guint64
at_vae_model_get_peak_activation_bytes (AtVaeModel *model)
{
  return model->peak_activation_bytes;
}

void
at_vae_model_set_attn_chunk (AtVaeModel *model, gint64 n_queries)
{
  model->attn_chunk = MAX (n_queries, 0);
}

/* --- Activation memory ------------------------------------------------------------- */

/* The largest binding an activation may have. */
static guint64
binding_limit (AtVaeModel *model)
{
  return MIN (at_gpu_get_info (model->gpu)->max_storage_buffer_range, ACTIVATION_LIMIT);
}

/* Queries per attention chunk over n positions: the scores [n, chunk] in one binding. */
static gint64
attn_chunk (AtVaeModel *model, gint64 n)
{
  if (model->attn_chunk > 0)
    return MIN (model->attn_chunk, n);
  return CLAMP ((gint64)(binding_limit (model) / (4 * (guint64)n)), 1, n);
}

/* The most elements an activation of the decoder or encoder takes per latent pixel: a
 * level's resolution (4^(levels - 1 - i) pixels per latent pixel) times the widest of
 * its blocks' inputs and outputs (resampled activations are counted at the level that
 * consumes them). */
static gint64
elements_per_latent_pixel (const AtVaeHParams *hp, gboolean decoder)
{
  const int top = hp->n_levels - 1;
  gint64 most = 0;

  for (int i = 0; i <= top; i++)
    {
      const gint64 *lc = hp->level_channels;
      const gint64 c_in = decoder ? lc[MIN (i + 1, top)] : lc[MAX (i - 1, 0)];
      const gint64 pixels = (gint64)1 << (2 * (top - i));

      most = MAX (most, pixels * MAX (c_in, lc[i]));
    }
  return most;
}

static gboolean
ensure_slot (AtVaeModel *model, int slot, gsize size, GError **error)
{
  const AtGpuMemoryKind kind = slot == SLOT_UPLOAD     ? AT_GPU_MEMORY_UPLOAD
                               : slot == SLOT_READBACK ? AT_GPU_MEMORY_READBACK
                                                       : AT_GPU_MEMORY_DEVICE;
  guint64 total = 0;

  if (model->slot_sizes[slot] >= size)
    return TRUE;
  g_clear_pointer (&model->slots[slot], at_gpu_buffer_free);
  model->slot_sizes[slot] = 0;
  if (!(model->slots[slot] = at_gpu_buffer_new (model->gpu, size, kind, error)))
    {
      g_prefix_error (error, "VAE activations: ");
      return FALSE;
    }
  model->slot_sizes[slot] = size;
  for (int i = 0; i < N_SLOTS; i++)
    total += model->slot_sizes[i];
  model->peak_activation_bytes = MAX (model->peak_activation_bytes, total);
  return TRUE;
}

/* Buffers for a tile of w x h latent pixels whose input and output take in_bytes and
 * out_bytes. */
static gboolean
ensure_activations (AtVaeModel *model, gboolean decoder, gint64 w, gint64 h, gsize in_bytes,
                    gsize out_bytes, GError **error)
{
  const gint64 n = w * h, c = model->hp.level_channels[model->hp.n_levels - 1];
  const gsize act = (gsize)n * elements_per_latent_pixel (&model->hp, decoder) * 4;

  return ensure_slot (model, SLOT_X, act, error) && ensure_slot (model, SLOT_T1, act, error)
         && ensure_slot (model, SLOT_T2, act, error)
         && ensure_slot (model, SLOT_Q, (gsize)n * c * 4, error)
         && ensure_slot (model, SLOT_K, (gsize)n * c * 4, error)
         && ensure_slot (model, SLOT_SCORES, (gsize)n * attn_chunk (model, n) * 4, error)
         && ensure_slot (model, SLOT_UPLOAD, in_bytes, error)
         && ensure_slot (model, SLOT_READBACK, out_bytes, error);
}

/* --- The forward pass -------------------------------------------------------------- */

/* [w, h, c] F32 at the start of buffer. */
static AtTensor
act (AtGpuBuffer *buffer, gint64 w, gint64 h, gint64 c)
{
  return at_tensor_make (buffer, 0, AT_TYPE_F32, w, h, c, 1);
}

/* A bias [C] seen as [1, C], to add along the channels of a [positions, C] matrix. */
static AtTensor
as_row_bias (const AtTensor *b)
{
  return at_tensor_make (b->buffer, b->offset, AT_TYPE_F32, 1, b->ne[0], 1, 1);
}

static void
norm (AtBatch *batch, const Pair *p, const AtTensor *x, const AtTensor *dst, gboolean silu)
{
  at_op_group_norm (batch, x, &p->w, &p->b, dst, GN_GROUPS, GN_EPS, silu);
}

/* Stride 1, "same" padding. */
static void
conv (AtBatch *batch, const Pair *p, const AtTensor *x, const AtTensor *dst)
{
  at_op_conv2d (batch, &p->w, &p->b, x, dst, 1, (int)(p->w.ne[0] - 1) / 2);
}

/* The block on the activation in x; the result lands in x. */
static void
resnet (AtBatch *batch, const Resnet *r, AtGpuBuffer *x, AtGpuBuffer *t1, AtGpuBuffer *t2, gint64 w,
        gint64 h)
{
  const AtTensor in = act (x, w, h, r->c_in), out = act (x, w, h, r->c_out);
  const AtTensor a_in = act (t1, w, h, r->c_in), a = act (t1, w, h, r->c_out);
  const AtTensor b = act (t2, w, h, r->c_out);

  norm (batch, &r->norm1, &in, &a_in, TRUE);
  conv (batch, &r->conv1, &a_in, &b);
  norm (batch, &r->norm2, &b, &a, TRUE);
  conv (batch, &r->conv2, &a, &b);
  if (r->has_nin)
    {
      conv (batch, &r->nin_shortcut, &in, &a);
      at_op_add (batch, &a, &b, &out);
    }
  else
    at_op_add (batch, &in, &b, &out);
}

/* Single-head self-attention over the n = w h positions of x, the result in x. Queries
 * and keys are [C, n] (channels innermost, as mul_mat contracts them), values [n, C]
 * (the layout of x itself), so that scores [n_kv, chunk] = k · q_chunk, softmax along
 * the keys, and out [C, chunk] = v · scores are plain mul_mats; the queries go in
 * chunks so that the scores stay within one binding. */
static void
attention (AtVaeModel *model, const Attn *a, AtGpuBuffer *x_buf, AtGpuBuffer *t1, AtGpuBuffer *t2,
           gint64 w, gint64 h)
{
  const gint64 c = a->c, n = w * h, chunk = attn_chunk (model, n);
  AtBatch *batch = model->batch;
  AtGpuBuffer *q_buf = model->slots[SLOT_Q], *k_buf = model->slots[SLOT_K];
  const AtTensor x = act (x_buf, w, h, c), xn = act (t1, w, h, c);
  const AtTensor xn_rows = at_tensor_make (t1, 0, AT_TYPE_F32, n, c, 1, 1);
  const AtTensor xn_t = at_tensor_permute (&xn_rows, 1, 0, 2, 3);
  /* xn transposed; once q, k and v are made, the attention output. */
  const AtTensor xt = at_tensor_make (t2, 0, AT_TYPE_F32, c, n, 1, 1);
  const AtTensor q = at_tensor_make (q_buf, 0, AT_TYPE_F32, c, n, 1, 1);
  const AtTensor k = at_tensor_make (k_buf, 0, AT_TYPE_F32, c, n, 1, 1);
  const AtTensor v = xn_rows, proj = xn_rows, proj_act = xn;
  const AtTensor v_bias = as_row_bias (&a->v.b), proj_bias = as_row_bias (&a->proj_out.b);

  norm (batch, &a->norm, &x, &xn, FALSE);
  at_op_cpy (batch, &xn_t, &xt);
  at_op_mul_mat (batch, &a->q.w, &xt, &q);
  at_op_add (batch, &q, &a->q.b, &q);
  at_op_mul_mat (batch, &a->k.w, &xt, &k);
  at_op_add (batch, &k, &a->k.b, &k);
  at_op_mul_mat (batch, &xt, &a->v.w, &v);
  at_op_add (batch, &v, &v_bias, &v);
  for (gint64 i0 = 0; i0 < n; i0 += chunk)
    {
      const gint64 nc = MIN (chunk, n - i0);
      const AtTensor qc = at_tensor_make (q_buf, i0 * c * 4, AT_TYPE_F32, c, nc, 1, 1);
      const AtTensor s = at_tensor_make (model->slots[SLOT_SCORES], 0, AT_TYPE_F32, n, nc, 1, 1);
      const AtTensor out = at_tensor_make (t2, i0 * c * 4, AT_TYPE_F32, c, nc, 1, 1);

      at_op_mul_mat (batch, &k, &qc, &s);
      at_op_soft_max (batch, &s, NULL, &s, 1.0f / sqrtf ((float)c), FALSE, 0);
      at_op_mul_mat (batch, &v, &s, &out);
    }
  at_op_mul_mat (batch, &xt, &a->proj_out.w, &proj);
  at_op_add (batch, &proj, &proj_bias, &proj);
  at_op_add (batch, &x, &proj_act, &x);
}

static void
mid (AtVaeModel *model, const Coder *c, AtGpuBuffer *x, AtGpuBuffer *t1, AtGpuBuffer *t2, gint64 w,
     gint64 h)
{
  resnet (model->batch, &c->mid_block_1, x, t1, t2, w, h);
  attention (model, &c->mid_attn_1, x, t1, t2, w, h);
  resnet (model->batch, &c->mid_block_2, x, t1, t2, w, h);
}

/* Latent [w, h, z] in the upload slot to RGB [w ds, h ds, 3] in the readback slot. */
static void
record_decoder (AtVaeModel *model, gint64 w, gint64 h)
{
  const AtVaeHParams *hp = &model->hp;
  const Coder *d = &model->decoder;
  const gint64 *lc = hp->level_channels;
  AtBatch *batch = model->batch;
  AtGpuBuffer *x = model->slots[SLOT_X], *t1 = model->slots[SLOT_T1];
  AtGpuBuffer *t2 = model->slots[SLOT_T2];
  const AtTensor z = act (model->slots[SLOT_UPLOAD], w, h, hp->z_channels);
  const AtTensor zq = act (t1, w, h, model->dz);
  AtTensor in, out;

  conv (batch, &d->quant, &z, &zq);
  out = act (x, w, h, lc[hp->n_levels - 1]);
  conv (batch, &d->conv_in, &zq, &out);
  mid (model, d, x, t1, t2, w, h);
  for (int i = hp->n_levels - 1; i >= 0; i--)
    {
      for (int j = 0; j < d->blocks_per_level; j++)
        resnet (batch, &d->blocks[i * d->blocks_per_level + j], x, t1, t2, w, h);
      if (i == 0)
        break;
      in = act (x, w, h, lc[i]);
      w *= 2, h *= 2;
      out = act (t1, w, h, lc[i]);
      at_op_upscale_nearest (batch, &in, &out, 2);
      in = act (x, w, h, lc[i]);
      conv (batch, &d->resample[i], &out, &in);
    }
  in = act (x, w, h, lc[0]);
  out = act (t1, w, h, lc[0]);
  norm (batch, &d->norm_out, &in, &out, TRUE);
  in = act (t2, w, h, RGB);
  conv (batch, &d->conv_out, &out, &in);
  at_batch_copy (batch, t2, 0, model->slots[SLOT_READBACK], 0, at_tensor_extent (&in));
}

/* RGB [w, h, 3] in the upload slot to the moments [w / ds, h / ds, 2 z] (means, then
 * log-variances) in the readback slot. */
static void
record_encoder (AtVaeModel *model, gint64 w, gint64 h)
{
  const AtVaeHParams *hp = &model->hp;
  const Coder *e = &model->encoder;
  const gint64 *lc = hp->level_channels;
  AtBatch *batch = model->batch;
  AtGpuBuffer *x = model->slots[SLOT_X], *t1 = model->slots[SLOT_T1];
  AtGpuBuffer *t2 = model->slots[SLOT_T2], *swap;
  const gint64 top = lc[hp->n_levels - 1];
  AtTensor in = act (t2, w, h, RGB), out = act (x, w, h, lc[0]);

  /* The image is read nine times per output channel tile: from device memory. */
  at_batch_copy (batch, model->slots[SLOT_UPLOAD], 0, t2, 0, at_tensor_extent (&in));
  conv (batch, &e->conv_in, &in, &out);
  for (int i = 0; i < hp->n_levels; i++)
    {
      for (int j = 0; j < e->blocks_per_level; j++)
        resnet (batch, &e->blocks[i * e->blocks_per_level + j], x, t1, t2, w, h);
      if (i == hp->n_levels - 1)
        break;
      in = act (x, w, h, lc[i]);
      w /= 2, h /= 2;
      out = act (t1, w, h, lc[i]);
      /* ldm pads the right and bottom only, so the taps of output o are 2o .. 2o + 2. */
      at_op_conv2d_padded (batch, &e->resample[i].w, &e->resample[i].b, &in, &out, 2, 0, 1);
      swap = x, x = t1, t1 = swap;
    }
  mid (model, e, x, t1, t2, w, h);
  in = act (x, w, h, top);
  out = act (t1, w, h, top);
  norm (batch, &e->norm_out, &in, &out, TRUE);
  in = act (t2, w, h, 2 * model->dz);
  conv (batch, &e->conv_out, &out, &in);
  out = act (t1, w, h, 2 * hp->z_channels);
  conv (batch, &e->quant, &in, &out);
  at_batch_copy (batch, t1, 0, model->slots[SLOT_READBACK], 0, at_tensor_extent (&out));
}

/* --- Tiles ------------------------------------------------------------------------- */

/* One image (or latent) as planar [w, h, c] floats. */
typedef struct
{
  gint64 w, h, c;
} Planes;

/* The tile size in latent pixels for a w x h latent: the whole when it fits, else
 * tiles as close to tile (0: as large as fits) as the activations' bindings allow. */
static gboolean
plan_tiles (AtVaeModel *model, gboolean decoder, gint64 w, gint64 h, gint64 tile, gint64 *tw,
            gint64 *th, GError **error)
{
  const gint64 area
      = (gint64)(binding_limit (model) / 4 / elements_per_latent_pixel (&model->hp, decoder));
  const gint64 side = (gint64)sqrt ((double)area);

  if (side < 1)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "the device's storage buffers (%" G_GUINT64_FORMAT
                   " bytes) are too small for the VAE",
                   at_gpu_get_info (model->gpu)->max_storage_buffer_range);
      return FALSE;
    }
  *tw = MIN (w, tile > 0 ? tile : w);
  *th = MIN (h, tile > 0 ? tile : h);
  if (*tw * *th > area)
    {
      *tw = MIN (*tw, side);
      *th = MIN (*th, area / *tw);
    }
  return TRUE;
}

/* Starts of the tiles of size `size` covering `total`, spread evenly so that neighbours
 * overlap by at least `overlap`. */
static GArray *
tile_starts (gint64 total, gint64 size, gint64 overlap)
{
  GArray *starts = g_array_new (FALSE, FALSE, sizeof (gint64));
  const gint64 n = total <= size ? 1 : (total - overlap + size - overlap - 1) / (size - overlap);

  for (gint64 k = 0; k < n; k++)
    {
      const gint64 start = n == 1 ? 0 : k * (total - size) / (n - 1);

      g_array_append_val (starts, start);
    }
  return starts;
}

/* Blend weights along one axis of a tile of `size` output pixels: ramps of `ramp`
 * pixels towards the edges that a neighbour overlaps, 1 elsewhere. */
static void
axis_weights (float *weights, gint64 size, gboolean before, gboolean after, gint64 ramp)
{
  for (gint64 p = 0; p < size; p++)
    {
      double wt = 1.0;

      if (before && ramp > 0)
        wt = MIN (wt, (p + 0.5) / ramp);
      if (after && ramp > 0)
        wt = MIN (wt, (size - p - 0.5) / ramp);
      weights[p] = (float)wt;
    }
}

/* Runs the decoder or encoder over the latent grid [lw, lh] in tiles: input planes of
 * in_scale pixels per latent pixel, output of out_scale. */
static gboolean
run_tiled (AtVaeModel *model, gboolean decoder, const float *in, Planes in_planes, float *out,
           Planes out_planes, gint64 lw, gint64 lh, gint64 tile, GCancellable *cancellable,
           GError **error)
{
  const gint64 in_scale = in_planes.w / lw, out_scale = out_planes.w / lw;
  const gsize out_n = (gsize)out_planes.w * out_planes.h;
  g_autofree float *weight_sum = g_new0 (float, out_n);
  g_autoptr (GArray) xs = NULL, ys = NULL;
  g_autofree float *wx = NULL, *wy = NULL;
  gint64 tw, th, overlap;

  if (!plan_tiles (model, decoder, lw, lh, tile, &tw, &th, error))
    return FALSE;
  overlap = MIN (TILE_OVERLAP, MIN (tw, th) / 4);
  xs = tile_starts (lw, tw, overlap);
  ys = tile_starts (lh, th, overlap);
  wx = g_new (float, tw *out_scale);
  wy = g_new (float, th *out_scale);
  if (!ensure_activations (model, decoder, tw, th,
                           (gsize)tw * th * in_scale * in_scale * in_planes.c * 4,
                           (gsize)tw * th * out_scale * out_scale * out_planes.c * 4, error))
    return FALSE;
  memset (out, 0, out_n * out_planes.c * sizeof (float));
  for (guint ty = 0; ty < ys->len; ty++)
    for (guint tx = 0; tx < xs->len; tx++)
      {
        const gint64 x0 = g_array_index (xs, gint64, tx), y0 = g_array_index (ys, gint64, ty);
        const gint64 iw = tw * in_scale, ih = th * in_scale;
        const gint64 ow = tw * out_scale, oh = th * out_scale;
        float *up = at_gpu_buffer_get_mapped (model->slots[SLOT_UPLOAD]);
        const float *down = at_gpu_buffer_get_mapped (model->slots[SLOT_READBACK]);

        if (g_cancellable_set_error_if_cancelled (cancellable, error))
          return FALSE;
        for (gint64 c = 0; c < in_planes.c; c++)
          for (gint64 y = 0; y < ih; y++)
            memcpy (up + (c * ih + y) * iw,
                    in + (c * in_planes.h + y0 * in_scale + y) * in_planes.w + x0 * in_scale,
                    iw * sizeof (float));
        if (decoder)
          record_decoder (model, tw, th);
        else
          record_encoder (model, iw, ih);
        if (!at_batch_run (model->batch, error))
          return FALSE;
        axis_weights (wx, ow, tx > 0, tx + 1 < xs->len, overlap * out_scale);
        axis_weights (wy, oh, ty > 0, ty + 1 < ys->len, overlap * out_scale);
        for (gint64 y = 0; y < oh; y++)
          for (gint64 x = 0; x < ow; x++)
            {
              const gsize at = (gsize)(y0 * out_scale + y) * out_planes.w + x0 * out_scale + x;
              const float wt = wx[x] * wy[y];

              weight_sum[at] += wt;
              for (gint64 c = 0; c < out_planes.c; c++)
                out[c * out_n + at] += down[(c * oh + y) * ow + x] * wt;
            }
      }
  for (gint64 c = 0; c < out_planes.c; c++)
    for (gsize i = 0; i < out_n; i++)
      out[c * out_n + i] /= weight_sum[i];
  return TRUE;
}

static gboolean
check_size (gint64 width, gint64 height, gint64 multiple, const char *what, GError **error)
{
  if (width > 0 && height > 0 && width % multiple == 0 && height % multiple == 0)
    return TRUE;
  g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
               "VAE %s: size %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
               " must be positive multiples of %" G_GINT64_FORMAT,
               what, width, height, multiple);
  return FALSE;
}

gboolean
at_vae_model_decode (AtVaeModel *model, const float *latent, gint64 width, gint64 height,
                     gint64 tile_size, float *rgb, GCancellable *cancellable, GError **error)
{
  const gint64 ds = model->hp.downscale;
  const Planes in = { width, height, model->hp.z_channels };
  const Planes out = { width * ds, height * ds, RGB };

  return check_size (width, height, 1, "decode", error)
         && run_tiled (model, TRUE, latent, in, rgb, out, width, height, tile_size, cancellable,
                       error);
}

gboolean
at_vae_model_encode (AtVaeModel *model, const float *rgb, gint64 width, gint64 height,
                     gint64 tile_size, const float *noise, float *latent, GCancellable *cancellable,
                     GError **error)
{
  const gint64 ds = model->hp.downscale, z = model->hp.z_channels;
  const gint64 lw = width / ds, lh = height / ds;
  const gsize n = (gsize)lw * lh * z;
  const Planes in = { width, height, RGB }, out = { lw, lh, 2 * z };
  g_autofree float *moments = NULL;

  if (!model->hp.has_encoder)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "this checkpoint's VAE has no encoder (decoding only)");
      return FALSE;
    }
  if (!check_size (width, height, ds, "encode", error))
    return FALSE;
  moments = g_new (float, 2 * n);
  if (!run_tiled (model, FALSE, rgb, in, moments, out, lw, lh,
                  tile_size > 0 ? MAX (tile_size / ds, 1) : 0, cancellable, error))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    latent[i] = noise == NULL
                    ? moments[i]
                    : moments[i] + expf (0.5f * CLAMP (moments[n + i], -30.0f, 20.0f)) * noise[i];
  return TRUE;
}

/* --- Single blocks, flops ---------------------------------------------------------- */

gboolean
at_vae_model_run_block (AtVaeModel *model, const char *name, const float *x, gint64 width,
                        gint64 height, float *out, GError **error)
{
  const Coder *coder;
  const Resnet *r = NULL;
  gint64 c_in, c_out;
  gboolean decoder;
  int level, index;

  if (!at_vae_block_locate (&model->hp, name, &decoder, &level, &index))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT, "the VAE has no block '%s'", name);
      return FALSE;
    }
  coder = decoder ? &model->decoder : &model->encoder;
  if (level >= 0)
    r = &coder->blocks[level * coder->blocks_per_level + index];
  else if (index != 1)
    r = index == 0 ? &coder->mid_block_1 : &coder->mid_block_2;
  c_in = r ? r->c_in : coder->mid_attn_1.c;
  c_out = r ? r->c_out : c_in;
  /* Activation buffers hold at least a level-0 activation of a width x height tile. */
  if (!ensure_activations (model, decoder, width, height, (gsize)width * height * c_in * 4,
                           (gsize)width * height * c_out * 4, error))
    return FALSE;
  memcpy (at_gpu_buffer_get_mapped (model->slots[SLOT_UPLOAD]), x,
          (gsize)width * height * c_in * 4);
  at_batch_copy (model->batch, model->slots[SLOT_UPLOAD], 0, model->slots[SLOT_X], 0,
                 (gsize)width * height * c_in * 4);
  if (r)
    resnet (model->batch, r, model->slots[SLOT_X], model->slots[SLOT_T1], model->slots[SLOT_T2],
            width, height);
  else
    attention (model, &coder->mid_attn_1, model->slots[SLOT_X], model->slots[SLOT_T1],
               model->slots[SLOT_T2], width, height);
  at_batch_copy (model->batch, model->slots[SLOT_X], 0, model->slots[SLOT_READBACK], 0,
                 (gsize)width * height * c_out * 4);
  if (!at_batch_run (model->batch, error))
    return FALSE;
  memcpy (out, at_gpu_buffer_get_mapped (model->slots[SLOT_READBACK]),
          (gsize)width * height * c_out * 4);
  return TRUE;
}

static double
conv_flops (gint64 k, gint64 c_in, gint64 c_out, gint64 pixels)
{
  return 2.0 * k * k * c_in * c_out * pixels;
}

static double
resnet_flops (const Resnet *r, gint64 pixels)
{
  return conv_flops (3, r->c_in, r->c_out, pixels) + conv_flops (3, r->c_out, r->c_out, pixels)
         + (r->has_nin ? conv_flops (1, r->c_in, r->c_out, pixels) : 0.0);
}

double
at_vae_model_decode_flops (AtVaeModel *model, gint64 width, gint64 height)
{
  const AtVaeHParams *hp = &model->hp;
  const Coder *d = &model->decoder;
  const gint64 c = d->mid_attn_1.c;
  gint64 n = width * height;
  double flops = conv_flops (1, hp->z_channels, model->dz, n) + conv_flops (3, model->dz, c, n)
                 + resnet_flops (&d->mid_block_1, n)
                 + resnet_flops (&d->mid_block_2, n)
                 /* q, k, v, proj_out, then scores and their product with v */
                 + 4 * conv_flops (1, c, c, n) + 2 * 2.0 * c * n * n;

  for (int i = hp->n_levels - 1; i >= 0; i--)
    {
      for (int j = 0; j < d->blocks_per_level; j++)
        flops += resnet_flops (&d->blocks[i * d->blocks_per_level + j], n);
      if (i > 0)
        {
          n *= 4;
          flops += conv_flops (3, hp->level_channels[i], hp->level_channels[i], n);
        }
    }
  return flops + conv_flops (3, hp->level_channels[0], RGB, n);
}
