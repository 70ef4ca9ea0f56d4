/* at-image-model.c: the Stable Diffusion pipeline (see at-image-model.h).
 *
 * Latents are host floats in ggml order [w, h, 4] (PyTorch's NCHW memory order), so the
 * samplers of at-scheduler.c run on them as written; each denoiser call uploads the
 * latent, runs the UNet once on the batch [cond, uncond] and reads the result back,
 * which costs a few hundred kilobytes per step against seconds of GPU work.
 */
#include "image/at-image-model.h"

#include <math.h>
#include <string.h>

#include "at-engine-private.h"
#include "at-error.h"
#include "image/at-clip-text-model.h"
#include "image/at-clip-tokenizer.h"
#include "image/at-lora.h"
#include "image/at-scheduler.h"
#include "image/at-taesd.h"
#include "image/at-unet.h"
#include "image/at-vae.h"

/* The factor between the VAE's latent and the UNet's (LDM's scale_factor). */
#define LATENT_SCALE 0.18215f
#define LATENT_CHANNELS 4
#define MAX_SIDE 4096

struct _AtImageModel
{
  GObject parent_instance;

  AtEngine *engine;
  char *path, *name, *hash;
  AtSafetensors *st;
  AtSdCheckpointInfo info;
  AtClipTokenizer *tokenizer;
  gboolean inpainting;
  guint downscale; /* image pixels per latent pixel: 8 for every SD VAE */

  /* Touched by jobs only, one at a time. */
  AtClipTextModel *clip;
  AtUnetModel *unet; /* NULL after at_image_model_release_gpu */
  AtVaeModel *vae;
  AtTaesd *taesd;
  char *lora_signature; /* the LoRA set merged into st now; NULL for none */

  GMutex lock;         /* guards the fields below, set from the caller's thread */
  guint64 gpu_bytes;   /* of the parts, as the last job left them */
  char *preview_path;  /* the TAESD file wanted; NULL for the latent projection */
  gboolean preview_changed;
};

G_DEFINE_FINAL_TYPE (AtImageModel, at_image_model, G_TYPE_OBJECT)

static void
at_image_model_finalize (GObject *object)
{
  AtImageModel *model = AT_IMAGE_MODEL (object);

  g_clear_pointer (&model->clip, at_clip_text_model_free);
  g_clear_pointer (&model->unet, at_unet_model_free);
  g_clear_pointer (&model->vae, at_vae_model_free);
  g_clear_pointer (&model->taesd, at_taesd_free);
  g_clear_pointer (&model->tokenizer, at_clip_tokenizer_free);
  g_clear_pointer (&model->st, at_safetensors_free);
  g_clear_object (&model->engine);
  g_free (model->path);
  g_free (model->name);
  g_free (model->hash);
  g_free (model->lora_signature);
  g_free (model->preview_path);
  g_mutex_clear (&model->lock);
  G_OBJECT_CLASS (at_image_model_parent_class)->finalize (object);
}

static void
at_image_model_class_init (AtImageModelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = at_image_model_finalize;
}

static void
at_image_model_init (AtImageModel *model)
{
  g_mutex_init (&model->lock);
}

/* Called by jobs whenever they change the parts on the GPU. */
static void
update_gpu_bytes (AtImageModel *model)
{
  guint64 bytes = 0;

  if (model->clip != NULL)
    bytes += at_clip_text_model_get_gpu_bytes (model->clip);
  if (model->unet != NULL)
    bytes += at_unet_model_get_weight_bytes (model->unet)
             + at_unet_model_get_activation_bytes (model->unet);
  if (model->vae != NULL)
    bytes += at_vae_model_get_weight_bytes (model->vae)
             + at_vae_model_get_peak_activation_bytes (model->vae);
  g_mutex_lock (&model->lock);
  model->gpu_bytes = bytes;
  g_mutex_unlock (&model->lock);
}

/* --- Loading ------------------------------------------------------------------------ */

/* The CLIP vocabulary: $ATELIER_CLIP_VOCAB, the installed copy, or the source tree's
 * (for programs run from the build directory). */
static AtClipTokenizer *
open_tokenizer (GError **error)
{
  const char *candidates[] = { g_getenv ("ATELIER_CLIP_VOCAB"), AT_CLIP_VOCAB_INSTALLED,
                               AT_CLIP_VOCAB_SOURCE };

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (candidates[i] != NULL && g_file_test (candidates[i], G_FILE_TEST_EXISTS))
      return at_clip_tokenizer_new_from_file (candidates[i], error);
  g_set_error (error, AT_ERROR, AT_ERROR_FAILED,
               "the CLIP vocabulary is missing: neither %s nor %s exists (reinstall Atelier, "
               "or point ATELIER_CLIP_VOCAB at bpe_simple_vocab_16e6.txt.gz)",
               AT_CLIP_VOCAB_INSTALLED, AT_CLIP_VOCAB_SOURCE);
  return NULL;
}

/* A1111's "Model hash": the first 10 hex digits of the file's SHA-256. */
static char *
file_short_hash (const char *path, GCancellable *cancellable, GError **error)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GFileInputStream) in = g_file_read (file, cancellable, error);
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buffer = g_malloc (1 << 20);
  gssize n;

  if (in == NULL)
    return NULL;
  while ((n = g_input_stream_read (G_INPUT_STREAM (in), buffer, 1 << 20, cancellable, error)) > 0)
    g_checksum_update (sum, buffer, n);
  if (n < 0)
    return NULL;
  return g_strndup (g_checksum_get_string (sum), 10);
}

/* The checkpoint's bytes that become GPU weights, as a lower bound of what loading
 * needs. */
static guint64
checkpoint_weight_bytes (AtSafetensors *st)
{
  guint64 total = 0;

  for (guint i = 0; i < at_safetensors_get_n_tensors (st); i++)
    {
      const AtSafetensorsTensor *t = at_safetensors_get_tensor (st, i);

      if (g_str_has_prefix (t->name, "model.diffusion_model.")
          || g_str_has_prefix (t->name, "first_stage_model.")
          || g_str_has_prefix (t->name, "cond_stage_model."))
        total += t->size;
    }
  return total;
}

/* The UNet and VAE, uploaded when missing (after loading, LoRA changes or a release). */
static gboolean
ensure_gpu_parts (AtImageModel *model, GError **error)
{
  AtGpu *gpu = at_engine_get_gpu (model->engine);

  if (model->clip == NULL && !(model->clip = at_clip_text_model_new (gpu, model->st, error)))
    return FALSE;
  if (model->unet == NULL
      && !(model->unet = at_unet_model_new (gpu, model->st, &model->info, error)))
    return FALSE;
  if (model->vae == NULL && !(model->vae = at_vae_model_new (gpu, model->st, error)))
    return FALSE;
  return TRUE;
}

static GObject *
load (AtEngine *engine, AtLoadData *data, GCancellable *cancellable, GError **error)
{
  AtGpu *gpu = at_engine_get_gpu (engine);
  g_autoptr (AtImageModel) model = g_object_new (AT_TYPE_IMAGE_MODEL, NULL);
  g_autofree char *base = g_path_get_basename (data->path);
  char *dot;

  model->engine = g_object_ref (engine);
  model->path = g_strdup (data->path);
  if ((dot = strrchr (base, '.')) != NULL)
    *dot = '\0';
  model->name = g_strdup (base);
  if (!(model->st = at_safetensors_open (data->path, error))
      || !at_sd_checkpoint_detect (model->st, &model->info, error)
      /* Refused before anything is uploaded; activations come on top, checked per size. */
      || !at_gpu_check_free_memory (gpu, data->path, checkpoint_weight_bytes (model->st), error)
      || !(model->tokenizer = open_tokenizer (error)))
    return NULL;
  at_load_data_progress (data, 0.05);
  if (!(model->hash = file_short_hash (data->path, cancellable, error)))
    return NULL;
  at_load_data_progress (data, 0.3);
  if (g_cancellable_set_error_if_cancelled (cancellable, error)
      || !(model->clip = at_clip_text_model_new (gpu, model->st, error)))
    return NULL;
  at_load_data_progress (data, 0.4);
  if (g_cancellable_set_error_if_cancelled (cancellable, error)
      || !(model->unet = at_unet_model_new (gpu, model->st, &model->info, error)))
    return NULL;
  model->inpainting = at_unet_model_get_hparams (model->unet)->in_channels == 2 * LATENT_CHANNELS + 1;
  at_load_data_progress (data, 0.9);
  if (g_cancellable_set_error_if_cancelled (cancellable, error)
      || !(model->vae = at_vae_model_new (gpu, model->st, error)))
    return NULL;
  model->downscale = (guint)at_vae_model_get_hparams (model->vae)->downscale;
  update_gpu_bytes (model);
  at_load_data_progress (data, 1.0);
  return G_OBJECT (g_steal_pointer (&model));
}

void
at_image_model_load_async (AtEngine *engine, const char *path, GCancellable *cancellable,
                           AtLoadProgress progress, gpointer progress_data,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (AT_IS_ENGINE (engine));
  at_engine_queue_load (engine, path, 0, load, at_image_model_load_async, cancellable, progress,
                        progress_data, callback, user_data);
}

AtImageModel *
at_image_model_load_finish (GAsyncResult *result, GError **error)
{
  return at_engine_load_finish (result, at_image_model_load_async, error);
}

const char *
at_image_model_get_name (AtImageModel *model)
{
  g_return_val_if_fail (AT_IS_IMAGE_MODEL (model), NULL);
  return model->name;
}

const char *
at_image_model_get_hash (AtImageModel *model)
{
  g_return_val_if_fail (AT_IS_IMAGE_MODEL (model), NULL);
  return model->hash;
}

const AtSdCheckpointInfo *
at_image_model_get_info (AtImageModel *model)
{
  g_return_val_if_fail (AT_IS_IMAGE_MODEL (model), NULL);
  return &model->info;
}

gboolean
at_image_model_is_inpainting (AtImageModel *model)
{
  g_return_val_if_fail (AT_IS_IMAGE_MODEL (model), FALSE);
  return model->inpainting;
}

guint64
at_image_model_get_gpu_bytes (AtImageModel *model)
{
  guint64 bytes;

  g_return_val_if_fail (AT_IS_IMAGE_MODEL (model), 0);
  g_mutex_lock (&model->lock);
  bytes = model->gpu_bytes;
  g_mutex_unlock (&model->lock);
  return bytes;
}

/* --- Requests ------------------------------------------------------------------------ */

void
at_image_request_init (AtImageRequest *request)
{
  memset (request, 0, sizeof *request);
  request->width = request->height = 512;
  request->steps = 20;
  request->cfg_scale = 7.0;
  request->sampler = "Euler a";
  request->seed = -1;
  request->strength = 0.75;
}

void
at_image_result_free (AtImageResult *result)
{
  if (result == NULL)
    return;
  g_free (result->pixels);
  g_clear_pointer (&result->params, at_generation_params_free);
  g_free (result);
}

gboolean
at_image_result_save_png (const AtImageResult *result, const char *path, GError **error)
{
  g_autofree char *text = at_generation_params_to_text (result->params);

  return at_png_write (path, result->pixels, result->width, result->height, 3,
                       (gsize)result->width * 3, text, error);
}

/* A request as the job keeps it: every pointer owned. */
typedef struct
{
  char *prompt, *negative_prompt, *sampler_name;
  guint width, height, steps;
  double cfg_scale, strength;
  AtSamplerKind sampler;
  gboolean karras;
  gint64 seed;
  int clip_skip;
  AtSdPrediction prediction;
  guint8 *init_image, *mask;
  char **lora_paths;
  float *lora_weights;
  guint n_loras;
  gboolean previews;
  AtImageStepCallback on_step;
  gpointer step_data;
  GTask *task; /* not a reference */
} Job;

static void
job_free (Job *job)
{
  g_free (job->prompt);
  g_free (job->negative_prompt);
  g_free (job->sampler_name);
  g_free (job->init_image);
  g_free (job->mask);
  g_strfreev (job->lora_paths);
  g_free (job->lora_weights);
  g_free (job);
}

/* Refuses what cannot work, with what to change. */
static gboolean
check_request (AtImageModel *model, const AtImageRequest *r, GError **error)
{
  const char *sampler = r->sampler != NULL ? r->sampler : "Euler a";

#define REFUSE(...)                                                                                \
  do                                                                                               \
    {                                                                                              \
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT, __VA_ARGS__);                       \
      return FALSE;                                                                                \
    }                                                                                              \
  while (0)
  if (r->prompt == NULL)
    REFUSE ("an image needs a prompt (it may be empty)");
  if (r->width % 8 != 0 || r->height % 8 != 0 || r->width < 64 || r->height < 64)
    REFUSE ("%u×%u cannot be generated: width and height must be multiples of 8, at least 64",
            r->width, r->height);
  if (r->width % model->downscale != 0 || r->height % model->downscale != 0)
    REFUSE ("%u×%u cannot be generated: this model's VAE needs multiples of %u", r->width,
            r->height, model->downscale);
  if (r->width > MAX_SIDE || r->height > MAX_SIDE)
    REFUSE ("%u×%u is too large: at most %u pixels a side", r->width, r->height, MAX_SIDE);
  if (r->steps < 1 || r->steps > AT_MAX_STEPS)
    REFUSE ("%u steps: choose between 1 and %u", r->steps, AT_MAX_STEPS);
  if (!(r->cfg_scale >= 1.0 && r->cfg_scale <= 100.0))
    REFUSE ("a CFG scale of %g: choose between 1 and 100", r->cfg_scale);
  if (at_sampler_kind_from_name (sampler, NULL) < 0)
    REFUSE ("unknown sampler “%s”: choose Euler, Euler a, DPM++ 2M, DPM++ 2M Karras, DDIM or LCM",
            sampler);
  if (r->clip_skip < 0 || r->clip_skip > model->info.clip.n_layer)
    REFUSE ("a clip skip of %d: this model's text encoder has %" G_GINT64_FORMAT " layers",
            r->clip_skip, model->info.clip.n_layer);
  if (r->init_image != NULL && !(r->strength > 0.0 && r->strength <= 1.0))
    REFUSE ("a denoising strength of %g: choose more than 0 and at most 1", r->strength);
  if (r->mask != NULL && r->init_image == NULL)
    REFUSE ("a mask needs an image to paint into");
  for (guint i = 0; i < r->n_loras; i++)
    if (r->loras[i].path == NULL || !isfinite (r->loras[i].weight))
      REFUSE ("LoRA %u has no file or no weight", i + 1);
#undef REFUSE
  return TRUE;
}

static Job *
job_new (const AtImageRequest *r)
{
  Job *job = g_new0 (Job, 1);
  const gsize pixels = (gsize)r->width * r->height;

  job->prompt = g_strdup (r->prompt);
  job->negative_prompt = g_strdup (r->negative_prompt != NULL ? r->negative_prompt : "");
  job->sampler_name = g_strdup (r->sampler != NULL ? r->sampler : "Euler a");
  job->sampler = at_sampler_kind_from_name (job->sampler_name, &job->karras);
  job->width = r->width;
  job->height = r->height;
  job->steps = r->steps;
  job->cfg_scale = r->cfg_scale;
  job->strength = r->strength;
  job->seed = r->seed >= 0 ? r->seed : (gint64)g_random_int ();
  job->clip_skip = r->clip_skip;
  job->prediction = r->prediction;
  if (r->init_image != NULL)
    job->init_image = g_memdup2 (r->init_image, pixels * 3);
  if (r->mask != NULL)
    job->mask = g_memdup2 (r->mask, pixels);
  job->n_loras = r->n_loras;
  job->lora_paths = g_new0 (char *, r->n_loras + 1);
  job->lora_weights = g_new (float, MAX (r->n_loras, 1));
  for (guint i = 0; i < r->n_loras; i++)
    {
      job->lora_paths[i] = g_strdup (r->loras[i].path);
      job->lora_weights[i] = r->loras[i].weight;
    }
  job->previews = r->previews;
  return job;
}

/* --- LoRA ---------------------------------------------------------------------------- */

static char *
lora_signature (const Job *job)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < job->n_loras; i++)
    if (job->lora_weights[i] != 0.0f)
      g_string_append_printf (s, "%s\n%a\n", job->lora_paths[i], job->lora_weights[i]);
  return s->len > 0 ? g_string_free (s, FALSE) : (g_string_free (s, TRUE), NULL);
}

/* Merges the job's LoRAs into the checkpoint's weights and rebuilds the parts that read
 * them, unless the same set is merged already. */
static gboolean
apply_loras (AtImageModel *model, const Job *job, GError **error)
{
  g_autofree char *signature = lora_signature (job);
  g_autoptr (GPtrArray) loras = g_ptr_array_new_with_free_func ((GDestroyNotify)at_lora_free);
  g_autofree float *weights = g_new (float, MAX (job->n_loras, 1));
  g_auto (GStrv) unmatched = NULL;
  guint n_patched;

  if (g_strcmp0 (signature, model->lora_signature) == 0)
    return TRUE;
  for (guint i = 0; i < job->n_loras; i++)
    {
      AtLora *lora;

      if (job->lora_weights[i] == 0.0f)
        continue;
      if (!(lora = at_lora_open (job->lora_paths[i], error)))
        return FALSE;
      weights[loras->len] = job->lora_weights[i];
      g_ptr_array_add (loras, lora);
    }
  /* The parts are rebuilt from the patched bytes; drop them first so that the GPU never
   * holds two copies. */
  g_clear_pointer (&model->clip, at_clip_text_model_free);
  g_clear_pointer (&model->unet, at_unet_model_free);
  g_clear_pointer (&model->lora_signature, g_free);
  if (!at_lora_apply (model->st, &model->info, (AtLora *const *)loras->pdata, weights, loras->len,
                      &n_patched, &unmatched, error))
    {
      /* Whatever was half-merged is undone: the file's own weights come back. */
      at_lora_apply (model->st, &model->info, NULL, NULL, 0, &n_patched, NULL, NULL);
      return FALSE;
    }
  if (unmatched != NULL && unmatched[0] != NULL)
    g_message ("%u LoRA modules match nothing in %s, e.g. %s", g_strv_length (unmatched),
               model->name, unmatched[0]);
  model->lora_signature = g_steal_pointer (&signature);
  return TRUE;
}

/* --- Conditioning -------------------------------------------------------------------- */

/* [n_chunks * 77][n_embd] for prompt. */
static float *
encode_prompt (AtImageModel *model, const char *prompt, int clip_skip, guint *n_chunks,
               GError **error)
{
  /* OpenCLIP pads with 0, CLIP with EOS (as each was trained). */
  const gint32 pad = model->info.family == AT_SD_FAMILY_SD2 ? 0
                                                            : at_clip_tokenizer_get_eos (model->tokenizer);
  g_autoptr (AtClipPromptTokens) tokens = at_clip_tokenizer_encode_prompt (model->tokenizer, prompt,
                                                                           pad, error);
  const gint64 n_embd = model->info.clip.n_embd;
  g_autofree float *out = NULL;

  if (tokens == NULL)
    return NULL;
  out = g_new (float, (gsize)tokens->n_chunks * AT_CLIP_CONTEXT * n_embd);
  if (!at_clip_text_model_encode_prompt (model->clip, tokens, clip_skip, out, error))
    return NULL;
  *n_chunks = tokens->n_chunks;
  return g_steal_pointer (&out);
}

/* The UNet's context for the batch: cond, then (with CFG) uncond, both padded to the same
 * number of 77-token windows with the empty prompt's encoding, as A1111 pads them. */
static float *
build_context (AtImageModel *model, const Job *job, gboolean cfg, gint64 *n_ctx, GError **error)
{
  const int clip_skip = job->clip_skip > 0 ? job->clip_skip : model->info.default_clip_skip;
  const gsize window = (gsize)AT_CLIP_CONTEXT * model->info.clip.n_embd;
  guint n_cond = 0, n_uncond = 0, n_empty = 0, n;
  g_autofree float *cond = encode_prompt (model, job->prompt, clip_skip, &n_cond, error);
  g_autofree float *uncond = NULL, *empty = NULL;
  float *context;

  if (cond == NULL)
    return NULL;
  if (cfg && !(uncond = encode_prompt (model, job->negative_prompt, clip_skip, &n_uncond, error)))
    return NULL;
  n = MAX (n_cond, n_uncond);
  if (n > MIN (n_cond, cfg ? n_uncond : n_cond)
      && !(empty = encode_prompt (model, "", clip_skip, &n_empty, error)))
    return NULL;

  context = g_new (float, (cfg ? 2 : 1) * n * window);
  for (guint b = 0; b < (cfg ? 2u : 1u); b++)
    {
      const float *src = b == 0 ? cond : uncond;
      const guint have = b == 0 ? n_cond : n_uncond;
      float *dst = context + (gsize)b * n * window;

      memcpy (dst, src, have * window * sizeof (float));
      for (guint c = have; c < n; c++)
        memcpy (dst + c * window, empty, window * sizeof (float));
    }
  *n_ctx = (gint64)n * AT_CLIP_CONTEXT;
  return context;
}

/* --- Images and latents -------------------------------------------------------------- */

/* RGB8 interleaved → planar [-1, 1]. */
static float *
image_to_planar (const guint8 *rgb, gsize pixels)
{
  float *out = g_new (float, pixels * 3);

  for (gsize i = 0; i < pixels; i++)
    for (int c = 0; c < 3; c++)
      out[c * pixels + i] = rgb[i * 3 + c] / 127.5f - 1.0f;
  return out;
}

/* Planar [lo, lo + range] → RGB8 interleaved, rounded and clamped. */
static void
planar_to_image (const float *planar, gsize pixels, float lo, float range, guint8 *rgb)
{
  for (gsize i = 0; i < pixels; i++)
    for (int c = 0; c < 3; c++)
      {
        float v = (planar[c * pixels + i] - lo) / range * 255.0f + 0.5f;

        rgb[i * 3 + c] = (guint8)CLAMP (v, 0.0f, 255.0f);
      }
}

/* The mask at latent size: the fraction of repainted pixels in each ds×ds cell (A1111
 * resizes the mask to the latent with a box filter too). */
static float *
mask_to_latent (const guint8 *mask, guint width, guint height, guint ds)
{
  const guint lw = width / ds, lh = height / ds;
  float *out = g_new0 (float, (gsize)lw * lh);

  for (guint y = 0; y < height; y++)
    for (guint x = 0; x < width; x++)
      if (mask[(gsize)y * width + x] > 127)
        out[(gsize)(y / ds) * lw + x / ds] += 1.0f / (ds * ds);
  return out;
}

/* latent [lw, lh, 4] of an RGB8 image, in the UNet's scale. */
static float *
encode_image (AtImageModel *model, const guint8 *rgb, guint width, guint height,
              GCancellable *cancellable, GError **error)
{
  const gsize n_latent
      = (gsize)(width / model->downscale) * (height / model->downscale) * LATENT_CHANNELS;
  g_autofree float *planar = image_to_planar (rgb, (gsize)width * height);
  g_autofree float *latent = g_new (float, n_latent);

  /* The posterior's mean rather than a sample: the same init image always gives the
   * same latent, whatever the seed. */
  if (!at_vae_model_encode (model->vae, planar, width, height, 0, NULL, latent, cancellable,
                            error))
    return NULL;
  for (gsize i = 0; i < n_latent; i++)
    latent[i] *= LATENT_SCALE;
  return g_steal_pointer (&latent);
}

/* A1111's "Approx cheap" preview (sd_vae_approx.cheap_approximation): each latent
 * channel's contribution to R, G and B of SD 1.x/2.x's VAE, fitted linearly. */
static const float latent_rgb[LATENT_CHANNELS][3] = {
  { 0.298f, 0.207f, 0.208f },
  { 0.187f, 0.286f, 0.173f },
  { -0.158f, 0.189f, 0.264f },
  { -0.184f, -0.271f, -0.473f },
};

/* --- Sampling ------------------------------------------------------------------------ */

typedef struct
{
  AtImageModel *model;
  Job *job;
  GCancellable *cancellable;
  AtNoiseSchedule schedule;
  AtPrediction prediction;
  gint64 lw, lh, n_ctx;
  gboolean cfg;
  const float *context;
  /* Inpainting: the latent-size mask (1 = repaint), and for 9-channel checkpoints the
   * latent of the masked image; for the others the init latent put back outside it. */
  const float *mask, *masked_latent, *init_latent;
  float *unet_in, *unet_out; /* the batch, for the UNet */
  guint n_steps;
  gint64 t_start;
} Sampling;

static gboolean
denoise (const float *x, float sigma, float *denoised, gpointer data, GError **error)
{
  Sampling *s = data;
  const gsize plane = (gsize)s->lw * s->lh, n = plane * LATENT_CHANNELS;
  const int batch = s->cfg ? 2 : 1;
  const AtDenoiserScalings sc = at_denoiser_scalings (s->prediction, sigma);
  const float t = (float)at_noise_schedule_sigma_to_t (&s->schedule, sigma);
  const float timesteps[2] = { t, t };
  const gint64 in_ch = at_unet_model_get_hparams (s->model->unet)->in_channels;

  for (int b = 0; b < batch; b++)
    {
      float *in = s->unet_in + (gsize)b * plane * in_ch;

      for (gsize i = 0; i < n; i++)
        in[i] = x[i] * (float)sc.c_in;
      if (in_ch > LATENT_CHANNELS)
        {
          memcpy (in + n, s->mask, plane * sizeof (float));
          memcpy (in + n + plane, s->masked_latent, n * sizeof (float));
        }
    }
  if (!at_unet_model_forward (s->model->unet, s->unet_in, s->lw, s->lh, batch, timesteps,
                              s->context, s->n_ctx, s->unet_out, error))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    {
      float out = s->unet_out[i];

      if (s->cfg)
        out = s->unet_out[n + i] + (float)s->job->cfg_scale * (out - s->unet_out[n + i]);
      denoised[i] = (float)(sc.c_skip * x[i] + sc.c_out * out);
    }
  /* Masked img2img with an ordinary checkpoint: outside the mask the estimate is the
   * source itself (A1111's CFGDenoiser does the same). */
  if (s->init_latent != NULL)
    for (gsize i = 0; i < n; i++)
      {
        const float m = s->mask[i % plane];

        denoised[i] = s->init_latent[i] * (1.0f - m) + denoised[i] * m;
      }
  return TRUE;
}

typedef struct
{
  AtImageStepCallback callback;
  gpointer data;
  guint step, n_steps;
  guint8 *preview;
  guint width, height;
} StepNote;

static void
step_note_free (StepNote *note)
{
  g_free (note->preview);
  g_free (note);
}

static gboolean
deliver_step (gpointer user_data)
{
  StepNote *note = user_data;

  note->callback (note->step, note->n_steps, note->preview, note->width, note->height,
                  note->data);
  return G_SOURCE_REMOVE;
}

/* The model's current estimate as a small image: TAESD when loaded, else the linear
 * projection at the latent's size. */
static guint8 *
preview_image (Sampling *s, const float *denoised, guint *width, guint *height)
{
  const gsize plane = (gsize)s->lw * s->lh;
  guint8 *rgb;

  /* TAESD upscales by 8, as SD's VAE does. */
  if (s->model->taesd != NULL && s->model->downscale == 8)
    {
      const gsize pixels = plane * 64;
      g_autofree float *planar = g_new (float, pixels * 3);
      g_autoptr (GError) error = NULL;

      if (at_taesd_decode (s->model->taesd, denoised, s->lw, s->lh, planar, &error))
        {
          rgb = g_new (guint8, pixels * 3);
          planar_to_image (planar, pixels, 0.0f, 1.0f, rgb);
          *width = s->lw * 8;
          *height = s->lh * 8;
          return rgb;
        }
      /* A preview is not worth failing the image for. */
      g_warning ("TAESD preview failed: %s", error->message);
    }
  rgb = g_new (guint8, plane * 3);
  for (gsize i = 0; i < plane; i++)
    for (int c = 0; c < 3; c++)
      {
        float v = 0.0f;

        for (int k = 0; k < LATENT_CHANNELS; k++)
          v += denoised[k * plane + i] * latent_rgb[k][c];
        rgb[i * 3 + c] = (guint8)CLAMP ((v + 1.0f) * 127.5f + 0.5f, 0.0f, 255.0f);
      }
  *width = s->lw;
  *height = s->lh;
  return rgb;
}

static void
on_sampler_step (guint step, guint n_steps, const float *x, const float *denoised, gsize n,
                 gpointer data)
{
  Sampling *s = data;
  StepNote *note;

  if (s->job->on_step == NULL)
    return;
  note = g_new0 (StepNote, 1);
  note->callback = s->job->on_step;
  note->data = s->job->step_data;
  note->step = step + 1;
  note->n_steps = n_steps;
  if (s->job->previews)
    note->preview = preview_image (s, denoised, &note->width, &note->height);
  at_engine_job_notify (s->job->task, deliver_step, note, (GDestroyNotify)step_note_free);
}

static void
update_preview_decoder (AtImageModel *model)
{
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;

  g_mutex_lock (&model->lock);
  if (model->preview_changed)
    {
      path = g_strdup (model->preview_path);
      model->preview_changed = FALSE;
      g_clear_pointer (&model->taesd, at_taesd_free);
    }
  g_mutex_unlock (&model->lock);
  if (path != NULL
      && !(model->taesd = at_taesd_new (at_engine_get_gpu (model->engine), path, &error)))
    g_warning ("previews fall back to the latent projection: %s", error->message);
}

static AtGenerationParams *
describe (AtImageModel *model, const Job *job)
{
  AtGenerationParams *p = at_generation_params_new ();

  g_free (p->prompt);
  p->prompt = g_strdup (job->prompt);
  g_free (p->negative_prompt);
  p->negative_prompt = g_strdup (job->negative_prompt);
  p->steps = job->steps;
  p->sampler = g_strdup (at_sampler_kind_name (job->sampler));
  if (job->karras)
    p->schedule_type = g_strdup ("Karras");
  p->cfg_scale = job->cfg_scale;
  p->seed = job->seed;
  p->width = job->width;
  p->height = job->height;
  p->model_hash = g_strdup (model->hash);
  p->model = g_strdup (model->name);
  if (job->init_image != NULL)
    p->denoising_strength = job->strength;
  if (job->clip_skip > 1)
    {
      g_autofree char *clip_skip = g_strdup_printf ("%d", job->clip_skip);

      at_generation_params_add_extra (p, "Clip skip", clip_skip);
    }
  if (job->n_loras > 0)
    {
      g_autoptr (GString) loras = g_string_new (NULL);

      for (guint i = 0; i < job->n_loras; i++)
        {
          g_autofree char *base = g_path_get_basename (job->lora_paths[i]);

          g_string_append_printf (loras, "%s%s: %g", i > 0 ? "; " : "", base,
                                  job->lora_weights[i]);
        }
      at_generation_params_add_extra (p, "LoRA", loras->str);
    }
  return p;
}

static AtPrediction
job_prediction (AtImageModel *model, const Job *job)
{
  AtSdPrediction p = job->prediction;

  if (p == AT_SD_PREDICTION_UNKNOWN)
    p = at_sd_checkpoint_default_prediction (&model->info, MAX (job->width, job->height));
  return p == AT_SD_PREDICTION_V ? AT_PREDICTION_V : AT_PREDICTION_EPSILON;
}

static AtImageResult *
generate (AtImageModel *model, Job *job, GCancellable *cancellable, GError **error)
{
  const gint64 start_time = g_get_monotonic_time ();
  const guint lw = job->width / model->downscale, lh = job->height / model->downscale;
  const gsize plane = (gsize)lw * lh, n = plane * LATENT_CHANNELS;
  const gsize pixels = (gsize)job->width * job->height;
  Sampling s = { model, job, cancellable };
  g_autofree float *sigmas = NULL, *x = NULL, *context = NULL, *mask = NULL;
  g_autofree float *init_latent = NULL, *masked_latent = NULL, *planar = NULL;
  g_autofree float *unet_in = NULL, *unet_out = NULL;
  g_autoptr (AtRng) rng = NULL;
  g_autoptr (AtImageResult) result = NULL;
  guint n_sampler_steps, start = 0;
  gint64 in_ch;
  AtScheduleKind kind;

  update_preview_decoder (model);
  if (!apply_loras (model, job, error) || !ensure_gpu_parts (model, error))
    return NULL;
  in_ch = at_unet_model_get_hparams (model->unet)->in_channels;

  s.cfg = job->cfg_scale != 1.0;
  s.lw = lw;
  s.lh = lh;
  s.prediction = job_prediction (model, job);
  at_noise_schedule_init_sd (&s.schedule);
  if (!(context = build_context (model, job, s.cfg, &s.n_ctx, error)))
    return NULL;
  s.context = context;
  kind = job->karras ? AT_SCHEDULE_KARRAS : at_sampler_kind_default_schedule (job->sampler);
  if (!(sigmas = at_noise_schedule_sigmas (&s.schedule, kind, job->steps, &n_sampler_steps,
                                           error)))
    return NULL;

  /* The noise: torch.randn (seed) over the latent, as A1111's CPU generator. */
  rng = at_rng_new ((guint64)job->seed);
  x = g_new (float, n);
  at_rng_randn (rng, x, n);

  if (job->mask != NULL || in_ch > LATENT_CHANNELS)
    {
      if (job->mask != NULL)
        mask = mask_to_latent (job->mask, job->width, job->height, model->downscale);
      else
        {
          /* An inpainting checkpoint asked for a plain image repaints everything. */
          mask = g_new (float, plane);
          for (gsize i = 0; i < plane; i++)
            mask[i] = 1.0f;
        }
      s.mask = mask;
    }
  if (in_ch > LATENT_CHANNELS)
    {
      /* The 9-channel UNet sees the image with the repainted part grey (0 in [-1, 1]). */
      g_autofree guint8 *masked = g_malloc (pixels * 3);

      for (gsize i = 0; i < pixels; i++)
        for (int c = 0; c < 3; c++)
          masked[i * 3 + c] = job->init_image == NULL
                                      || (job->mask != NULL && job->mask[i] > 127)
                                  ? 128
                                  : job->init_image[i * 3 + c];
      if (!(masked_latent = encode_image (model, masked, job->width, job->height, cancellable,
                                          error)))
        return NULL;
      s.masked_latent = masked_latent;
    }
  if (job->init_image != NULL)
    {
      if (!(init_latent = encode_image (model, job->init_image, job->width, job->height,
                                        cancellable, error)))
        return NULL;
      start = at_schedule_img2img_start (n_sampler_steps, job->strength);
      if (job->sampler == AT_SAMPLER_DDIM)
        {
          /* DDIM's state is the VP latent: sqrt (a) x0 + sqrt (1 - a) eps. */
          const double sigma = sigmas[start], norm = sqrt (1.0 + sigma * sigma);

          for (gsize i = 0; i < n; i++)
            x[i] = (float)((init_latent[i] + sigma * x[i]) / norm);
        }
      else
        for (gsize i = 0; i < n; i++)
          x[i] = init_latent[i] + sigmas[start] * x[i];
      if (job->mask != NULL && in_ch == LATENT_CHANNELS)
        s.init_latent = init_latent;
    }
  else
    {
      const float scale = (float)at_scheduler_noise_scale (job->sampler, sigmas[0]);

      for (gsize i = 0; i < n; i++)
        x[i] *= scale;
    }

  unet_in = g_new0 (float, plane * in_ch * 2);
  unet_out = g_new (float, n * 2);
  s.unet_in = unet_in;
  s.unet_out = unet_out;
  if (!at_scheduler_sample (job->sampler, sigmas + start, n_sampler_steps - start, x, n, denoise,
                            &s, rng, on_sampler_step, cancellable, error))
    return NULL;

  /* The VAE decodes the latent in its own scale. */
  for (gsize i = 0; i < n; i++)
    x[i] /= LATENT_SCALE;
  planar = g_new (float, pixels * 3);
  if (!at_vae_model_decode (model->vae, x, lw, lh, 0, planar, cancellable, error))
    return NULL;

  result = g_new0 (AtImageResult, 1);
  result->width = job->width;
  result->height = job->height;
  result->pixels = g_malloc (pixels * 3);
  planar_to_image (planar, pixels, -1.0f, 2.0f, result->pixels);
  /* Inpainting keeps every pixel outside the mask exactly as it was. */
  if (job->mask != NULL)
    for (gsize i = 0; i < pixels; i++)
      if (job->mask[i] <= 127)
        memcpy (result->pixels + i * 3, job->init_image + i * 3, 3);
  result->seed = job->seed;
  result->params = describe (model, job);
  result->seconds = (g_get_monotonic_time () - start_time) / 1e6;
  return g_steal_pointer (&result);
}

static void
generate_job (AtEngine *engine, GTask *task, gpointer task_data, GCancellable *cancellable)
{
  GError *error = NULL;
  AtImageResult *result
      = generate (g_task_get_source_object (task), task_data, cancellable, &error);

  /* Parts may have been rebuilt (LoRA) or grown (a new size), failed or not. */
  update_gpu_bytes (g_task_get_source_object (task));
  if (result == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, result, (GDestroyNotify)at_image_result_free);
}

void
at_image_model_generate_async (AtImageModel *model, const AtImageRequest *request,
                               AtImageStepCallback on_step, gpointer step_data,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (model, cancellable, callback, user_data);
  GError *error = NULL;
  Job *job;

  g_return_if_fail (AT_IS_IMAGE_MODEL (model));
  g_task_set_source_tag (task, at_image_model_generate_async);
  if (!check_request (model, request, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  job = job_new (request);
  job->on_step = on_step;
  job->step_data = step_data;
  job->task = task;
  g_task_set_task_data (task, job, (GDestroyNotify)job_free);
  at_engine_queue_job (model->engine, task, generate_job);
}

AtImageResult *
at_image_model_generate_finish (AtImageModel *model, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, model), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

gboolean
at_image_model_set_preview_decoder (AtImageModel *model, const char *path, GError **error)
{
  g_return_val_if_fail (AT_IS_IMAGE_MODEL (model), FALSE);
  if (path != NULL && !g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "the TAESD decoder %s does not exist", path);
      return FALSE;
    }
  g_mutex_lock (&model->lock);
  g_free (model->preview_path);
  model->preview_path = g_strdup (path);
  model->preview_changed = TRUE;
  g_mutex_unlock (&model->lock);
  return TRUE;
}

static void
release_job (AtEngine *engine, GTask *task, gpointer task_data, GCancellable *cancellable)
{
  AtImageModel *model = g_task_get_source_object (task);

  g_clear_pointer (&model->unet, at_unet_model_free);
  g_clear_pointer (&model->vae, at_vae_model_free);
  update_gpu_bytes (model);
  g_task_return_boolean (task, TRUE);
}

void
at_image_model_release_gpu (AtImageModel *model)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (AT_IS_IMAGE_MODEL (model));
  task = g_task_new (model, NULL, NULL, NULL);
  g_task_set_source_tag (task, at_image_model_release_gpu);
  at_engine_queue_job (model->engine, task, release_job);
}
