/* atelier-cli text and chat: stream a model's continuation of a prompt, or its replies in
 * a conversation, to stdout. */
#include <stdio.h>
#include <unistd.h>

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

/* What text and chat share on their command lines. */
typedef struct
{
  char *model_path;
  gint64 n_ctx;
  int n, top_k, seed;
  double temp, top_p, min_p, repeat_penalty;
  char **stops;
} CommonOptions;

static void
common_options_clear (CommonOptions *o)
{
  g_free (o->model_path);
  g_strfreev (o->stops);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CommonOptions, common_options_clear)

/* Parses argv with the shared options plus extra (NULL-terminated; may be NULL);
 * request's sampler defaults are the options' defaults. */
static gboolean
parse_options (const char *command, const char *summary, int *argc, char ***argv,
               CommonOptions *o, const GOptionEntry *extra, AtGenerateRequest *request)
{
  GOptionEntry entries[]
      = { { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o->model_path, "GGUF model", "MODEL" },
          { "n-predict", 'n', 0, G_OPTION_ARG_INT, &o->n, "Tokens to generate (-1: no limit)", "N" },
          { "temp", 0, 0, G_OPTION_ARG_DOUBLE, &o->temp, "Temperature (0: greedy)", "T" },
          { "top-k", 0, 0, G_OPTION_ARG_INT, &o->top_k, "Top-k (0: off)", "K" },
          { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &o->top_p, "Top-p (1: off)", "P" },
          { "min-p", 0, 0, G_OPTION_ARG_DOUBLE, &o->min_p, "Min-p (0: off)", "P" },
          { "repeat-penalty", 0, 0, G_OPTION_ARG_DOUBLE, &o->repeat_penalty,
            "Repetition penalty (1: off)", "R" },
          { "seed", 's', 0, G_OPTION_ARG_INT, &o->seed, "Random seed", "S" },
          { "ctx", 'c', 0, G_OPTION_ARG_INT64, &o->n_ctx, "Context size (0: the model's)", "N" },
          { "stop", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->stops, "Stop string (repeatable)", "STR" },
          { NULL } };
  g_autoptr (GOptionContext) options = g_option_context_new (NULL);
  g_autoptr (GError) error = NULL;

  at_generate_request_init (request);
  o->n_ctx = 4096;
  o->temp = request->sampler.temperature;
  o->top_k = request->sampler.top_k;
  o->top_p = request->sampler.top_p;
  o->min_p = request->sampler.min_p;
  o->repeat_penalty = request->sampler.repeat_penalty;
  g_option_context_set_summary (options, summary);
  g_option_context_add_main_entries (options, entries, NULL);
  if (extra)
    g_option_context_add_main_entries (options, extra, NULL);
  if (!g_option_context_parse (options, argc, argv, &error))
    {
      g_printerr ("atelier-cli %s: %s\n", command, error->message);
      return FALSE;
    }
  request->max_tokens = o->n;
  request->sampler.temperature = o->temp;
  request->sampler.top_k = o->top_k;
  request->sampler.top_p = o->top_p;
  request->sampler.min_p = o->min_p;
  request->sampler.repeat_penalty = o->repeat_penalty;
  request->sampler.seed = (guint64)o->seed;
  request->stops = (const char *const *)o->stops;
  return TRUE;
}

/* Opens the GPU and loads the model, printing progress on stderr. */
static AtLanguageModel *
load_model (Run *run, AtEngine **engine, const CommonOptions *o)
{
  *engine = at_engine_new (NULL, &run->error);
  if (*engine == NULL)
    return NULL;
  at_language_model_load_async (*engine, o->model_path, o->n_ctx, NULL, on_progress, NULL,
                                on_loaded, run);
  g_main_loop_run (run->loop);
  return run->model;
}

static AtGenerateResult *
generate (Run *run, AtLanguageModel *model, const AtGenerateRequest *request)
{
  run->result = NULL;
  at_language_model_generate_async (model, request, on_token, NULL, NULL, on_generated, run);
  g_main_loop_run (run->loop);
  return run->result;
}

static int
report_error (const char *command, Run *run)
{
  g_printerr ("atelier-cli %s: %s\n", command, run->error->message);
  g_clear_error (&run->error);
  return 1;
}

int
atelier_cli_text (int argc, char **argv)
{
  g_autofree char *prompt = NULL;
  GOptionEntry extra[]
      = { { "prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "Text to continue", "TEXT" },
          { NULL } };
  g_auto (CommonOptions) o = { 0 };
  AtGenerateRequest request;
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr (AtEngine) engine = NULL;
  g_autoptr (AtLanguageModel) model = NULL;
  g_autoptr (AtGenerateResult) result = NULL;
  Run run = { loop, NULL, NULL, NULL };

  o.n = 128;
  if (!parse_options ("text", "Streams the continuation of TEXT to stdout.", &argc, &argv, &o,
                      extra, &request))
    return 2;
  if (o.model_path == NULL || prompt == NULL || argc != 1)
    {
      g_printerr ("Usage: atelier-cli text -m MODEL.gguf -p PROMPT [-n N] [--temp T] ...\n");
      return 2;
    }
  request.max_tokens = o.n;
  request.prompt = prompt;
  if (!(model = load_model (&run, &engine, &o)) || !(result = generate (&run, model, &request)))
    return report_error ("text", &run);
  g_print ("\n");
  g_printerr ("[%" G_GINT64_FORMAT " prompt tokens, %" G_GINT64_FORMAT " generated; %s]\n",
              result->n_prompt, result->n_generated, result->message);
  return 0;
}

/* One message of the conversation; the strings are owned by the history. */
static void
add_message (GArray *messages, GPtrArray *strings, const char *role, const char *content)
{
  AtChatMessage message = { role, content };

  g_ptr_array_add (strings, g_strdup (content));
  message.content = g_ptr_array_index (strings, strings->len - 1);
  g_array_append_val (messages, message);
}

int
atelier_cli_chat (int argc, char **argv)
{
  g_autofree char *system = NULL;
  GOptionEntry extra[]
      = { { "system", 0, 0, G_OPTION_ARG_STRING, &system, "System prompt", "TEXT" },
          { NULL } };
  g_auto (CommonOptions) o = { 0 };
  AtGenerateRequest request;
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr (AtEngine) engine = NULL;
  g_autoptr (AtLanguageModel) model = NULL;
  g_autoptr (GArray) messages = g_array_new (FALSE, FALSE, sizeof (AtChatMessage));
  g_autoptr (GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GIOChannel) input = g_io_channel_unix_new (0);
  Run run = { loop, NULL, NULL, NULL };
  gboolean interactive = isatty (0);

  o.n = -1;
  if (!parse_options ("chat", "Chats with MODEL: one line of stdin is one message.", &argc,
                      &argv, &o, extra, &request))
    return 2;
  if (o.model_path == NULL || argc != 1)
    {
      g_printerr ("Usage: atelier-cli chat -m MODEL.gguf [--system TEXT] [--temp T] ...\n");
      return 2;
    }
  if (!(model = load_model (&run, &engine, &o)))
    return report_error ("chat", &run);
  if (system)
    add_message (messages, strings, "system", system);
  /* The whole conversation goes with each request; the model's cache already holds
   * all but the newest message, so only that is processed. */
  request.context_full = AT_CONTEXT_FULL_SHIFT;
  for (;;)
    {
      g_autofree char *line = NULL;
      g_autoptr (AtGenerateResult) result = NULL;
      gsize terminator;

      if (interactive)
        g_printerr ("> ");
      if (g_io_channel_read_line (input, &line, NULL, &terminator, &run.error)
          != G_IO_STATUS_NORMAL)
        break;
      line[terminator] = '\0';
      if (*line == '\0')
        continue;
      add_message (messages, strings, "user", line);
      request.messages = (const AtChatMessage *)messages->data;
      request.n_messages = messages->len;
      if (!(result = generate (&run, model, &request)))
        return report_error ("chat", &run);
      g_print ("\n");
      add_message (messages, strings, "assistant", result->text);
    }
  if (run.error)
    return report_error ("chat", &run);
  return 0;
}
