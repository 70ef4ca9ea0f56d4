/* SD checkpoint family detection and the CLIP text encoder (SD 1.x) on tiny random-weight
 * checkpoints with the real tensor names and the real tokenizer: GPU against the CPU
 * reference, clip skip, A1111 prompt weighting, malformed files. */
#include <math.h>
#include <string.h>

#include "at-error.h"
#include "at-test.h"
#include "fixtures/sd-fixture.h"
#include "image/at-clip-text-model.h"
#include "image/at-clip-tokenizer.h"
#include "image/at-sd-checkpoint.h"
#include "ref/at-ref-clip-text-model.h"

#define SD1 "cond_stage_model.transformer.text_model."
#define EOS 49407

static AtClipTokenizer *tokenizer;

static AtSafetensors *
open_fixture (const AtSdFixture *fixture)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = at_sd_fixture_build (fixture, &error);
  AtSafetensors *st;

  g_assert_no_error (error);
  st = at_safetensors_new_from_bytes (bytes, "model.safetensors", &error);
  g_assert_no_error (error);
  return st;
}

static void
test_detect_sd1 (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = at_test_seed () };
  g_autoptr (AtSafetensors) st = open_fixture (&fixture);
  g_autoptr (GError) error = NULL;
  AtSdCheckpointInfo info;

  g_assert_true (at_sd_checkpoint_detect (st, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpint (info.family, ==, AT_SD_FAMILY_SD1);
  g_assert_cmpstr (at_sd_family_name (info.family), ==, "SD 1.x");
  g_assert_cmpint (info.prediction, ==, AT_SD_PREDICTION_EPSILON);
  g_assert_cmpint (at_sd_checkpoint_default_prediction (&info, 768), ==,
                   AT_SD_PREDICTION_EPSILON);
  g_assert_cmpint (info.default_clip_skip, ==, 1);
  g_assert_cmpint (info.clip.n_vocab, ==, 49408);
  g_assert_cmpint (info.clip.n_ctx, ==, 77);
  g_assert_cmpint (info.clip.n_embd, ==, 128);
  g_assert_cmpint (info.clip.n_layer, ==, 2);
  g_assert_cmpint (info.clip.n_head, ==, 2);
  g_assert_cmpint (info.clip.n_ff, ==, 512);

  /* Depth and widths follow the tensors. */
  AtSdFixture deeper = { .layout = AT_SD_FIXTURE_SD1, .n_embd = 64, .n_layer = 3, .n_ff = 96 };
  g_autoptr (AtSafetensors) st3 = open_fixture (&deeper);
  g_assert_true (at_sd_checkpoint_detect (st3, &info, &error));
  g_assert_cmpint (info.clip.n_layer, ==, 3);
  g_assert_cmpint (info.clip.n_head, ==, 1);
  g_assert_cmpint (info.clip.n_ff, ==, 96);
}

static void
test_detect_sd2 (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD2, .n_layer = 3 };
  g_autoptr (AtSafetensors) st = open_fixture (&fixture);
  g_autoptr (GError) error = NULL;
  AtSdCheckpointInfo info;

  g_assert_true (at_sd_checkpoint_detect (st, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpint (info.family, ==, AT_SD_FAMILY_SD2);
  g_assert_cmpstr (at_sd_family_name (info.family), ==, "SD 2.x");
  g_assert_cmpint (info.default_clip_skip, ==, 2);
  g_assert_cmpint (info.clip.n_embd, ==, 128);
  g_assert_cmpint (info.clip.n_layer, ==, 3);
  g_assert_cmpint (info.clip.n_head, ==, 2);
  g_assert_cmpint (info.clip.n_ff, ==, 512);
  /* v-prediction is not in the weights: the image size decides. */
  g_assert_cmpint (info.prediction, ==, AT_SD_PREDICTION_UNKNOWN);
  g_assert_cmpint (at_sd_checkpoint_default_prediction (&info, 512), ==,
                   AT_SD_PREDICTION_EPSILON);
  g_assert_cmpint (at_sd_checkpoint_default_prediction (&info, 768), ==, AT_SD_PREDICTION_V);
}

static void
test_detect_unsupported (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SDXL, .n_layer = 1 };
  g_autoptr (AtSafetensors) st = open_fixture (&fixture);
  g_autoptr (GError) error = NULL;
  AtSdCheckpointInfo info;

  g_assert_false (at_sd_checkpoint_detect (st, &info, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "SDXL checkpoints are not supported yet"));
  g_clear_error (&error);

  /* Not a checkpoint at all: the reader refuses it. */
  static const char garbage[] = "\x10\0\0\0\0\0\0\0{\"a\": nonsense}";
  g_autoptr (GBytes) bytes = g_bytes_new_static (garbage, sizeof garbage - 1);
  g_assert_null (at_safetensors_new_from_bytes (bytes, "garbage.safetensors", &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
}

static void
assert_invalid (const AtSdFixture *fixture, const char *tensor)
{
  g_autoptr (AtSafetensors) st = open_fixture (fixture);
  g_autoptr (GError) error = NULL;
  AtClipTextFile file;

  g_assert_false (at_clip_text_file_init (&file, st, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, tensor));
}

static void
test_malformed (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .n_embd = 64, .n_layer = 2 };

  fixture.omit_tensor = SD1 "encoder.layers.1.mlp.fc2.bias";
  assert_invalid (&fixture, fixture.omit_tensor);
  fixture.omit_tensor = SD1 "final_layer_norm.weight";
  assert_invalid (&fixture, fixture.omit_tensor);
  fixture.omit_tensor = NULL;
  fixture.misshape_tensor = SD1 "encoder.layers.0.self_attn.k_proj.weight";
  assert_invalid (&fixture, fixture.misshape_tensor);
  fixture.misshape_tensor = SD1 "embeddings.position_embedding.weight";
  assert_invalid (&fixture, fixture.misshape_tensor);

  AtSdFixture sd2 = { .layout = AT_SD_FIXTURE_SD2, .n_embd = 64, .n_layer = 2,
                      .misshape_tensor = "cond_stage_model.model.transformer.resblocks.1."
                                         "attn.in_proj_bias" };
  assert_invalid (&sd2, sd2.misshape_tensor);
}

/* The ids of the first window of prompt, as A1111 feeds SD 1.x (padded with EOS) or
 * SD 2.x (padded with 0). */
static AtClipPromptTokens *
tokenize (const char *prompt, gint32 pad_id)
{
  g_autoptr (GError) error = NULL;
  AtClipPromptTokens *tokens = at_clip_tokenizer_encode_prompt (tokenizer, prompt, pad_id,
                                                                &error);

  g_assert_no_error (error);
  g_assert_cmpuint (tokens->n_chunks, ==, 1);
  return tokens;
}

typedef struct
{
  AtSdFixtureLayout layout;
  const char *matrix_dtype;
} EncodeCase;

static void
test_encode (gconstpointer data)
{
  const EncodeCase *c = data;
  const AtSdFixtureLayout layout = c->layout;
  AtSdFixture fixture = { .layout = layout, .seed = at_test_seed (),
                          .matrix_dtype = c->matrix_dtype };
  g_autoptr (AtSafetensors) st = open_fixture (&fixture);
  g_autoptr (AtClipPromptTokens) tokens
      = tokenize ("a photo of a cat", layout == AT_SD_FIXTURE_SD2 ? 0 : EOS);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtClipTextModel) model = at_clip_text_model_new (at_test_gpu (), st, &error);
  AtClipTextFile file;

  g_assert_no_error (error);
  g_assert_true (at_clip_text_file_init (&file, st, &error));
  g_assert_cmpint (file.info.family, ==,
                   layout == AT_SD_FIXTURE_SD2 ? AT_SD_FAMILY_SD2 : AT_SD_FAMILY_SD1);
  /* The reference follows the file's choices, so check them here: OpenCLIP's nn.GELU is
   * the exact one, and its q, k, v come fused. */
  g_assert_cmpint (file.activation, ==,
                   layout == AT_SD_FIXTURE_SD2 ? AT_UNARY_GELU_ERF : AT_UNARY_GELU_QUICK);
  g_assert_cmpint (file.qkv_fused, ==, layout == AT_SD_FIXTURE_SD2);
  const gsize n = 77 * 128;
  g_autofree float *got = g_new (float, n), *want = g_new (float, n);
  g_autofree float *last = g_new (float, n);

  for (int clip_skip = 1; clip_skip <= 2; clip_skip++)
    {
      g_autofree char *what = g_strdup_printf ("clip skip %d", clip_skip);

      g_assert_true (at_clip_text_model_encode (model, tokens->ids, clip_skip, got, &error));
      g_assert_no_error (error);
      at_ref_clip_text_encode (&file, tokens->ids, clip_skip, want);
      /* Same weights on both sides; the GPU sums in F32 (two matmuls and attention
       * per layer over 128..512 terms), the reference in double, and final_layer_norm
       * keeps the errors relative. F32 rounding gives ~3e-7; 1e-4 leaves room for other
       * devices' summation orders while a wrong mask, scale or activation is off by
       * 1e-2 or more. */
      at_test_assert_close (what, got, want, n, 1e-4);
      if (clip_skip == 1)
        memcpy (last, got, n * sizeof (float));
    }
  /* The penultimate layer is a different state from the last. */
  g_assert_cmpfloat (at_test_rel_l2 (got, last, n), >, 0.05);

  g_assert_false (at_clip_text_model_encode (model, tokens->ids, 3, got, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  at_clip_text_file_clear (&file);
}

static void
test_weights (void)
{
  /* Two tokens of two values: means before 2.5, weights 1 and 2. */
  float z[] = { 1.0f, 2.0f, 3.0f, 4.0f };
  const float weights[] = { 1.0f, 2.0f };
  /* z * w = 1 2 6 8, mean 4.25; times 2.5 / 4.25. */
  const float expected[] = { 2.5f / 4.25f, 5.0f / 4.25f, 15.0f / 4.25f, 20.0f / 4.25f };

  at_clip_apply_weights (z, weights, 2, 2);
  at_test_assert_close ("weighted", z, expected, 4, 1e-6);

  /* On the encoder output: (photo:1.5) scales the photo token's vector against the
   * others, the mean of the window stays. */
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = at_test_seed () };
  g_autoptr (AtSafetensors) st = open_fixture (&fixture);
  g_autoptr (AtClipPromptTokens) plain = tokenize ("a photo of a cat", EOS);
  g_autoptr (AtClipPromptTokens) tokens = tokenize ("a (photo:1.5) of a cat", EOS);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtClipTextModel) model = at_clip_text_model_new (at_test_gpu (), st, &error);
  const gsize n = 77 * 128;
  g_autofree float *out = g_new (float, n), *weighted = g_new (float, n);
  double mean_before = 0.0, mean_after = 0.0;

  g_assert_no_error (error);
  g_assert_cmpmem (plain->ids, 77 * sizeof (gint32), tokens->ids, 77 * sizeof (gint32));
  g_assert_cmpfloat (tokens->weights[2], ==, 1.5f);
  g_assert_true (at_clip_text_model_encode (model, tokens->ids, 1, out, &error));
  memcpy (weighted, out, n * sizeof (float));
  at_clip_apply_weights (weighted, tokens->weights, 77, 128);
  for (gsize i = 0; i < n; i++)
    mean_before += out[i], mean_after += weighted[i];
  g_assert_cmpfloat (fabs (mean_after - mean_before), <=, 1e-4 * fabs (mean_before) + 1e-6);
  {
    const double ratio = weighted[0] / out[0];

    for (gsize t = 0; t < 77; t++)
      for (gsize i = 0; i < 128; i += 37)
        g_assert_cmpfloat_with_epsilon (weighted[t * 128 + i],
                                        out[t * 128 + i] * tokens->weights[t] * ratio,
                                        1e-5 * (1.0 + fabs (out[t * 128 + i])));
  }
}

/* A prompt of two windows: each encoded and weighted on its own, then joined. */
static void
test_encode_prompt (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = at_test_seed (), .n_embd = 64,
                          .n_layer = 1 };
  g_autoptr (AtSafetensors) st = open_fixture (&fixture);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtClipTextModel) model = at_clip_text_model_new (at_test_gpu (), st, &error);
  g_autoptr (AtClipPromptTokens) tokens = at_clip_tokenizer_encode_prompt (
      tokenizer, "a photo of a (cat:1.3) BREAK [a dog] on a sofa", EOS, &error);
  const gsize window = 77 * 64;

  g_assert_no_error (error);
  g_assert_cmpuint (tokens->n_chunks, ==, 2);
  g_autofree float *got = g_new (float, 2 * window), *want = g_new (float, 2 * window);

  g_assert_true (at_clip_text_model_encode_prompt (model, tokens, 1, got, &error));
  g_assert_no_error (error);
  for (guint c = 0; c < 2; c++)
    {
      g_assert_true (at_clip_text_model_encode (model, tokens->ids + c * 77, 1, want + c * window,
                                                &error));
      at_clip_apply_weights (want + c * window, tokens->weights + c * 77, 77, 64);
    }
  g_assert_cmpmem (got, 2 * window * sizeof (float), want, 2 * window * sizeof (float));
  /* The weights made a difference in both windows. */
  g_assert_cmpfloat (tokens->weights[5], >, 1.0f);
  g_assert_cmpfloat (tokens->weights[77 + 1], <, 1.0f);
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "data", "clip",
                                                 "bpe_simple_vocab_16e6.txt.gz", NULL);
  g_autoptr (GError) error = NULL;
  tokenizer = at_clip_tokenizer_new_from_file (path, &error);
  g_assert_no_error (error);

  g_test_add_func ("/image/sd-checkpoint/detect-sd1", test_detect_sd1);
  g_test_add_func ("/image/sd-checkpoint/detect-sd2", test_detect_sd2);
  g_test_add_func ("/image/sd-checkpoint/unsupported", test_detect_unsupported);
  g_test_add_func ("/image/clip-text-model/malformed", test_malformed);
  static const EncodeCase encode_cases[] = {
    { AT_SD_FIXTURE_SD1, NULL },
    { AT_SD_FIXTURE_SD1, "BF16" },
    { AT_SD_FIXTURE_SD2, NULL },
    { AT_SD_FIXTURE_SD2, "F32" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (encode_cases); i++)
    {
      const EncodeCase *c = &encode_cases[i];
      g_autofree char *test_path = g_strdup_printf (
          "/image/clip-text-model/encode-%s-%s", c->layout == AT_SD_FIXTURE_SD2 ? "sd2" : "sd1",
          c->matrix_dtype ? c->matrix_dtype : "F16");

      g_test_add_data_func (test_path, c, test_encode);
    }
  g_test_add_func ("/image/clip-text-model/weights", test_weights);
  g_test_add_func ("/image/clip-text-model/encode-prompt", test_encode_prompt);
  int status = at_test_run ();
  at_clip_tokenizer_free (tokenizer);
  return status;
}
