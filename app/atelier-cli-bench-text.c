/* atelier-cli bench text: prompt processing and generation speed of a GGUF model, as
 * llama-bench measures them (wall time of whole forward passes, submit and wait
 * included), with the weight-read bandwidth of generation against the copy roof. */
#include <stdlib.h>

#include "atelier-cli.h"
#include "formats/at-gguf.h"
#include "text/at-text-model.h"

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static void
on_progress (double fraction, gpointer user_data)
{
  g_printerr ("\rloading %3.0f%%%s", fraction * 100, fraction >= 1 ? "\n" : "");
}

/* Seconds one decode of tokens[0..n) at n_past takes. */
static double
timed_decode (AtTextContext *ctx, const gint32 *tokens, gsize n, gsize n_past, float *logits,
              GError **error)
{
  gint64 start = g_get_monotonic_time ();

  if (!at_text_context_decode (ctx, tokens, n, n_past, logits, FALSE, NULL, error))
    return -1;
  return (g_get_monotonic_time () - start) * 1e-6;
}

int
atelier_cli_bench_text (int argc, char **argv)
{
  g_autofree char *model_path = NULL;
  int n_prompt = 512, n_gen = 128, reps = 3;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "GGUF model", "MODEL" },
    { "n-prompt", 'p', 0, G_OPTION_ARG_INT, &n_prompt, "Prompt tokens (default 512)", "N" },
    { "n-gen", 'n', 0, G_OPTION_ARG_INT, &n_gen, "Generated tokens (default 128)", "N" },
    { "reps", 'r', 0, G_OPTION_ARG_INT, &reps, "Prompt repetitions (median; default 3)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) options = g_option_context_new (NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGpu) gpu = NULL;
  g_autoptr (AtGguf) gguf = NULL;
  g_autoptr (AtTextModel) model = NULL;
  g_autoptr (AtTextContext) ctx = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  g_autofree gint32 *tokens = NULL;
  g_autofree float *logits = NULL;
  g_autofree double *pp_times = NULL;
  AtTextModelFile file;
  const AtTextHParams *hp;
  guint64 total_bytes, per_token_bytes;
  double copy_gbs, tg_seconds = 0, pp_seconds;

  g_option_context_set_summary (options, "Prompt-processing and generation speed of MODEL.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("atelier-cli bench text: %s\n", error->message);
      return 2;
    }
  if (model_path == NULL || argc != 1 || n_prompt < 1 || n_gen < 1 || reps < 1)
    {
      g_printerr ("Usage: atelier-cli bench text -m MODEL.gguf [-p 512] [-n 128] [-r 3]\n");
      return 2;
    }

  if (!(gpu = at_gpu_new (NULL, &error)) || !(gguf = at_gguf_open (model_path, &error)) ||
      !at_text_model_file_init (&file, gguf, &error))
    {
      g_printerr ("atelier-cli bench text: %s\n", error->message);
      return 1;
    }
  total_bytes = at_text_model_file_weight_bytes (&file, gguf, &per_token_bytes);
  at_text_model_file_clear (&file);

  g_print ("Benchmarking %s on %s\n", model_path, at_gpu_get_info (gpu)->name);
  copy_gbs = atelier_cli_measure_copy_bandwidth (gpu, 5, &error);
  if (copy_gbs <= 0 ||
      !(model = at_text_model_new (gpu, gguf, on_progress, NULL, NULL, &error)) ||
      !(ctx = at_text_context_new (model, n_prompt + n_gen, n_prompt, &error)))
    {
      g_printerr ("atelier-cli bench text: %s\n", error->message);
      return 1;
    }
  hp = at_text_model_get_hparams (model);
  g_print ("model: %s, %" G_GINT64_FORMAT " layers, %" G_GINT64_FORMAT " wide, vocabulary %"
           G_GINT64_FORMAT ", %.2f GiB of weights (%.2f GiB read per token)\n",
           at_text_arch_name (hp->arch), hp->n_layer, hp->n_embd, hp->n_vocab,
           total_bytes / 1073741824.0, per_token_bytes / 1073741824.0);

  /* Random ids: speed does not depend on which tokens they are. */
  tokens = g_new (gint32, n_prompt + n_gen);
  for (int i = 0; i < n_prompt + n_gen; i++)
    tokens[i] = g_rand_int_range (rand, 0, (gint32) hp->n_vocab);
  logits = g_new (float, hp->n_vocab);

  /* An untimed run of the whole prompt creates its pipelines (a prompt of more than 8
   * tokens takes the mat-mul path, generation the mat-vec one), then the prompt
   * repeatedly from position 0; one untimed token warms up generation. */
  pp_times = g_new (double, reps);
  if (timed_decode (ctx, tokens, n_prompt, 0, logits, &error) < 0 ||
      timed_decode (ctx, &tokens[n_prompt], 1, n_prompt, logits, &error) < 0)
    goto failed;
  for (int r = 0; r < reps; r++)
    if ((pp_times[r] = timed_decode (ctx, tokens, n_prompt, 0, logits, &error)) < 0)
      goto failed;
  qsort (pp_times, reps, sizeof (double), compare_double);
  pp_seconds = pp_times[reps / 2];

  for (int i = 0; i < n_gen; i++)
    {
      double seconds = timed_decode (ctx, &tokens[n_prompt + i], 1, n_prompt + i, logits, &error);
      if (seconds < 0)
        goto failed;
      tg_seconds += seconds;
    }

  g_print ("pp%-5d %10.1f ms  %9.2f tokens/s\n", n_prompt, pp_seconds * 1e3,
           n_prompt / pp_seconds);
  {
    double gbs = per_token_bytes * (double) n_gen / tg_seconds / 1e9;
    /* A decode reads each weight once; the copy roof counts read + write traffic. */
    g_print ("tg%-5d %10.1f ms  %9.2f tokens/s  %8.2f GB/s of weights read, %5.1f%% of the "
             "copy roof\n", n_gen, tg_seconds * 1e3, n_gen / tg_seconds, gbs,
             100 * gbs / copy_gbs);
  }
  return 0;

failed:
  g_printerr ("atelier-cli bench text: %s\n", error->message);
  return 1;
}
