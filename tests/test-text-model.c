/* The llama-family models on the GPU against the CPU reference forward pass, on tiny
 * random-weight GGUF fixtures (tests/fixtures) with real vocabularies: logits of a
 * prompt (mat-mul path), of single tokens (mat-vec path) and of a second batch after
 * them; greedy generation; malformed files. */
#include "at-test.h"
#include "fixtures/text-model-fixture.h"
#include "ref/at-ref-text-model.h"
#include "text/at-text-model.h"
#include "text/at-tokenizer.h"

/* Small enough for lavapipe, large enough for a prompt, decoding and a second batch. */
#define N_CTX 64
#define N_BATCH 16

typedef struct
{
  const char *arch;
  AtType type;
  /* Relative L2 error of the logits, GPU against the reference. */
  double tolerance;
} Case;

/* The GPU accumulates in F32 in another order than the reference's doubles, and the
 * two F16 KV caches may round a value to neighbouring halves: ~1e-5 in practice for
 * F32 and F16 weights (both sides dequantize the same weights exactly), 1e-3 leaves
 * room without hiding a wrong op, which gives errors near 1. Quantized weights are
 * also dequantized identically on both sides, but the shaders' block-wise partial sums
 * round differently; the same bound holds. */
static const Case cases[] = {
  { "llama", AT_TYPE_F32, 1e-3 },  { "llama", AT_TYPE_F16, 1e-3 },  { "llama", AT_TYPE_Q8_0, 1e-3 },
  { "llama", AT_TYPE_Q4_K, 1e-3 }, { "qwen2", AT_TYPE_F32, 1e-3 },  { "qwen2", AT_TYPE_F16, 1e-3 },
  { "qwen2", AT_TYPE_Q8_0, 1e-3 }, { "qwen2", AT_TYPE_Q4_K, 1e-3 }, { "qwen3", AT_TYPE_F32, 1e-3 },
  { "qwen3", AT_TYPE_F16, 1e-3 },  { "qwen3", AT_TYPE_Q8_0, 1e-3 }, { "qwen3", AT_TYPE_Q4_K, 1e-3 },
};

static char *
vocab_path (const char *arch)
{
  return g_strdup_printf ("%s/ggml-vocab-%s.gguf", AT_VOCAB_DIR,
                          g_str_equal (arch, "llama") ? "llama-spm" : "qwen2");
}

static AtGguf *
fixture_open (AtTextFixture *fixture)
{
  g_autofree char *path = vocab_path (fixture->arch);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = NULL;
  AtGguf *gguf;

  fixture->vocab_path = path;
  fixture->seed = at_test_seed ();
  bytes = at_text_fixture_build (fixture, &error);
  g_assert_no_error (error);
  gguf = at_gguf_new_from_bytes (bytes, "fixture.gguf", &error);
  g_assert_no_error (error);
  fixture->vocab_path = NULL;
  return gguf;
}

static void
on_progress (double fraction, gpointer user_data)
{
  double *last = user_data;

  g_assert_cmpfloat (fraction, >=, *last);
  *last = fraction;
}

typedef struct
{
  AtGguf *gguf;
  AtTextModel *model;
  AtTextContext *ctx;
  AtRefTextModel *ref;
  gint64 n_vocab;
} Pair;

static void
pair_open (Pair *p, AtTextFixture *fixture)
{
  g_autoptr (GError) error = NULL;
  double fraction = 0.0;

  p->gguf = fixture_open (fixture);
  p->model = at_text_model_new (at_test_gpu (), p->gguf, on_progress, &fraction, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (fraction, ==, 1.0);
  p->ctx = at_text_context_new (p->model, N_CTX, N_BATCH, &error);
  g_assert_no_error (error);
  p->ref = at_ref_text_model_new (p->gguf, N_CTX, &error);
  g_assert_no_error (error);
  p->n_vocab = at_text_model_get_hparams (p->model)->n_vocab;
}

static void
pair_close (Pair *p)
{
  at_ref_text_model_free (p->ref);
  at_text_context_free (p->ctx);
  at_text_model_free (p->model);
  at_gguf_free (p->gguf);
}

/* Decodes tokens on both and compares the logits (all of them, or the last token's). */
static void
decode_both (Pair *p, const gint32 *tokens, gsize n, gsize n_past, gboolean all, double tolerance,
             const char *what, double *worst)
{
  gsize n_logits = (all ? n : 1) * (gsize)p->n_vocab;
  g_autofree float *got = g_new (float, n_logits), *want = g_new (float, n_logits);
  g_autoptr (GError) error = NULL;
  double err;

  at_text_context_decode (p->ctx, tokens, n, n_past, got, all, NULL, &error);
  g_assert_no_error (error);
  at_ref_text_model_decode (p->ref, tokens, n, n_past, want, all);
  err = at_test_rel_l2 (got, want, n_logits);
  *worst = MAX (*worst, err);
  at_test_assert_close (what, got, want, n_logits, tolerance);
}

static gint32
random_token (gint64 n_vocab)
{
  return g_rand_int_range (at_test_rand (), 0, (gint32)n_vocab);
}

static void
test_forward (gconstpointer data)
{
  const Case *c = data;
  AtTextFixture fixture = { .arch = c->arch, .type = c->type };
  g_autoptr (GTimer) timer = g_timer_new ();
  gint32 prompt[9], more[10];
  double worst = 0.0;
  gboolean all;
  Pair p;

  pair_open (&p, &fixture);
  for (gsize i = 0; i < G_N_ELEMENTS (prompt); i++)
    prompt[i] = random_token (p.n_vocab);
  for (gsize i = 0; i < G_N_ELEMENTS (more); i++)
    more[i] = random_token (p.n_vocab);

  /* Every token's logits where the vocabulary is Llama 2's 32000: the output head of
   * Qwen's 151669 tokens through the GEMM takes seconds on lavapipe, so there only the
   * last token's (the layers take the GEMM path all the same). */
  all = p.n_vocab <= 32000;
  decode_both (&p, prompt, G_N_ELEMENTS (prompt), 0, all, c->tolerance, "prompt", &worst);
  for (gsize i = 0; i < 3; i++)
    {
      gint32 token = random_token (p.n_vocab);
      decode_both (&p, &token, 1, G_N_ELEMENTS (prompt) + i, FALSE, c->tolerance, "decode", &worst);
    }
  decode_both (&p, more, G_N_ELEMENTS (more), G_N_ELEMENTS (prompt) + 3, all, c->tolerance,
               "second batch", &worst);
  g_test_message ("%s %s: worst relative L2 error %.3g (%.2f s)", c->arch, at_type_name (c->type),
                  worst, g_timer_elapsed (timer, NULL));
  pair_close (&p);
}

static gint32
argmax (const float *v, gint64 n)
{
  gint64 best = 0;

  for (gint64 i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return (gint32)best;
}

/* 32 greedy steps with F32 weights pick the same tokens on both; llama and qwen3 cover
 * both rope layouts (qwen2 differs from qwen3 only in ways the logits tests see). */
static void
test_greedy (gconstpointer data)
{
  AtTextFixture fixture = { .arch = data, .type = AT_TYPE_F32 };
  g_autoptr (AtTokenizer) tok = NULL;
  g_autoptr (GArray) prompt = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree float *got = NULL, *want = NULL;
  g_autofree char *text = NULL;
  gint32 generated[32];
  gsize n_past;
  Pair p;

  pair_open (&p, &fixture);
  got = g_new (float, p.n_vocab);
  want = g_new (float, p.n_vocab);
  /* The fixture carries its real vocabulary. */
  tok = at_tokenizer_new_from_gguf (p.gguf, &error);
  g_assert_no_error (error);
  prompt = at_tokenizer_encode (tok, "Once upon a time", -1, AT_TOKENIZE_ADD_SPECIAL);

  at_text_context_decode (p.ctx, (gint32 *)prompt->data, prompt->len, 0, got, FALSE, NULL, &error);
  g_assert_no_error (error);
  at_ref_text_model_decode (p.ref, (gint32 *)prompt->data, prompt->len, 0, want, FALSE);
  n_past = prompt->len;
  for (gsize i = 0; i < G_N_ELEMENTS (generated); i++)
    {
      generated[i] = argmax (got, p.n_vocab);
      g_assert_cmpint (generated[i], ==, argmax (want, p.n_vocab));
      at_text_context_decode (p.ctx, &generated[i], 1, n_past, got, FALSE, NULL, &error);
      g_assert_no_error (error);
      at_ref_text_model_decode (p.ref, &generated[i], 1, n_past, want, FALSE);
      n_past++;
    }
  text = at_tokenizer_decode (tok, generated, G_N_ELEMENTS (generated), FALSE, NULL);
  {
    /* Random weights make arbitrary bytes: escape them for the TAP log. */
    g_autofree char *escaped = g_strescape (text, NULL);
    g_test_message ("%s: %s", (const char *)data, escaped);
  }
  pair_close (&p);
}

static void
assert_load_fails (AtTextFixture *fixture, int code, const char *message)
{
  g_autoptr (AtGguf) gguf = fixture_open (fixture);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtTextModel) model
      = at_text_model_new (at_test_gpu (), gguf, NULL, NULL, NULL, &error);
  g_autoptr (AtRefTextModel) ref = NULL;

  g_assert_null (model);
  g_assert_error (error, AT_ERROR, code);
  if (strstr (error->message, message) == NULL)
    g_error ("'%s' does not mention '%s'", error->message, message);
  g_clear_error (&error);
  ref = at_ref_text_model_new (gguf, N_CTX, &error);
  g_assert_null (ref);
  g_assert_error (error, AT_ERROR, code);
}

static void
test_malformed (void)
{
  AtTextFixture missing = { .arch = "qwen2", .omit_tensor = "blk.1.attn_v.bias" };
  AtTextFixture misshapen = { .arch = "llama", .misshape_tensor = "blk.0.ffn_down.weight" };
  AtTextFixture no_norm = { .arch = "qwen3", .omit_tensor = "blk.0.attn_k_norm.weight" };
  AtTextFixture unknown = { .arch = "mamba" };
  AtTextFixture yarn = { .arch = "llama", .rope_scaling = "yarn" };

  assert_load_fails (&missing, AT_ERROR_INVALID_FILE, "'blk.1.attn_v.bias' is missing");
  assert_load_fails (&misshapen, AT_ERROR_INVALID_FILE,
                     "'blk.0.ffn_down.weight' is [256, 64, 1], expected [128, 64]");
  assert_load_fails (&no_norm, AT_ERROR_INVALID_FILE, "'blk.0.attn_k_norm.weight' is missing");
  assert_load_fails (&unknown, AT_ERROR_UNSUPPORTED, "architecture 'mamba'");
  assert_load_fails (&yarn, AT_ERROR_UNSUPPORTED, "rope scaling 'yarn'");
}

/* Linear rope scaling loads; the context and decode refuse impossible sizes. */
static void
test_limits (void)
{
  AtTextFixture linear = { .arch = "llama", .rope_scaling = "linear" };
  g_autoptr (AtGguf) gguf = fixture_open (&linear);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtTextModel) model
      = at_text_model_new (at_test_gpu (), gguf, NULL, NULL, NULL, &error);
  g_autoptr (AtTextContext) ctx = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autofree float *logits = NULL;
  gint32 tokens[4] = { 1, 2, 3, 4 };

  g_assert_no_error (error);
  g_assert_cmpfloat (at_text_model_get_hparams (model)->rope.freq_scale, ==, 0.5f);
  g_assert_null (at_text_context_new (model, 100000, 16, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  ctx = at_text_context_new (model, 8, 4, &error);
  g_assert_no_error (error);
  logits = g_new (float, at_text_model_get_hparams (model)->n_vocab * 4);
  g_assert_false (at_text_context_decode (ctx, tokens, 4, 5, logits, FALSE, NULL, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_cancellable_cancel (cancellable);
  g_assert_false (at_text_context_decode (ctx, tokens, 4, 0, logits, FALSE, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_true (at_text_context_decode (ctx, tokens, 4, 4, logits, TRUE, NULL, &error));
  g_assert_no_error (error);
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path
          = g_strdup_printf ("/text/model/%s/%s", cases[i].arch, at_type_name (cases[i].type));
      g_test_add_data_func (path, &cases[i], test_forward);
    }
  g_test_add_data_func ("/text/model/llama/greedy", "llama", test_greedy);
  g_test_add_data_func ("/text/model/qwen3/greedy", "qwen3", test_greedy);
  g_test_add_func ("/text/model/malformed", test_malformed);
  g_test_add_func ("/text/model/limits", test_limits);
  return at_test_run ();
}
