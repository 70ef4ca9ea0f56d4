/* at-image-model.h: a Stable Diffusion checkpoint (SD 1.x, SD 2.x single-file LDM
 * .safetensors) loaded on the engine's GPU, generating images — txt2img, img2img,
 * inpainting — with classifier-free guidance, LoRA, per-step previews and cancellation.
 * All work runs on the engine's worker; callbacks arrive in the caller's main context.
 */
#pragma once

#include <gio/gio.h>

#include "at-engine.h"
#include "formats/at-png.h"
#include "image/at-sd-checkpoint.h"
#include "text/at-language-model.h"

G_BEGIN_DECLS

#define AT_TYPE_IMAGE_MODEL (at_image_model_get_type ())
G_DECLARE_FINAL_TYPE (AtImageModel, at_image_model, AT, IMAGE_MODEL, GObject)

/* Opens the checkpoint, detects its family and loads the text encoder, UNet and VAE
 * onto the GPU (progress from 0 to 1). Errors: AT_ERROR_INVALID_FILE for a malformed
 * file, AT_ERROR_UNSUPPORTED for SDXL, Flux and other families, naming them. */
void at_image_model_load_async (AtEngine *engine, const char *path, GCancellable *cancellable,
                                AtLoadProgress progress, gpointer progress_data,
                                GAsyncReadyCallback callback, gpointer user_data);
AtImageModel *at_image_model_load_finish (GAsyncResult *result, GError **error);

/* The file's name without its extension, as A1111's "Model:" writes it. */
const char *at_image_model_get_name (AtImageModel *model);
/* A1111's short model hash: the first 10 hex digits of the file's SHA-256. */
const char *at_image_model_get_hash (AtImageModel *model);
const AtSdCheckpointInfo *at_image_model_get_info (AtImageModel *model);
/* Whether the UNet takes 9 input channels (an inpainting checkpoint). */
gboolean at_image_model_is_inpainting (AtImageModel *model);
/* GPU memory the model holds now (weights and activations). */
guint64 at_image_model_get_gpu_bytes (AtImageModel *model);

/* A LoRA file and its weight (1 = as trained). */
typedef struct
{
  const char *path;
  float weight;
} AtImageLora;

typedef struct
{
  const char *prompt;          /* A1111 syntax: (word:1.2), [word], long prompts chunked */
  const char *negative_prompt; /* NULL or "" for none */
  guint width, height;         /* pixels: multiples of 8, at least 64 */
  guint steps;                 /* 1..150 */
  double cfg_scale;            /* 1: no guidance, one UNet pass per step */
  const char *sampler;         /* A1111 name: "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras",
                                * "DDIM", "LCM"; NULL: "Euler a" */
  gint64 seed;                 /* < 0: a random seed (the result says which) */
  int clip_skip;               /* 0: the family's default */
  AtSdPrediction prediction;   /* UNKNOWN: the checkpoint's, or the family's guess by size */
  /* img2img: the source image, RGB8 width × height (the caller resizes it), and how much
   * of it is repainted (0..1). NULL for txt2img. */
  const guint8 *init_image;
  double strength;
  /* Inpainting: width × height bytes, > 127 where the image is repainted; needs
   * init_image. 9-channel checkpoints get the masked image as extra input; others do
   * masked img2img (the unmasked latent is put back after every step). */
  const guint8 *mask;
  const AtImageLora *loras;
  guint n_loras;
  /* Deliver a preview image with every step callback. */
  gboolean previews;
} AtImageRequest;

/* Fills the defaults: 512×512, 20 steps, CFG 7, "Euler a", random seed, strength 0.75. */
void at_image_request_init (AtImageRequest *request);

typedef struct
{
  guint8 *pixels;             /* RGB8, width × height */
  guint width, height;
  gint64 seed;                /* the seed used */
  AtGenerationParams *params; /* the A1111 infotext of this image */
  double seconds;             /* wall time of the generation */
} AtImageResult;

void at_image_result_free (AtImageResult *result);
/* Writes the image as PNG with its parameters chunk. */
gboolean at_image_result_save_png (const AtImageResult *result, const char *path,
                                   GError **error);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtImageResult, at_image_result_free)

/* After each step (1-based step of n_steps), in the caller's main context. preview is
 * RGB8 preview_width × preview_height (the latent decoded cheaply: TAESD when set, else a
 * linear latent-to-RGB projection at the latent's size), or NULL when the request asked
 * for none; it is only valid during the call. */
typedef void (*AtImageStepCallback) (guint step, guint n_steps, const guint8 *preview,
                                     guint preview_width, guint preview_height,
                                     gpointer user_data);

/* Generates one image. The request (images included) is copied. A bad request (size,
 * steps, sampler, a mask without an image) fails at once with AT_ERROR_INVALID_ARGUMENT
 * and a message saying what to change; cancelling stops between steps
 * (G_IO_ERROR_CANCELLED). */
void at_image_model_generate_async (AtImageModel *model, const AtImageRequest *request,
                                    AtImageStepCallback on_step, gpointer step_data,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
AtImageResult *at_image_model_generate_finish (AtImageModel *model, GAsyncResult *result,
                                               GError **error);

/* A TAESD decoder (taesd_decoder.safetensors) for previews; NULL path returns to the
 * latent projection. Loaded on the worker before the next generation. */
gboolean at_image_model_set_preview_decoder (AtImageModel *model, const char *path,
                                             GError **error);

/* Frees the UNet's and VAE's GPU memory now (queued behind running work); the next
 * generation uploads them again from the file. */
void at_image_model_release_gpu (AtImageModel *model);

G_END_DECLS
