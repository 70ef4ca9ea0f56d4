#include "text/at-language-model.h"

#include <string.h>

#include "at-engine-private.h"
#include "at-error.h"
#include "text/at-stop-matcher.h"
#include "text/at-text-model.h"
#include "text/at-tokenizer.h"

/* Prompt tokens per decode call: large enough to keep the mat-mul path busy. */
#define N_BATCH 512

struct _AtLanguageModel
{
  GObject parent_instance;
  AtEngine *engine;
  AtTextModel *text_model;
  AtTextContext *ctx;
  AtTokenizer *tok;
  AtChatFamily chat_family;
  gint64 n_ctx, n_batch, n_vocab;
  guint64 weight_bytes_per_token;
  /* The tokens whose keys and values are in the cache, in order; touched by jobs only. */
  GArray *cached;
  gint64 n_decoded;
};

G_DEFINE_FINAL_TYPE (AtLanguageModel, at_language_model, G_TYPE_OBJECT)

static void
at_language_model_finalize (GObject *object)
{
  AtLanguageModel *model = AT_LANGUAGE_MODEL (object);

  g_clear_pointer (&model->ctx, at_text_context_free);
  g_clear_pointer (&model->text_model, at_text_model_free);
  g_clear_pointer (&model->tok, at_tokenizer_unref);
  g_clear_pointer (&model->cached, g_array_unref);
  g_clear_object (&model->engine);
  G_OBJECT_CLASS (at_language_model_parent_class)->finalize (object);
}

static void
at_language_model_class_init (AtLanguageModelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = at_language_model_finalize;
}

static void
at_language_model_init (AtLanguageModel *model)
{
  model->cached = g_array_new (FALSE, FALSE, sizeof (gint32));
}

/* --- Loading ------------------------------------------------------------------------ */

static void
load_progress (double fraction, gpointer user_data)
{
  at_load_data_progress (user_data, fraction);
}

static GObject *
load (AtEngine *engine, AtLoadData *data, GCancellable *cancellable, GError **error)
{
  AtGpu *gpu = at_engine_get_gpu (engine);
  g_autoptr (AtLanguageModel) model = NULL;
  g_autoptr (AtGguf) gguf = NULL;
  AtTextModelFile file;
  AtTextHParams hp;
  guint64 weight_bytes, per_token;
  const char *chat_template;
  gint64 n_ctx;

  if (!(gguf = at_gguf_open (data->path, error)) || !at_text_model_file_init (&file, gguf, error))
    return NULL;
  hp = file.hp;
  weight_bytes = at_text_model_file_weight_bytes (&file, gguf, &per_token);
  at_text_model_file_clear (&file);

  n_ctx = data->n_ctx <= 0 ? hp.n_ctx_train : data->n_ctx;
  if (n_ctx > hp.n_ctx_train)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "a context of %" G_GINT64_FORMAT " tokens: %s takes at most %" G_GINT64_FORMAT,
                   n_ctx, data->path, hp.n_ctx_train);
      return NULL;
    }
  if (!at_gpu_check_free_memory (gpu, data->path,
                                 weight_bytes
                                     + at_text_context_estimate_bytes (&hp, n_ctx, MIN (n_ctx, N_BATCH)),
                                 error))
    return NULL;

  model = g_object_new (AT_TYPE_LANGUAGE_MODEL, NULL);
  model->engine = g_object_ref (engine);
  model->n_ctx = n_ctx;
  model->n_batch = MIN (n_ctx, N_BATCH);
  model->n_vocab = hp.n_vocab;
  model->weight_bytes_per_token = per_token;
  chat_template = at_gguf_get_string (gguf, "tokenizer.chat_template", NULL);
  model->chat_family = at_chat_detect (chat_template);
  if (!(model->tok = at_tokenizer_new_from_gguf (gguf, error))
      || !(model->text_model = at_text_model_new (gpu, gguf, load_progress, data, cancellable, error))
      || !(model->ctx = at_text_context_new (model->text_model, n_ctx, model->n_batch, error)))
    return NULL;
  return G_OBJECT (g_steal_pointer (&model));
}

void
at_language_model_load_async (AtEngine *engine, const char *path, gint64 n_ctx,
                              GCancellable *cancellable, AtLoadProgress progress,
                              gpointer progress_data, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  g_return_if_fail (AT_IS_ENGINE (engine));
  at_engine_queue_load (engine, path, n_ctx, load, at_language_model_load_async, cancellable,
                        progress, progress_data, callback, user_data);
}

AtLanguageModel *
at_language_model_load_finish (GAsyncResult *result, GError **error)
{
  return at_engine_load_finish (result, at_language_model_load_async, error);
}

gint64
at_language_model_get_n_ctx (AtLanguageModel *model)
{
  return model->n_ctx;
}

AtChatFamily
at_language_model_get_chat_family (AtLanguageModel *model)
{
  return model->chat_family;
}

guint64
at_language_model_get_weight_bytes_per_token (AtLanguageModel *model)
{
  return model->weight_bytes_per_token;
}

gint64
at_language_model_get_n_decoded (AtLanguageModel *model)
{
  return model->n_decoded;
}

/* --- Generating --------------------------------------------------------------------- */

void
at_generate_request_init (AtGenerateRequest *request)
{
  memset (request, 0, sizeof *request);
  at_sampler_params_init (&request->sampler);
  request->max_tokens = 256;
  request->context_full = AT_CONTEXT_FULL_STOP;
  request->n_keep = -1;
}

void
at_generate_result_free (AtGenerateResult *result)
{
  if (result == NULL)
    return;
  g_free (result->text);
  g_free (result->message);
  g_free (result);
}

typedef struct
{
  char *text;   /* the prompt, in the chat format for a conversation */
  char *system; /* a conversation's system messages alone, or NULL */
  gboolean chat;
  AtSamplerParams sampler;
  gint64 max_tokens, n_keep;
  char **stops;
  AtContextFullPolicy context_full;
  AtTokenCallback on_token;
  gpointer token_data;
} GenerateData;

static void
generate_data_free (GenerateData *data)
{
  g_free (data->text);
  g_free (data->system);
  g_strfreev (data->stops);
  g_free (data);
}

typedef struct
{
  AtTokenCallback callback;
  gpointer data;
  char *text;
} TokenNote;

static void
token_note_free (TokenNote *note)
{
  g_free (note->text);
  g_free (note);
}

static gboolean
deliver_token (gpointer user_data)
{
  TokenNote *note = user_data;

  note->callback (note->text, note->data);
  return G_SOURCE_REMOVE;
}

/* Hands text (taken) to the caller and the result. */
static void
emit (GTask *task, GenerateData *data, GString *out, char *text)
{
  TokenNote *note;

  if (*text == '\0')
    {
      g_free (text);
      return;
    }
  g_string_append (out, text);
  if (data->on_token == NULL)
    {
      g_free (text);
      return;
    }
  note = g_new (TokenNote, 1);
  *note = (TokenNote){ data->on_token, data->token_data, text };
  at_engine_job_notify (task, deliver_token, note, (GDestroyNotify)token_note_free);
}

/* Brings the cache to tokens: keeps the prefix it shares with them and decodes the rest
 * (at least the last token, whose logits come out). */
static gboolean
sync_cache (AtLanguageModel *model, const GArray *tokens, float *logits,
            GCancellable *cancellable, GError **error)
{
  const gint32 *ids = (const gint32 *)tokens->data;
  gsize common = 0;

  while (common < model->cached->len && common < tokens->len
         && g_array_index (model->cached, gint32, common) == ids[common])
    common++;
  if (common == tokens->len)
    common--;
  g_array_set_size (model->cached, common);
  for (gsize i = common; i < tokens->len; i += model->n_batch)
    {
      const gsize n = MIN ((gsize)model->n_batch, tokens->len - i);

      if (!at_text_context_decode (model->ctx, ids + i, n, i, logits, FALSE, cancellable, error))
        return FALSE;
      g_array_append_vals (model->cached, ids + i, n);
      model->n_decoded += n;
    }
  return TRUE;
}

/* Makes tokens fit the context: FALSE (and a message) when they cannot. */
static gboolean
make_room (AtLanguageModel *model, GenerateData *data, GArray *tokens, gsize n_keep,
           char **message)
{
  while (tokens->len > (gsize)model->n_ctx)
    {
      const gsize n_discard = tokens->len > n_keep ? (tokens->len - n_keep) / 2 : 0;

      if (data->context_full == AT_CONTEXT_FULL_STOP || n_discard == 0)
        {
          *message = g_strdup_printf ("the context of %" G_GINT64_FORMAT " tokens is full",
                                      model->n_ctx);
          return FALSE;
        }
      g_array_remove_range (tokens, n_keep, n_discard);
    }
  return TRUE;
}

static guint
count_tokens (AtTokenizer *tok, const char *text, AtTokenizeFlags flags)
{
  g_autoptr (GArray) ids = at_tokenizer_encode (tok, text, -1, flags);

  return ids->len;
}

static AtGenerateResult *
generate (AtLanguageModel *model, GTask *task, GenerateData *data, GCancellable *cancellable,
          GError **error)
{
  const AtTokenizeFlags flags
      = AT_TOKENIZE_ADD_SPECIAL | (data->chat ? AT_TOKENIZE_PARSE_SPECIAL : 0);
  g_autoptr (GArray) tokens = at_tokenizer_encode (model->tok, data->text, -1, flags);
  g_autoptr (AtSampler) sampler = at_sampler_new (&data->sampler, error);
  g_autoptr (AtDetokenizer) detok = at_detokenizer_new (model->tok, FALSE);
  g_autoptr (AtStopMatcher) matcher = at_stop_matcher_new ((const char *const *)data->stops);
  g_autofree float *logits = g_new (float, model->n_vocab);
  g_autoptr (AtGenerateResult) result = g_new0 (AtGenerateResult, 1);
  g_autoptr (GString) out = g_string_new (NULL);
  gsize n_keep = data->n_keep >= 0 ? (gsize)data->n_keep
                                   : count_tokens (model->tok, data->system ? data->system : "",
                                                   flags);

  if (sampler == NULL)
    return NULL;
  result->n_prompt = tokens->len;
  for (guint i = 0; i < tokens->len; i++)
    at_sampler_accept (sampler, g_array_index (tokens, gint32, i));
  if (!make_room (model, data, tokens, n_keep, &result->message))
    {
      result->reason = AT_STOP_CONTEXT_FULL;
      return g_steal_pointer (&result);
    }
  if (tokens->len == 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT, "an empty prompt");
      return NULL;
    }
  if (!sync_cache (model, tokens, logits, cancellable, error))
    return NULL;

  for (;;)
    {
      g_autofree char *piece = NULL;
      gint32 id;
      gboolean stopped = FALSE;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return NULL;
      id = at_sampler_sample (sampler, logits, model->n_vocab);
      at_sampler_accept (sampler, id);
      if (at_tokenizer_is_end_of_generation (model->tok, id))
        {
          result->reason = AT_STOP_EOS;
          result->message = g_strdup ("the model ended its text");
          break;
        }
      result->n_generated++;
      piece = at_detokenizer_push (detok, id);
      emit (task, data, out, at_stop_matcher_push (matcher, piece, &stopped));
      if (stopped)
        {
          result->reason = AT_STOP_STRING;
          result->message = g_strdup_printf ("the stop string “%s” appeared",
                                             at_stop_matcher_get_stop (matcher));
          break;
        }
      if (data->max_tokens >= 0 && result->n_generated >= data->max_tokens)
        {
          result->reason = AT_STOP_MAX_TOKENS;
          result->message = g_strdup_printf ("%" G_GINT64_FORMAT " tokens were generated",
                                             result->n_generated);
          break;
        }
      g_array_append_val (tokens, id);
      if (!make_room (model, data, tokens, n_keep, &result->message))
        {
          result->reason = AT_STOP_CONTEXT_FULL;
          break;
        }
      if (!sync_cache (model, tokens, logits, cancellable, error))
        return NULL;
    }
  if (result->reason != AT_STOP_STRING)
    {
      g_autofree char *rest = at_detokenizer_flush (detok);

      emit (task, data, out, at_stop_matcher_push (matcher, rest, NULL));
      emit (task, data, out, at_stop_matcher_flush (matcher));
    }
  result->text = g_strdup (out->str);
  return g_steal_pointer (&result);
}

static void
generate_job (AtEngine *engine, GTask *task, gpointer task_data, GCancellable *cancellable)
{
  GError *error = NULL;
  AtGenerateResult *result
      = generate (g_task_get_source_object (task), task, task_data, cancellable, &error);

  if (result == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, result, (GDestroyNotify)at_generate_result_free);
}

void
at_language_model_generate_async (AtLanguageModel *model, const AtGenerateRequest *request,
                                  AtTokenCallback on_token, gpointer token_data,
                                  GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (model, cancellable, callback, user_data);
  GenerateData *data = g_new0 (GenerateData, 1);

  g_return_if_fail (AT_IS_LANGUAGE_MODEL (model));
  g_return_if_fail ((request->prompt != NULL) != (request->n_messages > 0));
  if (request->prompt != NULL)
    data->text = g_strdup (request->prompt);
  else
    {
      const char *eos = at_tokenizer_get_token_text (model->tok, at_tokenizer_get_eos (model->tok));
      g_autoptr (GArray) system = g_array_new (FALSE, FALSE, sizeof (AtChatMessage));

      data->chat = TRUE;
      data->text = at_chat_format (model->chat_family, request->messages, request->n_messages,
                                   TRUE, NULL, eos);
      for (gsize i = 0; i < request->n_messages; i++)
        if (g_str_equal (request->messages[i].role, "system"))
          g_array_append_val (system, request->messages[i]);
      if (system->len > 0)
        data->system = at_chat_format (model->chat_family, (AtChatMessage *)system->data,
                                       system->len, FALSE, NULL, eos);
    }
  data->sampler = request->sampler;
  data->max_tokens = request->max_tokens;
  data->n_keep = request->n_keep;
  data->stops = g_strdupv ((char **)request->stops);
  data->context_full = request->context_full;
  data->on_token = on_token;
  data->token_data = token_data;
  g_task_set_source_tag (task, at_language_model_generate_async);
  g_task_set_task_data (task, data, (GDestroyNotify)generate_data_free);
  at_engine_queue_job (model->engine, task, generate_job);
}

AtGenerateResult *
at_language_model_generate_finish (AtLanguageModel *model, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, model), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
