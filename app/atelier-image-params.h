/* atelier-image-params.h: the Image page's settings as plain data — the request they
 * make, the seeds of a batch, the size presets, and the A1111 parameters and library JSON
 * they are written to and read back from. No GTK, so that tests check it directly. */
#pragma once

#include <glib.h>

#include "image/at-image-model.h"

G_BEGIN_DECLS

/* The panel's limits: sides in multiples of 8 (the VAE's factor), from the smallest the
 * UNet accepts to what fits a large GPU. */
#define ATELIER_IMAGE_MIN_SIDE 64
#define ATELIER_IMAGE_MAX_SIDE 2048
#define ATELIER_IMAGE_SIDE_STEP 8
#define ATELIER_IMAGE_MAX_STEPS 150
#define ATELIER_IMAGE_MIN_CFG 1.0
#define ATELIER_IMAGE_MAX_CFG 30.0
/* A1111's seeds are 32-bit: a seed past this would not reproduce there. */
#define ATELIER_IMAGE_MAX_SEED G_GINT64_CONSTANT (0xffffffff)

typedef struct
{
  guint width, height;
} AtelierSizePreset;

/* 512², 768², 512×768, 768×512, 1024². */
extern const AtelierSizePreset atelier_image_size_presets[];
extern const guint atelier_image_n_size_presets;
/* The samplers the engine runs, by A1111's names; NULL-terminated. */
extern const char *const atelier_image_samplers[];

typedef struct
{
  char *prompt;
  char *negative_prompt;
  char *model; /* A1111's "Model": the checkpoint's file name without its extension */
  guint width, height;
  guint steps;
  double cfg_scale;
  char *sampler;
  gint64 seed; /* < 0: none chosen yet */
  gboolean seed_locked;
  guint batch_count;
  gboolean img2img; /* the request starts from a source image */
  double strength;  /* how much of the source image is repainted */
  GArray *loras;    /* AtImageLora, paths owned */
} AtelierImageSettings;

/* The engine's defaults, one image, no seed, no LoRA. */
AtelierImageSettings *atelier_image_settings_new (void);
void atelier_image_settings_free (AtelierImageSettings *s);
AtelierImageSettings *atelier_image_settings_copy (const AtelierImageSettings *s);
void atelier_image_settings_add_lora (AtelierImageSettings *s, const char *path, double weight);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtelierImageSettings, atelier_image_settings_free)

/* value rounded to the nearest multiple of 8 and clamped to the panel's limits. */
guint atelier_image_round_side (double value);
/* The index of the preset of that size, or -1 (a custom size). */
int atelier_image_size_preset_find (guint width, guint height);

/* Whether the engine will take the settings; AT_ERROR_INVALID_ARGUMENT says what to
 * change. */
gboolean atelier_image_settings_check (const AtelierImageSettings *s, GError **error);

/* The seed of image index (0-based) of a batch: a locked seed counts up from itself (so
 * that a batch can be reproduced image by image), an unlocked or empty one is random. */
gint64 atelier_image_settings_seed_for (const AtelierImageSettings *s, guint index,
                                        GRand *rand);

/* The request for one image with that seed. It borrows the settings' strings and LoRAs,
 * so s must outlive it; images, mask and previews are the caller's. */
void atelier_image_settings_fill_request (const AtelierImageSettings *s, gint64 seed,
                                          AtImageRequest *request);

/* The A1111 parameters of the settings ("DPM++ 2M Karras" written as A1111 1.9 does:
 * "Sampler: DPM++ 2M, Schedule type: Karras"). */
AtGenerationParams *atelier_image_settings_to_params (const AtelierImageSettings *s);
/* Takes every field p has; a reused seed is locked, so that it reproduces the image. */
void atelier_image_settings_apply_params (AtelierImageSettings *s, const AtGenerationParams *p);

/* The library's parameters JSON of an image: the infotext's fields (as a PNG imported
 * into the gallery gets them) and "loras" ([{"path", "weight"}]). */
char *atelier_image_parameters_json (const char *infotext, const AtelierImageSettings *s);
/* Fills s from an asset's parameters: that JSON, or A1111 infotext. */
void atelier_image_settings_apply_parameters (AtelierImageSettings *s, const char *parameters);

G_END_DECLS
