/* atelier-cli bench image: the parts of a Stable Diffusion image timed on their own —
 * text encoder, one UNet step with CFG (batch 2), VAE decode — with peak GPU memory and
 * the UNet's achieved TFLOP/s. Wall time of whole forward passes, submit and wait
 * included, median of the repetitions. */
#include <stdlib.h>
#include <string.h>

#include "atelier-cli.h"
#include "image/at-clip-text-model.h"
#include "image/at-unet.h"
#include "image/at-vae.h"

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double
median (double *values, int n)
{
  qsort (values, n, sizeof (double), compare_double);
  return values[n / 2];
}

static double
seconds_since (gint64 start)
{
  return (g_get_monotonic_time () - start) * 1e-6;
}

static void
print_memory (AtGpu *gpu, const char *after)
{
  guint64 peak;
  guint64 now = at_gpu_get_allocated_bytes (gpu, &peak);
  g_autofree char *now_text = g_format_size_full (now, G_FORMAT_SIZE_IEC_UNITS);
  g_autofree char *peak_text = g_format_size_full (peak, G_FORMAT_SIZE_IEC_UNITS);

  g_print ("  GPU memory after %-12s %s (peak %s)\n", after, now_text, peak_text);
}

int
atelier_cli_bench_image (int argc, char **argv)
{
  g_autofree char *model_path = NULL;
  int width = 512, height = 512, reps = 3;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "Stable Diffusion checkpoint", "MODEL" },
    { "width", 'W', 0, G_OPTION_ARG_INT, &width, "Image width (default 512)", "W" },
    { "height", 'H', 0, G_OPTION_ARG_INT, &height, "Image height (default 512)", "H" },
    { "reps", 'r', 0, G_OPTION_ARG_INT, &reps, "Repetitions of each part (median; default 3)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) options = g_option_context_new (NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGpu) gpu = NULL;
  g_autoptr (AtSafetensors) st = NULL;
  g_autoptr (AtClipTextModel) clip = NULL;
  g_autoptr (AtUnetModel) unet = NULL;
  g_autoptr (AtVaeModel) vae = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  g_autofree gint32 *ids = NULL;
  g_autofree float *text = NULL, *context = NULL, *x = NULL, *out = NULL, *rgb = NULL;
  g_autofree double *times = NULL;
  AtSdCheckpointInfo info;
  gint64 lw, lh, n_ctx, start;
  double clip_s, unet_s, vae_s, load_s;
  gsize n_latent;

  g_option_context_set_summary (options, "Time the text encoder, a UNet step (CFG on) and the "
                                         "VAE decoder of a Stable Diffusion checkpoint.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    goto fail;
  if (model_path == NULL || width % 8 != 0 || height % 8 != 0 || width < 64 || height < 64
      || reps < 1)
    {
      g_printerr ("atelier-cli bench image: -m MODEL is required; -W and -H are multiples of 8 "
                  "from 64; --reps at least 1\n");
      return 2;
    }
  lw = width / 8;
  lh = height / 8;
  n_latent = (gsize)lw * lh * 4 * 2;
  times = g_new (double, reps);

  if (!(gpu = at_gpu_new (NULL, &error)) || !(st = at_safetensors_open (model_path, &error))
      || !at_sd_checkpoint_detect (st, &info, &error))
    goto fail;
  g_print ("device: %s\nmodel: %s (%s), %dx%d, CFG batch 2\n", at_gpu_get_info (gpu)->name,
           model_path, at_sd_family_name (info.family), width, height);

  start = g_get_monotonic_time ();
  if (!(clip = at_clip_text_model_new (gpu, st, &error))
      || !(unet = at_unet_model_new (gpu, st, &info, &error))
      || !(vae = at_vae_model_new (gpu, st, &error)))
    goto fail;
  load_s = seconds_since (start);
  g_print ("  load (upload all weights)       %8.3f s\n", load_s);
  print_memory (gpu, "loading");

  /* Text encoder: one 77-token window of random ids. */
  n_ctx = info.clip.n_ctx;
  ids = g_new (gint32, n_ctx);
  for (gint64 i = 0; i < n_ctx; i++)
    ids[i] = g_rand_int_range (rand, 0, (gint32)info.clip.n_vocab);
  text = g_new (float, n_ctx * info.clip.n_embd);
  for (int r = 0; r < reps; r++)
    {
      start = g_get_monotonic_time ();
      if (!at_clip_text_model_encode (clip, ids, 1, text, &error))
        goto fail;
      times[r] = seconds_since (start);
    }
  clip_s = median (times, reps);
  g_print ("  text encoder (77 tokens)         %8.3f s\n", clip_s);

  /* One UNet step: the batch [cond, uncond] as CFG runs it. */
  context = g_new (float, 2 * n_ctx * info.clip.n_embd);
  memcpy (context, text, n_ctx * info.clip.n_embd * sizeof (float));
  memcpy (context + n_ctx * info.clip.n_embd, text, n_ctx * info.clip.n_embd * sizeof (float));
  x = g_new (float, n_latent);
  out = g_new (float, n_latent);
  for (gsize i = 0; i < n_latent; i++)
    x[i] = (float)g_rand_double_range (rand, -1, 1);
  {
    const float timesteps[2] = { 500, 500 };

    /* The first call allocates the activations for this size. */
    if (!at_unet_model_forward (unet, x, lw, lh, 2, timesteps, context, n_ctx, out, &error))
      goto fail;
    for (int r = 0; r < reps; r++)
      {
        start = g_get_monotonic_time ();
        if (!at_unet_model_forward (unet, x, lw, lh, 2, timesteps, context, n_ctx, out, &error))
          goto fail;
        times[r] = seconds_since (start);
      }
  }
  unet_s = median (times, reps);
  {
    const double flops = at_unet_model_forward_flops (unet, lw, lh, 2, n_ctx);

    g_print ("  UNet step (batch 2)              %8.3f s   %.1f GFLOP, %.3f TFLOP/s\n", unet_s,
             flops / 1e9, flops / unet_s / 1e12);
  }
  print_memory (gpu, "a UNet step");

  rgb = g_new (float, (gsize)width * height * 3);
  for (int r = 0; r <= reps; r++)
    {
      start = g_get_monotonic_time ();
      if (!at_vae_model_decode (vae, x, lw, lh, 0, rgb, NULL, &error))
        goto fail;
      /* The first decode allocates. */
      if (r > 0)
        times[r - 1] = seconds_since (start);
    }
  vae_s = median (times, reps);
  g_print ("  VAE decode                       %8.3f s   %.3f TFLOP/s\n", vae_s,
           at_vae_model_decode_flops (vae, lw, lh) / vae_s / 1e12);
  print_memory (gpu, "VAE decode");
  g_print ("  20-step image (2 prompts + 20 steps + decode) %.2f s\n",
           2 * clip_s + 20 * unet_s + vae_s);
  return 0;

fail:
  g_printerr ("atelier-cli bench image: %s\n", error->message);
  return 1;
}
