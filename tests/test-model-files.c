/* test-model-files.c: the models folder's listing reads each file's family, weight type
 * and parameter count on its worker thread, and reports a broken file on its own entry. */
#include <glib/gstdio.h>

#include "atelier-model-files.h"
#include "fixtures/sd-fixture.h"
#include "fixtures/text-model-fixture.h"
#include "formats/at-gguf.h"
#include "formats/at-safetensors-writer.h"

/* The test's own models folder, inside the isolated XDG folders of the running test. */
static char *folder;

static void
make_folder (void)
{
  g_free (folder);
  folder = g_build_filename (g_get_user_data_dir (), "models", NULL);
  g_assert_cmpint (g_mkdir_with_parents (folder, 0755), ==, 0);
}

static void
write_bytes (const char *name, GBytes *bytes, gsize length)
{
  g_autofree char *path = g_build_filename (folder, name, NULL);
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (length, <=, g_bytes_get_size (bytes));
  g_assert_true (g_file_set_contents (path, g_bytes_get_data (bytes, NULL), length, &error));
  g_assert_no_error (error);
}

static GBytes *
text_fixture (const char *arch, AtType type, const char *vocab)
{
  g_autofree char *vocab_path = g_build_filename (AT_VOCAB_DIR, vocab, NULL);
  AtTextFixture fixture = { .arch = arch, .type = type, .seed = 3, .vocab_path = vocab_path };
  g_autoptr (GError) error = NULL;
  GBytes *bytes = at_text_fixture_build (&fixture, &error);

  g_assert_no_error (error);
  return bytes;
}

static void
write_sd_fixture (const char *name, AtSdFixtureLayout layout, const char *dtype)
{
  g_autofree char *path = g_build_filename (folder, name, NULL);
  AtSdFixture fixture = { .layout = layout, .seed = 5, .matrix_dtype = dtype };
  g_autoptr (GError) error = NULL;

  g_assert_true (at_sd_fixture_write (&fixture, path, &error));
  g_assert_no_error (error);
}

/* A TAESD decoder's first layers: a 3x3 convolution from 4 latent channels to 64, and
 * its bias. */
static void
write_taesd (const char *name)
{
  static const gint64 weight_ne[] = { 3, 3, 4, 64 }, bias_ne[] = { 64 };
  g_autofree char *path = g_build_filename (folder, name, NULL);
  g_autoptr (AtSafetensorsWriter) writer = at_safetensors_writer_new ();
  g_autoptr (GBytes) weight = g_bytes_new_take (g_malloc0 (3 * 3 * 4 * 64 * 2), 3 * 3 * 4 * 64 * 2);
  g_autoptr (GBytes) bias = g_bytes_new_take (g_malloc0 (64 * 4), 64 * 4);
  g_autoptr (GError) error = NULL;

  g_assert_true (at_safetensors_writer_add_tensor (writer, "1.weight", AT_TYPE_F16, 4,
                                                   weight_ne, weight, &error));
  g_assert_true (at_safetensors_writer_add_tensor (writer, "1.bias", AT_TYPE_F32, 1, bias_ne,
                                                   bias, &error));
  g_assert_true (at_safetensors_writer_write (writer, path, &error));
  g_assert_no_error (error);
}

static gint64
vocab_size (const char *vocab)
{
  g_autofree char *path = g_build_filename (AT_VOCAB_DIR, vocab, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = at_gguf_open (path, &error);
  const AtGgufArray *tokens;

  g_assert_no_error (error);
  tokens = at_gguf_get_array (gguf, "tokenizer.ggml.tokens", AT_GGUF_TYPE_STRING, &error);
  g_assert_no_error (error);
  return (gint64) tokens->n;
}

static void
listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static GPtrArray *
list_folder (void)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  GPtrArray *files;

  atelier_model_files_list_async (folder, NULL, listed, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  files = atelier_model_files_list_finish (result, &error);
  g_assert_no_error (error);
  return files;
}

static const AtelierModelFile *
find_file (GPtrArray *files, const char *name)
{
  for (guint i = 0; i < files->len; i++)
    {
      const AtelierModelFile *file = g_ptr_array_index (files, i);

      if (g_str_equal (file->name, name))
        return file;
    }
  g_assert_not_reached ();
}

static void
assert_usable (const AtelierModelFile *file, AtelierModelKind kind, const char *format,
               const char *family, const char *quantization)
{
  g_test_message ("%s: %s %s %s, %" G_GUINT64_FORMAT " parameters", file->name, file->format,
                  file->family, file->quantization, file->n_params);
  g_assert_null (file->error);
  g_assert_cmpint (file->kind, ==, kind);
  g_assert_cmpstr (file->format, ==, format);
  g_assert_cmpstr (file->family, ==, family);
  g_assert_cmpstr (file->quantization, ==, quantization);
  g_assert_cmpuint (file->n_params, >, 0);
}

static void
test_inspect (void)
{
  g_autoptr (GBytes) llama = text_fixture ("llama", AT_TYPE_Q4_K, "ggml-vocab-llama-spm.gguf");
  g_autoptr (GBytes) llama3 = text_fixture ("llama", AT_TYPE_Q8_0, "ggml-vocab-llama-bpe.gguf");
  g_autoptr (GBytes) qwen2 = text_fixture ("qwen2", AT_TYPE_F16, "ggml-vocab-qwen2.gguf");
  g_autoptr (GBytes) gemma = text_fixture ("gemma", AT_TYPE_F16, "ggml-vocab-llama-spm.gguf");
  g_autoptr (GBytes) garbage = g_bytes_new_static ("not a model at all", 18);
  g_autoptr (GPtrArray) files = NULL;
  const gsize truncated_size = g_bytes_get_size (llama3) / 2;
  const gint64 n_vocab = vocab_size ("ggml-vocab-llama-spm.gguf");
  const AtelierModelFile *file;
  /* The Q4_K fixture's shapes (text-model-fixture.h): 256 wide, 2 layers of 4 query heads
   * and 2 KV heads of 64, a feed-forward of 512, separate embedding and output. */
  const guint64 per_layer = 256 + 256 * 256 + 2 * 256 * 128 + 256 * 256 + 256 + 3 * 256 * 512;
  const guint64 llama_params = 2 * (guint64) n_vocab * 256 + 256 + 2 * per_layer;

  make_folder ();
  write_bytes ("llama.gguf", llama, g_bytes_get_size (llama));
  write_bytes ("llama3.gguf", llama3, g_bytes_get_size (llama3));
  write_bytes ("qwen2.gguf", qwen2, g_bytes_get_size (qwen2));
  write_bytes ("gemma.gguf", gemma, g_bytes_get_size (gemma));
  write_bytes ("truncated.gguf", llama3, truncated_size);
  write_bytes ("garbage.safetensors", garbage, g_bytes_get_size (garbage));
  write_bytes ("notes.txt", garbage, g_bytes_get_size (garbage));
  write_sd_fixture ("sd1.safetensors", AT_SD_FIXTURE_SD1, NULL);
  write_sd_fixture ("sd2.safetensors", AT_SD_FIXTURE_SD2, "BF16");
  write_sd_fixture ("sdxl.safetensors", AT_SD_FIXTURE_SDXL, "F32");
  write_taesd ("taesd_decoder.safetensors");

  files = list_folder ();
  g_assert_cmpuint (files->len, ==, 10);
  /* Sorted by name, the text file left out. */
  g_assert_cmpstr (((AtelierModelFile *) files->pdata[0])->name, ==, "garbage.safetensors");
  g_assert_cmpstr (((AtelierModelFile *) files->pdata[9])->name, ==, "truncated.gguf");

  /* Q4_K matrices with a Q6_K output head, as Q4_K_M files are: Q4_K holds the most. */
  file = find_file (files, "llama.gguf");
  assert_usable (file, ATELIER_MODEL_KIND_TEXT, "GGUF", "Llama", "Q4_K");
  g_assert_cmpuint (file->n_params, ==, llama_params);
  g_assert_cmpuint (file->size, ==, g_bytes_get_size (llama));
  assert_usable (find_file (files, "llama3.gguf"), ATELIER_MODEL_KIND_TEXT, "GGUF", "Llama 3",
                 "Q8_0");
  assert_usable (find_file (files, "qwen2.gguf"), ATELIER_MODEL_KIND_TEXT, "GGUF", "Qwen 2",
                 "F16");
  assert_usable (find_file (files, "sd1.safetensors"), ATELIER_MODEL_KIND_IMAGE, "safetensors",
                 "SD 1.x", "F16");
  assert_usable (find_file (files, "sd2.safetensors"), ATELIER_MODEL_KIND_IMAGE, "safetensors",
                 "SD 2.x", "BF16");
  file = find_file (files, "taesd_decoder.safetensors");
  assert_usable (file, ATELIER_MODEL_KIND_PREVIEW, "safetensors", "TAESD", "F16");
  g_assert_cmpuint (file->n_params, ==, 3 * 3 * 4 * 64 + 64);

  /* Readable but not runnable: what it is, and why not. */
  file = find_file (files, "gemma.gguf");
  g_assert_cmpint (file->kind, ==, ATELIER_MODEL_KIND_UNKNOWN);
  g_assert_cmpstr (file->family, ==, "gemma");
  g_assert_cmpstr (file->quantization, ==, "F16");
  g_assert_cmpstr (file->error, ==, "architecture 'gemma' is not supported (llama, qwen2, qwen3)");
  file = find_file (files, "sdxl.safetensors");
  g_assert_cmpint (file->kind, ==, ATELIER_MODEL_KIND_UNKNOWN);
  g_assert_null (file->family);
  g_assert_cmpstr (file->quantization, ==, "F32");
  g_assert_cmpstr (file->error, ==,
                   "SDXL checkpoints are not supported yet (only SD 1.x and SD 2.x)");

  /* Unreadable: listed with their size and the reader's reason, without the file name. */
  file = find_file (files, "truncated.gguf");
  g_test_message ("truncated.gguf: %s", file->error);
  g_assert_cmpuint (file->size, ==, truncated_size);
  g_assert_cmpint (file->kind, ==, ATELIER_MODEL_KIND_UNKNOWN);
  g_assert_null (file->family);
  g_assert_cmpuint (file->n_params, ==, 0);
  g_assert_nonnull (strstr (file->error, "past the end of the file"));
  g_assert_null (strstr (file->error, "truncated.gguf"));
  file = find_file (files, "garbage.safetensors");
  g_test_message ("garbage.safetensors: %s", file->error);
  g_assert_nonnull (file->error);
  g_assert_null (strstr (file->error, "garbage.safetensors"));
  g_assert_null (file->family);
}

/* A folder that cannot be created fails the whole listing with its reason. */
static void
test_unreadable_folder (void)
{
  g_autofree char *blocker = NULL;
  g_autofree char *inside = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) files = NULL;

  make_folder ();
  blocker = g_build_filename (folder, "blocker", NULL);
  inside = g_build_filename (blocker, "models", NULL);
  g_assert_true (g_file_set_contents (blocker, "x", 1, NULL));
  atelier_model_files_list_async (inside, NULL, listed, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  files = atelier_model_files_list_finish (result, &error);
  g_assert_null (files);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY);
  g_assert_nonnull (strstr (error->message, inside));
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add_func ("/app/model-files/inspect", test_inspect);
  g_test_add_func ("/app/model-files/unreadable-folder", test_unreadable_folder);
  status = g_test_run ();
  g_free (folder);
  return status;
}
