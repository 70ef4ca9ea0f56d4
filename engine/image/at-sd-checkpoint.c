/* at-sd-checkpoint.c: model family and text-encoder shape of LDM checkpoints. */
#include "image/at-sd-checkpoint.h"

#include <string.h>

#include "at-error.h"

#define SD1_PREFIX "cond_stage_model.transformer.text_model."
#define SD2_PREFIX "cond_stage_model.model."

/* Both CLIP text encoders use attention heads of 64. */
#define CLIP_HEAD_DIM 64

/* Layouts recognised only to be refused clearly: a tensor name prefix and the family. */
static const struct
{
  const char *prefix;
  const char *family;
} unsupported_families[] = {
  { "conditioner.embedders.", "SDXL" },
  { "model.diffusion_model.joint_blocks.", "SD 3" },
  { "model.diffusion_model.double_blocks.", "Flux" },
  { "double_blocks.", "Flux" },
};

/* The supported families: where their text encoder's tensors are. */
typedef struct
{
  const char *prefix;
  AtSdFamily family;
  AtSdPrediction prediction;
  int clip_skip;
  /* Under prefix; a layer's tensors are layers + N + "." + their name. */
  const char *token_embd, *pos_embd, *layers, *layer_norm, *fc1;
} Family;

static const Family families[] = {
  { SD1_PREFIX, AT_SD_FAMILY_SD1, AT_SD_PREDICTION_EPSILON, 1,
    "embeddings.token_embedding.weight", "embeddings.position_embedding.weight",
    "encoder.layers.", "layer_norm1.weight", "mlp.fc1.weight" },
  { SD2_PREFIX, AT_SD_FAMILY_SD2, AT_SD_PREDICTION_UNKNOWN, 2, "token_embedding.weight",
    "positional_embedding", "transformer.resblocks.", "ln_1.weight", "mlp.c_fc.weight" },
};

const char *
at_sd_family_name (AtSdFamily family)
{
  return family == AT_SD_FAMILY_SD1 ? "SD 1.x" : "SD 2.x";
}

const AtSafetensorsTensor *
at_sd_checkpoint_find_tensor (AtSafetensors *st, const char *name, gint64 ne0, gint64 ne1,
                              GError **error)
{
  const AtSafetensorsTensor *t = at_safetensors_lookup (st, name);
  guint n_dims = ne1 > 0 ? 2 : 1;

  if (t == NULL)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: tensor '%s' is missing",
                   at_safetensors_get_name (st), name);
      return NULL;
    }
  if (t->n_dims != n_dims || t->ne[0] != ne0 || (n_dims == 2 && t->ne[1] != ne1))
    {
      g_autoptr (GString) shape = g_string_new (NULL);
      g_autofree char *expected
          = n_dims == 2 ? g_strdup_printf ("%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT, ne0, ne1)
                        : g_strdup_printf ("%" G_GINT64_FORMAT, ne0);

      for (guint i = 0; i < t->n_dims; i++)
        g_string_append_printf (shape, "%s%" G_GINT64_FORMAT, i ? ", " : "", t->ne[i]);
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: tensor '%s' is [%s], expected [%s]",
                   at_safetensors_get_name (st), name, shape->str, expected);
      return NULL;
    }
  return at_safetensors_tensor_check_supported (st, t, error) ? t : NULL;
}

static gboolean
has_prefix (AtSafetensors *st, const char *prefix)
{
  for (guint i = 0; i < at_safetensors_get_n_tensors (st); i++)
    if (g_str_has_prefix (at_safetensors_get_tensor (st, i)->name, prefix))
      return TRUE;
  return FALSE;
}

/* Layers name.0.suffix, name.1.suffix, ... present in a row. */
static gint64
count_layers (AtSafetensors *st, const char *prefix, const char *suffix)
{
  gint64 n = 0;

  for (;; n++)
    {
      g_autofree char *name = g_strdup_printf ("%s%" G_GINT64_FORMAT ".%s", prefix, n, suffix);

      if (at_safetensors_lookup (st, name) == NULL)
        return n;
    }
}

/* A 2-D tensor's sizes, whatever they are, for reading hyper-parameters off it. */
static gboolean
read_matrix_shape (AtSafetensors *st, const char *name, gint64 *ne0, gint64 *ne1, GError **error)
{
  const AtSafetensorsTensor *t = at_safetensors_lookup (st, name);

  if (t == NULL || t->n_dims != 2)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   t == NULL ? "%s: tensor '%s' is missing" : "%s: tensor '%s' is not a matrix",
                   at_safetensors_get_name (st), name);
      return FALSE;
    }
  *ne0 = t->ne[0];
  *ne1 = t->ne[1];
  return TRUE;
}

static gboolean
read_clip_hparams (AtSafetensors *st, const char *token_embd, const char *pos_embd,
                   const char *layers, const char *layer_norm, const char *fc1,
                   AtClipTextHParams *hp, GError **error)
{
  g_autofree char *fc1_name = g_strdup_printf ("%s0.%s", layers, fc1);
  gint64 n_embd_pos, n_embd_ff;

  if (!read_matrix_shape (st, token_embd, &hp->n_embd, &hp->n_vocab, error)
      || !read_matrix_shape (st, pos_embd, &n_embd_pos, &hp->n_ctx, error))
    return FALSE;
  hp->n_layer = count_layers (st, layers, layer_norm);
  if (hp->n_layer == 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: the text encoder has no layers ('%s0.%s' is missing)",
                   at_safetensors_get_name (st), layers, layer_norm);
      return FALSE;
    }
  if (!read_matrix_shape (st, fc1_name, &n_embd_ff, &hp->n_ff, error))
    return FALSE;
  if (n_embd_pos != hp->n_embd || n_embd_ff != hp->n_embd || hp->n_embd % CLIP_HEAD_DIM != 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: text encoder widths disagree: '%s' %" G_GINT64_FORMAT ", '%s' %"
                   G_GINT64_FORMAT ", '%s' %" G_GINT64_FORMAT " (a multiple of %d)",
                   at_safetensors_get_name (st), token_embd, hp->n_embd, pos_embd, n_embd_pos,
                   fc1_name, n_embd_ff, CLIP_HEAD_DIM);
      return FALSE;
    }
  hp->n_head = hp->n_embd / CLIP_HEAD_DIM;
  return TRUE;
}

gboolean
at_sd_checkpoint_detect (AtSafetensors *st, AtSdCheckpointInfo *info, GError **error)
{
  memset (info, 0, sizeof *info);
  for (gsize i = 0; i < G_N_ELEMENTS (unsupported_families); i++)
    if (has_prefix (st, unsupported_families[i].prefix))
      {
        g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                     "%s: %s checkpoints are not supported yet (only SD 1.x and SD 2.x)",
                     at_safetensors_get_name (st), unsupported_families[i].family);
        return FALSE;
      }
  for (gsize i = 0; i < G_N_ELEMENTS (families); i++)
    {
      const Family *f = &families[i];
      g_autofree char *token_embd = g_strconcat (f->prefix, f->token_embd, NULL);
      g_autofree char *pos_embd = g_strconcat (f->prefix, f->pos_embd, NULL);
      g_autofree char *layers = g_strconcat (f->prefix, f->layers, NULL);

      if (!has_prefix (st, f->prefix))
        continue;
      info->family = f->family;
      info->prediction = f->prediction;
      info->default_clip_skip = f->clip_skip;
      return read_clip_hparams (st, token_embd, pos_embd, layers, f->layer_norm, f->fc1,
                                &info->clip, error);
    }
  g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
               "%s: this model family is not supported yet (no SD 1.x or SD 2.x text encoder "
               "under 'cond_stage_model.')",
               at_safetensors_get_name (st));
  return FALSE;
}

AtSdPrediction
at_sd_checkpoint_default_prediction (const AtSdCheckpointInfo *info, int image_size)
{
  if (info->prediction != AT_SD_PREDICTION_UNKNOWN)
    return info->prediction;
  return image_size >= 768 ? AT_SD_PREDICTION_V : AT_SD_PREDICTION_EPSILON;
}
