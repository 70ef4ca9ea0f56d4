/* at-sd-checkpoint.h: which Stable Diffusion family a single-file LDM checkpoint
 * (.safetensors as AUTOMATIC1111 and ComfyUI use them) holds, and the shape of its text
 * encoder, read from tensor names and shapes alone. */
#pragma once

#include "formats/at-safetensors.h"

G_BEGIN_DECLS

typedef enum {
  AT_SD_FAMILY_SD1, /* CLIP ViT-L/14 text encoder (HF CLIPTextModel keys), context 768 */
  AT_SD_FAMILY_SD2, /* OpenCLIP ViT-H/14 text encoder (open_clip keys), context 1024 */
} AtSdFamily;

/* What the UNet predicts. The weights of SD 2.x do not say: the 768-px models
 * (v2-768-v) predict v and the 512-px base predicts epsilon, with identical tensors, so
 * A1111 and ComfyUI guess from the file name or a side YAML. We record UNKNOWN and let
 * the caller choose (at_sd_checkpoint_default_prediction). */
typedef enum {
  AT_SD_PREDICTION_UNKNOWN,
  AT_SD_PREDICTION_EPSILON,
  AT_SD_PREDICTION_V,
} AtSdPrediction;

/* The text encoder's shape; widths and depths come from tensor shapes so that tiny test
 * checkpoints run the same code as real ones. */
typedef struct {
  gint64 n_vocab; /* token_embedding rows (49408) */
  gint64 n_ctx;   /* position_embedding rows (77) */
  gint64 n_embd;  /* hidden width: the UNet's context dimension */
  gint64 n_layer; /* transformer layers */
  gint64 n_head;  /* n_embd / 64: both CLIP models use heads of 64 */
  gint64 n_ff;    /* MLP width */
} AtClipTextHParams;

typedef struct {
  AtSdFamily family;
  AtSdPrediction prediction;
  AtClipTextHParams clip;
  /* The "clip skip" (A1111's count: 1 takes the last layer's output, 2 the
   * penultimate's) the family was trained with: 1 for SD 1.x, 2 for SD 2.x, whose UNet
   * was trained on OpenCLIP's penultimate layer. */
  int default_clip_skip;
} AtSdCheckpointInfo;

/* Detects the family: SD 1.x (cond_stage_model.transformer.text_model.*), SD 2.x
 * (cond_stage_model.model.*). SDXL (conditioner.embedders.*), Flux and other known
 * layouts are AT_ERROR_UNSUPPORTED "... not supported yet" naming the family; anything
 * else, or a text encoder whose shapes do not agree, is AT_ERROR_INVALID_FILE naming the
 * tensor. */
gboolean at_sd_checkpoint_detect (AtSafetensors *st, AtSdCheckpointInfo *info, GError **error);

/* "SD 1.x", "SD 2.x". */
const char *at_sd_family_name (AtSdFamily family);

/* The tensor name with shape [ne0, ne1] (ne1 = 0: a vector [ne0]) in a supported dtype;
 * otherwise NULL with AT_ERROR_INVALID_FILE naming it (missing, or its shape against the
 * expected one), or AT_ERROR_UNSUPPORTED for its dtype. */
const AtSafetensorsTensor *at_sd_checkpoint_find_tensor (AtSafetensors *st, const char *name,
                                                         gint64 ne0, gint64 ne1,
                                                         GError **error);

/* info's prediction, or where it is UNKNOWN the usual one for images of that size:
 * v for SD 2.x at 768 px and above, epsilon below. */
AtSdPrediction at_sd_checkpoint_default_prediction (const AtSdCheckpointInfo *info,
                                                    int image_size);

G_END_DECLS
