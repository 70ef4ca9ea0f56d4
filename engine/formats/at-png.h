/* at-png.h: PNG files through libpng, with AUTOMATIC1111's "parameters" text chunk.
 *
 * The chunk holds A1111's infotext:
 *
 *   PROMPT
 *   Negative prompt: NEGATIVE
 *   Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: ..., Model: ...
 *
 * Written as A1111 (through PIL) writes it: tEXt when every character fits in Latin-1,
 * else uncompressed iTXt in UTF-8. A value containing ',', ':' or a newline is written
 * as a JSON string (non-ASCII kept as is), as its infotext_utils.quote does.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sides past this, or more pixels than AT_PNG_MAX_PIXELS, are refused on reading. */
#define AT_PNG_MAX_SIDE 32768
#define AT_PNG_MAX_PIXELS (G_GUINT64_CONSTANT (1) << 28)

typedef struct
{
  char *key;
  char *value;
} AtGenerationParam;

typedef struct
{
  char *prompt;          /* never NULL */
  char *negative_prompt; /* never NULL; "" writes no "Negative prompt:" line */
  /* The known keys; a field left at its "absent" value is not written. */
  int steps;                 /* "Steps"; 0: absent */
  char *sampler;             /* "Sampler", A1111's name ("Euler a"); NULL: absent */
  char *schedule_type;       /* "Schedule type" ("Karras"); NULL: absent */
  double cfg_scale;          /* "CFG scale"; < 0: absent */
  gint64 seed;               /* "Seed"; < 0: absent */
  guint width, height;       /* "Size: WxH"; 0: absent */
  char *model_hash;          /* "Model hash"; NULL: absent */
  char *model;               /* "Model"; NULL: absent */
  double denoising_strength; /* "Denoising strength"; < 0: absent */
  /* Every other "key: value" pair in order ("Hires upscale", "Clip skip", "Version",
   * ...), and known keys whose value did not parse, so nothing read is lost. */
  GArray *extra; /* AtGenerationParam */
} AtGenerationParams;

AtGenerationParams *at_generation_params_new (void);
void at_generation_params_free (AtGenerationParams *p);
/* Appends an extra pair; key must be A1111-shaped (a word character, then word
 * characters, spaces, '-' or '/'; no ':' or ','). */
void at_generation_params_add_extra (AtGenerationParams *p, const char *key, const char *value);
/* The value of the first extra pair named key, or NULL. */
const char *at_generation_params_get_extra (const AtGenerationParams *p, const char *key);

/* The infotext, in A1111's order of keys: Steps, Sampler, Schedule type, CFG scale,
 * Seed, Size, Model hash, Model, Denoising strength, then the extras. */
char *at_generation_params_to_text (const AtGenerationParams *p);
/* A1111's parse_generation_parameters: the last line holds the pairs if it has at least
 * three of them; lines before "Negative prompt:" are the prompt, the rest the negative
 * prompt, each line stripped; quoted values are unquoted as JSON; empty values are
 * dropped. Never fails: text that is not an infotext becomes the prompt. */
AtGenerationParams *at_generation_params_parse (const char *text);

/* Writes width x height pixels (channels 3: RGB8, 4: RGBA8; rows stride bytes apart) to
 * path atomically (a temporary file renamed over it), with a "parameters" chunk when
 * parameters (UTF-8) is not NULL. */
gboolean at_png_write (const char *path, const guint8 *pixels, guint width, guint height,
                       guint channels, gsize stride, const char *parameters, GError **error);

/* Reads any PNG as RGBA8 (width * 4 bytes a row). *parameters gets the "parameters"
 * chunk as UTF-8, or NULL when there is none; params, when not NULL, gets it parsed (or
 * NULL). A file that is not a PNG, is truncated or corrupt, or has sides past the
 * limits gives AT_ERROR_INVALID_FILE naming the file. */
guint8 *at_png_read (const char *path, guint *width, guint *height, char **parameters,
                     AtGenerationParams **params, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtGenerationParams, at_generation_params_free)

G_END_DECLS
