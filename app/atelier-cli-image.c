/* atelier-cli image: one Stable Diffusion image from the command line — txt2img, img2img
 * (--init, --strength), inpainting (--mask), LoRA (--lora FILE:WEIGHT) — written as PNG
 * with its A1111 parameters, a progress line per step on stderr. */
#include <stdlib.h>
#include <string.h>

#include "atelier-cli.h"
#include "atelier-engine.h"

typedef struct
{
  GMainLoop *loop;
  AtImageModel *model;
  AtImageResult *result;
  GError *error;
  gint64 start;
} Run;

static void
on_progress (double fraction, gpointer user_data)
{
  g_printerr ("\rloading %3.0f%%%s", fraction * 100, fraction >= 1 ? "\n" : "");
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Run *run = user_data;

  run->model = at_image_model_load_finish (result, &run->error);
  g_main_loop_quit (run->loop);
}

static void
on_step (guint step, guint n_steps, const guint8 *preview, guint preview_width,
         guint preview_height, gpointer user_data)
{
  Run *run = user_data;
  double seconds = (g_get_monotonic_time () - run->start) / 1e6;

  g_printerr ("step %u/%u  %.2f s  %.2f s/step\n", step, n_steps, seconds, seconds / step);
}

static void
on_generated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Run *run = user_data;

  run->result = at_image_model_generate_finish (AT_IMAGE_MODEL (source), result, &run->error);
  g_main_loop_quit (run->loop);
}

/* Bilinear resize of RGB8 (or 1-channel) pixels, centres aligned. */
static guint8 *
resize (const guint8 *src, guint sw, guint sh, guint channels, guint dw, guint dh)
{
  guint8 *dst = g_malloc ((gsize)dw * dh * channels);

  for (guint y = 0; y < dh; y++)
    for (guint x = 0; x < dw; x++)
      {
        double fx = CLAMP ((x + 0.5) * sw / dw - 0.5, 0.0, sw - 1.0);
        double fy = CLAMP ((y + 0.5) * sh / dh - 0.5, 0.0, sh - 1.0);
        guint x0 = (guint)fx, y0 = (guint)fy;
        guint x1 = MIN (x0 + 1, sw - 1), y1 = MIN (y0 + 1, sh - 1);
        double ax = fx - x0, ay = fy - y0;

        for (guint c = 0; c < channels; c++)
          {
#define AT(xx, yy) src[((gsize)(yy)*sw + (xx)) * channels + c]
            double v = (AT (x0, y0) * (1 - ax) + AT (x1, y0) * ax) * (1 - ay)
                       + (AT (x0, y1) * (1 - ax) + AT (x1, y1) * ax) * ay;
#undef AT
            dst[((gsize)y * dw + x) * channels + c] = (guint8)(v + 0.5);
          }
      }
  return dst;
}

/* An RGB8 image from a PNG at width × height (alpha dropped). */
static guint8 *
read_image (const char *path, guint width, guint height, GError **error)
{
  guint w, h;
  g_autofree guint8 *rgba = at_png_read (path, &w, &h, NULL, NULL, error);
  g_autofree guint8 *pixels = NULL;

  if (rgba == NULL)
    return NULL;
  pixels = g_malloc ((gsize)w * h * 3);
  for (gsize i = 0; i < (gsize)w * h; i++)
    memcpy (pixels + i * 3, rgba + i * 4, 3);
  if (w == width && h == height)
    return g_steal_pointer (&pixels);
  return resize (pixels, w, h, 3, width, height);
}

/* A mask from a PNG: white (bright) where the image is repainted. */
static guint8 *
read_mask (const char *path, guint width, guint height, GError **error)
{
  g_autofree guint8 *rgb = read_image (path, width, height, error);
  guint8 *mask;

  if (rgb == NULL)
    return NULL;
  mask = g_malloc ((gsize)width * height);
  for (gsize i = 0; i < (gsize)width * height; i++)
    mask[i] = (guint8)((rgb[i * 3] * 299 + rgb[i * 3 + 1] * 587 + rgb[i * 3 + 2] * 114) / 1000);
  return mask;
}

/* "FILE:WEIGHT" (or FILE for weight 1). */
static gboolean
parse_lora (const char *spec, AtImageLora *lora, GError **error)
{
  const char *colon = strrchr (spec, ':');
  char *end;

  lora->weight = 1.0f;
  lora->path = spec;
  if (colon == NULL || colon == spec)
    return TRUE;
  lora->weight = (float)g_ascii_strtod (colon + 1, &end);
  if (end == colon + 1 || *end != '\0')
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--lora %s: expected FILE:WEIGHT, e.g. style.safetensors:0.8", spec);
      return FALSE;
    }
  lora->path = g_strndup (spec, colon - spec);
  return TRUE;
}

int
atelier_cli_image (int argc, char **argv)
{
  g_autofree char *model_path = NULL, *prompt = NULL, *negative = NULL, *sampler = NULL;
  g_autofree char *init_path = NULL, *mask_path = NULL, *out_path = NULL, *taesd = NULL;
  g_auto (GStrv) lora_specs = NULL;
  int steps = 20, width = 512, height = 512, clip_skip = 0;
  gint64 seed = -1;
  double cfg = 7.0, strength = 0.75;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "Stable Diffusion checkpoint (.safetensors)", "MODEL" },
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "What to draw (A1111 syntax: (word:1.2), [word])", "PROMPT" },
    { "negative", 'n', 0, G_OPTION_ARG_STRING, &negative, "What to avoid", "NEGATIVE" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &steps, "Sampling steps (default 20)", "N" },
    { "cfg", 0, 0, G_OPTION_ARG_DOUBLE, &cfg, "CFG scale (default 7)", "X" },
    { "sampler", 0, 0, G_OPTION_ARG_STRING, &sampler, "Euler, Euler a (default), DPM++ 2M, DPM++ 2M Karras, DDIM, LCM", "NAME" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed (default: random)", "S" },
    { "width", 'W', 0, G_OPTION_ARG_INT, &width, "Width, a multiple of 8 (default 512)", "W" },
    { "height", 'H', 0, G_OPTION_ARG_INT, &height, "Height, a multiple of 8 (default 512)", "H" },
    { "clip-skip", 0, 0, G_OPTION_ARG_INT, &clip_skip, "Text encoder layers to skip (A1111's count; default: the model's)", "N" },
    { "init", 0, 0, G_OPTION_ARG_FILENAME, &init_path, "Start from this PNG (img2img)", "IMG" },
    { "strength", 0, 0, G_OPTION_ARG_DOUBLE, &strength, "How much of the init image to repaint (default 0.75)", "X" },
    { "mask", 0, 0, G_OPTION_ARG_FILENAME, &mask_path, "Repaint only where this PNG is white (inpainting)", "MASK" },
    { "lora", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &lora_specs, "Apply a LoRA with a weight (repeatable)", "FILE:W" },
    { "taesd", 0, 0, G_OPTION_ARG_FILENAME, &taesd, "TAESD decoder for previews (unused without a preview consumer)", "FILE" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &out_path, "Output PNG", "OUT.png" },
    { NULL }
  };
  g_autoptr (GOptionContext) options = g_option_context_new (NULL);
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr (AtEngine) engine = NULL;
  g_autofree guint8 *init = NULL, *mask = NULL;
  g_autofree AtImageLora *loras = NULL;
  g_autoptr (GPtrArray) lora_paths = g_ptr_array_new_with_free_func (g_free);
  Run run = { loop };
  AtImageRequest request;
  guint n_loras;
  int status = 1;

  g_option_context_set_summary (options, "Generate an image with a Stable Diffusion checkpoint.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &run.error))
    goto out;
  if (model_path == NULL || prompt == NULL || out_path == NULL)
    {
      g_printerr ("atelier-cli image: -m MODEL, -p PROMPT and -o OUT.png are required\n");
      return 2;
    }
  n_loras = lora_specs != NULL ? g_strv_length (lora_specs) : 0;
  loras = g_new0 (AtImageLora, MAX (n_loras, 1));
  for (guint i = 0; i < n_loras; i++)
    {
      if (!parse_lora (lora_specs[i], &loras[i], &run.error))
        goto out;
      if (loras[i].path != lora_specs[i])
        g_ptr_array_add (lora_paths, (char *)loras[i].path);
    }

  at_image_request_init (&request);
  request.prompt = prompt;
  request.negative_prompt = negative;
  request.width = width;
  request.height = height;
  request.steps = steps;
  request.cfg_scale = cfg;
  request.sampler = sampler;
  request.seed = seed;
  request.clip_skip = clip_skip;
  request.strength = strength;
  request.loras = loras;
  request.n_loras = n_loras;
  /* Sizes are checked by the model; images are read at the requested size. */
  if (width >= 8 && height >= 8 && width <= 32768 && height <= 32768)
    {
      if (init_path != NULL && !(init = read_image (init_path, width, height, &run.error)))
        goto out;
      if (mask_path != NULL && !(mask = read_mask (mask_path, width, height, &run.error)))
        goto out;
    }
  request.init_image = init;
  request.mask = mask;

  if (!(engine = at_engine_new (NULL, &run.error)))
    goto out;
  at_image_model_load_async (engine, model_path, NULL, on_progress, NULL, on_loaded, &run);
  g_main_loop_run (loop);
  if (run.model == NULL)
    goto out;
  if (taesd != NULL && !at_image_model_set_preview_decoder (run.model, taesd, &run.error))
    goto out;
  run.start = g_get_monotonic_time ();
  at_image_model_generate_async (run.model, &request, on_step, &run, NULL, on_generated, &run);
  g_main_loop_run (loop);
  if (run.result == NULL || !at_image_result_save_png (run.result, out_path, &run.error))
    goto out;
  g_printerr ("%s: %u×%u, seed %" G_GINT64_FORMAT ", %.2f s\n", out_path, run.result->width,
              run.result->height, run.result->seed, run.result->seconds);
  status = 0;

out:
  if (run.error != NULL)
    g_printerr ("atelier-cli image: %s\n", run.error->message);
  g_clear_error (&run.error);
  g_clear_pointer (&run.result, at_image_result_free);
  g_clear_object (&run.model);
  return status;
}
