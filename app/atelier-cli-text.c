/* atelier-cli text: streams a model's continuation of a prompt to stdout. */
#include <stdio.h>

#include "atelier-cli.h"
#include "atelier-engine.h"

typedef struct
{
  GMainLoop *loop;
  AtLanguageModel *model;
  AtGenerateResult *result;
  GError *error;
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

  run->model = at_language_model_load_finish (result, &run->error);
  g_main_loop_quit (run->loop);
}

static void
on_token (const char *text, gpointer user_data)
{
  fputs (text, stdout);
  fflush (stdout);
}

static void
on_generated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Run *run = user_data;

  run->result = at_language_model_generate_finish (AT_LANGUAGE_MODEL (source), result,
                                                   &run->error);
  g_main_loop_quit (run->loop);
}

int
atelier_cli_text (int argc, char **argv)
{
  g_autofree char *model_path = NULL, *prompt = NULL;
  g_auto (GStrv) stops = NULL;
  gint64 n_ctx = 4096;
  int n = 128, top_k, seed = 0;
  double temp, top_p, min_p, repeat_penalty;
  AtGenerateRequest request;
  GOptionEntry entries[]
      = { { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "GGUF model", "MODEL" },
          { "prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "Text to continue", "TEXT" },
          { "n-predict", 'n', 0, G_OPTION_ARG_INT, &n, "Tokens to generate (-1: no limit)", "N" },
          { "temp", 0, 0, G_OPTION_ARG_DOUBLE, &temp, "Temperature (0: greedy)", "T" },
          { "top-k", 0, 0, G_OPTION_ARG_INT, &top_k, "Top-k (0: off)", "K" },
          { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &top_p, "Top-p (1: off)", "P" },
          { "min-p", 0, 0, G_OPTION_ARG_DOUBLE, &min_p, "Min-p (0: off)", "P" },
          { "repeat-penalty", 0, 0, G_OPTION_ARG_DOUBLE, &repeat_penalty,
            "Repetition penalty (1: off)", "R" },
          { "seed", 's', 0, G_OPTION_ARG_INT, &seed, "Random seed", "S" },
          { "ctx", 'c', 0, G_OPTION_ARG_INT64, &n_ctx, "Context size (0: the model's)", "N" },
          { "stop", 0, 0, G_OPTION_ARG_STRING_ARRAY, &stops, "Stop string (repeatable)", "STR" },
          { NULL } };
  g_autoptr (GOptionContext) options = g_option_context_new (NULL);
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr (AtEngine) engine = NULL;
  g_autoptr (AtLanguageModel) model = NULL;
  g_autoptr (AtGenerateResult) result = NULL;
  Run run = { loop, NULL, NULL, NULL };

  at_generate_request_init (&request);
  temp = request.sampler.temperature;
  top_k = request.sampler.top_k;
  top_p = request.sampler.top_p;
  min_p = request.sampler.min_p;
  repeat_penalty = request.sampler.repeat_penalty;
  g_option_context_set_summary (options, "Streams the continuation of TEXT to stdout.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &run.error))
    {
      g_printerr ("atelier-cli text: %s\n", run.error->message);
      g_error_free (run.error);
      return 2;
    }
  if (model_path == NULL || prompt == NULL || argc != 1)
    {
      g_printerr ("Usage: atelier-cli text -m MODEL.gguf -p PROMPT [-n N] [--temp T] ...\n");
      return 2;
    }
  engine = at_engine_new (NULL, &run.error);
  if (engine != NULL)
    {
      at_language_model_load_async (engine, model_path, n_ctx, NULL, on_progress, NULL,
                                    on_loaded, &run);
      g_main_loop_run (loop);
      model = run.model;
    }
  if (model != NULL)
    {
      request.prompt = prompt;
      request.max_tokens = n;
      request.sampler.temperature = temp;
      request.sampler.top_k = top_k;
      request.sampler.top_p = top_p;
      request.sampler.min_p = min_p;
      request.sampler.repeat_penalty = repeat_penalty;
      request.sampler.seed = (guint64)seed;
      request.stops = (const char *const *)stops;
      at_language_model_generate_async (model, &request, on_token, NULL, NULL, on_generated, &run);
      g_main_loop_run (loop);
      result = run.result;
    }
  if (result == NULL)
    {
      g_printerr ("atelier-cli text: %s\n", run.error->message);
      g_error_free (run.error);
      return 1;
    }
  g_print ("\n");
  g_printerr ("[%" G_GINT64_FORMAT " prompt tokens, %" G_GINT64_FORMAT " generated; %s]\n",
              result->n_prompt, result->n_generated, result->message);
  return 0;
}
