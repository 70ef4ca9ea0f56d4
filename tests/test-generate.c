/* test-generate.c: AtLanguageModel on tiny random-weight fixtures (tests/fixtures):
 * determinism, greedy decoding against a hand-written loop, stop conditions,
 * cancellation, prefix reuse, a full context, and the memory check. */
#include <glib/gstdio.h>

#include "at-engine-private.h"
#include "at-test.h"
#include "atelier-engine.h"
#include "fixtures/text-model-fixture.h"
#include "text/at-text-model.h"
#include "text/at-tokenizer.h"

static AtEngine *engine;
static GThread *main_thread;

/* A fixture model written to a temporary file; returns its path. */
static char *
fixture_file (gint64 n_ctx)
{
  AtTextFixture fixture = { .arch = "llama", .type = AT_TYPE_Q8_0, .n_ctx = n_ctx };
  g_autofree char *vocab = g_build_filename (AT_VOCAB_DIR, "ggml-vocab-llama-spm.gguf", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = NULL;
  char *path = NULL;
  int fd;

  fixture.vocab_path = vocab;
  fixture.seed = 7;
  bytes = at_text_fixture_build (&fixture, &error);
  g_assert_no_error (error);
  fd = g_file_open_tmp ("atelier-generate-XXXXXX.gguf", &path, &error);
  g_assert_no_error (error);
  close (fd);
  g_file_set_contents (path, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), &error);
  g_assert_no_error (error);
  return path;
}

static void
store_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **)user_data = g_object_ref (result);
}

static GAsyncResult *
wait_for (GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (NULL, TRUE);
  return *slot;
}

static AtLanguageModel *
load (gint64 n_ctx, GError **error)
{
  g_autofree char *path = fixture_file (256);
  g_autoptr (GAsyncResult) result = NULL;
  AtLanguageModel *model;

  at_language_model_load_async (engine, path, n_ctx, NULL, NULL, NULL, store_result, &result);
  model = at_language_model_load_finish (wait_for (&result), error);
  g_unlink (path);
  return model;
}

typedef struct
{
  GString *text;
  GCancellable *cancel_after_first;
} Stream;

static void
on_token (const char *text, gpointer user_data)
{
  Stream *stream = user_data;

  g_assert_true (g_thread_self () == main_thread);
  g_assert_true (g_utf8_validate (text, -1, NULL));
  g_string_append (stream->text, text);
  if (stream->cancel_after_first)
    g_cancellable_cancel (stream->cancel_after_first);
}

static AtGenerateResult *
generate (AtLanguageModel *model, const AtGenerateRequest *request, GCancellable *cancellable,
          GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GString) streamed = g_string_new (NULL);
  Stream stream = { streamed, cancellable };
  AtGenerateResult *out;

  at_language_model_generate_async (model, request, on_token, &stream, cancellable,
                                    store_result, &result);
  out = at_language_model_generate_finish (model, wait_for (&result), error);
  if (out != NULL)
    g_assert_cmpstr (out->text, ==, streamed->str);
  return out;
}

static AtGenerateResult *
generate_ok (AtLanguageModel *model, const AtGenerateRequest *request)
{
  g_autoptr (GError) error = NULL;
  AtGenerateResult *result = generate (model, request, NULL, &error);

  g_assert_no_error (error);
  return result;
}

static void
greedy_request (AtGenerateRequest *request, const char *prompt, gint64 max_tokens)
{
  at_generate_request_init (request);
  request->prompt = prompt;
  request->sampler.temperature = 0;
  request->max_tokens = max_tokens;
}

static void
test_same_seed (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = load (128, &error);
  g_autoptr (AtGenerateResult) a = NULL, b = NULL, c = NULL;
  AtGenerateRequest request;

  g_assert_no_error (error);
  at_generate_request_init (&request);
  request.prompt = "Once upon a time";
  request.max_tokens = 6;
  request.sampler.seed = 42;
  a = generate_ok (model, &request);
  b = generate_ok (model, &request);
  g_assert_cmpstr (a->text, ==, b->text);
  g_assert_cmpint (a->reason, ==, AT_STOP_MAX_TOKENS);
  g_assert_cmpint (a->n_generated, ==, 6);
  request.sampler.seed = 43;
  c = generate_ok (model, &request);
  g_assert_cmpint (c->n_generated, ==, 6);
}

/* Greedy generation is argmax over at_text_context_decode, token by token. */
static void
test_greedy_matches_manual_loop (void)
{
  const char *prompt = "The capital of France";
  const gsize n_gen = 8;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = load (64, &error);
  g_autofree char *path = fixture_file (256);
  g_autoptr (AtGguf) gguf = at_gguf_open (path, &error);
  g_autoptr (AtTokenizer) tok = at_tokenizer_new_from_gguf (gguf, &error);
  g_autoptr (AtTextModel) tm = at_text_model_new (at_engine_get_gpu (engine), gguf, NULL, NULL,
                                                  NULL, &error);
  g_autoptr (AtTextContext) ctx = at_text_context_new (tm, 64, 64, &error);
  g_autoptr (GArray) ids = at_tokenizer_encode (tok, prompt, -1, AT_TOKENIZE_ADD_SPECIAL);
  g_autoptr (GArray) generated = g_array_new (FALSE, FALSE, sizeof (gint32));
  const gsize n_vocab = at_text_model_get_hparams (tm)->n_vocab;
  g_autofree float *logits = g_new (float, n_vocab);
  g_autofree char *expected = NULL;
  g_autoptr (AtGenerateResult) result = NULL;
  AtGenerateRequest request;
  gsize n_past = 0;

  g_assert_no_error (error);
  g_unlink (path);
  while (generated->len < n_gen)
    {
      gint32 best = 0;

      g_assert_true (at_text_context_decode (ctx, (gint32 *)ids->data, ids->len, n_past, logits,
                                             FALSE, NULL, &error));
      g_assert_no_error (error);
      n_past += ids->len;
      for (gsize i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
          best = (gint32)i;
      if (at_tokenizer_is_end_of_generation (tok, best))
        break;
      g_array_append_val (generated, best);
      g_array_set_size (ids, 1);
      g_array_index (ids, gint32, 0) = best;
    }
  expected = at_tokenizer_decode (tok, (gint32 *)generated->data, generated->len, FALSE, NULL);

  greedy_request (&request, prompt, n_gen);
  result = generate_ok (model, &request);
  g_assert_cmpstr (result->text, ==, expected);
}

static void
test_stop_string (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = load (128, &error);
  g_autoptr (AtGenerateResult) full = NULL, stopped = NULL;
  g_autofree char *stop = NULL;
  const char *stops[2] = { NULL, NULL };
  AtGenerateRequest request;
  const char *at;

  g_assert_no_error (error);
  greedy_request (&request, "Hello", 16);
  full = generate_ok (model, &request);
  g_assert_cmpint (g_utf8_strlen (full->text, -1), >=, 6);
  /* Two characters from the middle of the text stop it at their first appearance. */
  at = g_utf8_offset_to_pointer (full->text, 3);
  stop = g_strndup (at, g_utf8_offset_to_pointer (at, 2) - at);
  stops[0] = stop;
  request.stops = stops;
  stopped = generate_ok (model, &request);
  g_assert_cmpint (stopped->reason, ==, AT_STOP_STRING);
  g_assert_cmpint (strlen (stopped->text), ==, strstr (full->text, stop) - full->text);
  g_assert_true (g_str_has_prefix (full->text, stopped->text));
}

static void
test_cancel (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = load (128, &error);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (AtGenerateResult) after = NULL;
  AtGenerateResult *cancelled;
  AtGenerateRequest request;

  g_assert_no_error (error);
  greedy_request (&request, "Count with me:", -1);
  request.context_full = AT_CONTEXT_FULL_SHIFT;
  cancelled = generate (model, &request, cancellable, &error);
  g_assert_null (cancelled);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  request.max_tokens = 3;
  after = generate_ok (model, &request);
  g_assert_cmpint (after->n_generated, ==, 3);
}

/* The same prompt again decodes only its last token, and gives the same tokens. */
static void
test_prefix_reuse (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = load (128, &error);
  g_autoptr (AtLanguageModel) fresh = load (128, &error);
  g_autoptr (AtGenerateResult) first = NULL, second = NULL, reference = NULL;
  AtGenerateRequest request;
  gint64 n0, n1;

  g_assert_no_error (error);
  greedy_request (&request, "A long prompt that the cache should keep for the next time", 4);
  first = generate_ok (model, &request);
  n0 = at_language_model_get_n_decoded (model);
  request.prompt = "A long prompt that the cache should keep for the next time, and more";
  second = generate_ok (model, &request);
  n1 = at_language_model_get_n_decoded (model) - n0;
  g_assert_cmpint (n1, <, n0);
  reference = generate_ok (fresh, &request);
  g_assert_cmpint (at_language_model_get_n_decoded (fresh), >, n1);
  g_assert_cmpstr (second->text, ==, reference->text);
}

static void
test_context_full (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = load (16, &error);
  g_autoptr (AtGenerateResult) full = NULL, shifted = NULL;
  AtGenerateRequest request;

  g_assert_no_error (error);
  greedy_request (&request, "In the beginning", -1);
  full = generate_ok (model, &request);
  g_assert_cmpint (full->reason, ==, AT_STOP_CONTEXT_FULL);
  g_assert_nonnull (strstr (full->message, "context of 16 tokens is full"));
  g_assert_cmpint (full->n_prompt + full->n_generated, ==, 17);

  request.context_full = AT_CONTEXT_FULL_SHIFT;
  request.max_tokens = 24;
  shifted = generate_ok (model, &request);
  g_assert_cmpint (shifted->reason, ==, AT_STOP_MAX_TOKENS);
  g_assert_cmpint (shifted->n_generated, ==, 24);
}

/* An absurd context is refused before anything is uploaded. */
static void
test_out_of_memory (void)
{
  g_autofree char *path = fixture_file (G_GINT64_CONSTANT (1) << 30);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = NULL;
  guint64 before = at_engine_get_memory_used (engine, NULL);

  at_language_model_load_async (engine, path, G_GINT64_CONSTANT (1) << 30, NULL, NULL, NULL,
                                store_result, &result);
  model = at_language_model_load_finish (wait_for (&result), &error);
  g_unlink (path);
  g_assert_error (error, AT_ERROR, AT_ERROR_OUT_OF_MEMORY);
  g_assert_nonnull (strstr (error->message, "of GPU memory"));
  g_assert_cmpuint (at_gpu_get_allocated_bytes (at_engine_get_gpu (engine), NULL), ==, before);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  main_thread = g_thread_self ();
  engine = at_engine_new (NULL, &error);
  g_assert_no_error (error);
  g_test_add_func ("/generate/same-seed", test_same_seed);
  g_test_add_func ("/generate/greedy-matches-manual-loop", test_greedy_matches_manual_loop);
  g_test_add_func ("/generate/stop-string", test_stop_string);
  g_test_add_func ("/generate/cancel", test_cancel);
  g_test_add_func ("/generate/prefix-reuse", test_prefix_reuse);
  g_test_add_func ("/generate/context-full", test_context_full);
  g_test_add_func ("/generate/out-of-memory", test_out_of_memory);
  status = g_test_run ();
  g_object_unref (engine);
  return status;
}
