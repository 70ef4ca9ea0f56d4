/* GGUF reader and writer: real vocabularies, a writer-reader round trip of every value
 * type and several tensor types, and malformed files that must end in a GError. */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "formats/at-gguf-writer.h"

/* Real vocab-only files (tests/data/vocab/README.md) and what they hold. */
typedef struct {
  const char *file;
  const char *model;
  const char *pre; /* NULL when absent */
  guint64 n_tokens;
  guint64 n_merges; /* 0: no merges (SentencePiece) */
  guint32 eos;
  gboolean add_bos;
  const char *token0;
} VocabCase;

static const VocabCase vocab_cases[] = {
  { "ggml-vocab-llama-spm.gguf", "llama", NULL, 32000, 0, 2, TRUE, "<unk>" },
  { "ggml-vocab-llama-bpe.gguf", "gpt2", "llama-bpe", 128256, 280147, 128001, TRUE, "!" },
  { "ggml-vocab-qwen2.gguf", "gpt2", "qwen2", 151669, 151387, 151645, FALSE, "!" },
};

static void
test_vocab (gconstpointer data)
{
  const VocabCase *c = data;
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "vocab", c->file, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = at_gguf_open (path, &error);
  const AtGgufArray *tokens, *types;
  guint32 eos, n_layers;
  gboolean add_bos;
  float eps;

  g_assert_no_error (error);
  g_assert_cmpuint (at_gguf_get_version (gguf), ==, 3);
  g_assert_cmpuint (at_gguf_get_n_tensors (gguf), ==, 0);
  g_assert_cmpuint (at_gguf_get_alignment (gguf), ==, AT_GGUF_DEFAULT_ALIGNMENT);
  g_assert_cmpstr (at_gguf_get_string (gguf, "general.architecture", &error), ==, "llama");
  g_assert_cmpstr (at_gguf_get_string (gguf, "tokenizer.ggml.model", &error), ==, c->model);
  g_assert_no_error (error);
  if (c->pre)
    g_assert_cmpstr (at_gguf_get_string (gguf, "tokenizer.ggml.pre", &error), ==, c->pre);
  else
    g_assert_null (at_gguf_find (gguf, "tokenizer.ggml.pre"));

  tokens = at_gguf_get_array (gguf, "tokenizer.ggml.tokens", AT_GGUF_TYPE_STRING, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tokens->n, ==, c->n_tokens);
  g_assert_cmpstr (tokens->strings[0], ==, c->token0);
  g_assert_cmpuint (tokens->lengths[0], ==, strlen (c->token0));
  types = at_gguf_get_array (gguf, "tokenizer.ggml.token_type", AT_GGUF_TYPE_INT32, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (types->n, ==, c->n_tokens);
  if (c->n_merges)
    {
      const AtGgufArray *merges = at_gguf_get_array (gguf, "tokenizer.ggml.merges",
                                                     AT_GGUF_TYPE_STRING, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (merges->n, ==, c->n_merges);
      g_assert_cmpstr (merges->strings[0], ==, "Ġ Ġ");
      g_assert_cmpint (at_gguf_array_get_i32 (types, 0), ==, 1); /* normal */
    }
  else
    {
      const AtGgufArray *scores = at_gguf_get_array (gguf, "tokenizer.ggml.scores",
                                                     AT_GGUF_TYPE_FLOAT32, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (scores->n, ==, c->n_tokens);
      g_assert_cmpfloat (at_gguf_array_get_f32 (scores, 0), ==, 0.0f);
      /* SentencePiece scores fall with the token id once past the specials. */
      g_assert_cmpfloat (at_gguf_array_get_f32 (scores, 1000), >, at_gguf_array_get_f32 (scores, 20000));
      g_assert_cmpint (at_gguf_array_get_i32 (types, 0), ==, 2); /* unknown */
      g_assert_cmpint (at_gguf_array_get_i32 (types, 1), ==, 3); /* control */
      g_assert_cmpstr (tokens->strings[1], ==, "<s>");
    }

  g_assert_true (at_gguf_get_u32 (gguf, "tokenizer.ggml.eos_token_id", &eos, &error));
  g_assert_cmpuint (eos, ==, c->eos);
  g_assert_true (at_gguf_get_bool (gguf, "tokenizer.ggml.add_bos_token", &add_bos, &error));
  g_assert_cmpint (add_bos, ==, c->add_bos);
  g_assert_true (at_gguf_get_u32 (gguf, "llama.block_count", &n_layers, &error));
  g_assert_cmpuint (n_layers, ==, 32);
  g_assert_true (at_gguf_get_f32 (gguf, "llama.attention.layer_norm_rms_epsilon", &eps, &error));
  g_assert_cmpfloat_with_epsilon (eps, 1e-5f, 1e-9f);
  g_assert_no_error (error);

  /* Type mismatches and missing keys name the key and both types. */
  g_assert_false (at_gguf_get_u32 (gguf, "tokenizer.ggml.model", &eos, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_nonnull (strstr (error->message, "key 'tokenizer.ggml.model' is string, expected uint32"));
  g_assert_true (g_str_has_prefix (error->message, path));
  g_clear_error (&error);
  g_assert_null (at_gguf_get_array (gguf, "tokenizer.ggml.tokens", AT_GGUF_TYPE_INT32, &error));
  g_assert_nonnull (strstr (error->message, "is an array of string, expected an array of int32"));
  g_clear_error (&error);
  g_assert_null (at_gguf_get_string (gguf, "no.such.key", &error));
  g_assert_nonnull (strstr (error->message, "key 'no.such.key' is missing"));
  g_clear_error (&error);
}

/* A file holding every value type, edge values and several tensor types; returns the
 * tensors' data in *data (one GBytes per tensor, in order). */
static const char *const strings[] = { "", "a", "Ġ Ġ", "名前", "<0x0A>" };
static const gint16 i16s[] = { G_MININT16, -1, 0, G_MAXINT16 };
static const guint64 u64s[] = { 0, G_MAXUINT64 };
static const double f64s[] = { -1.5, 1e300 };
static const float f32s[] = { 0.25f, -3.0f, 1e-30f };
static const guint8 bools[] = { 1, 0, 1 };

typedef struct {
  const char *name;
  AtType type;
  guint n_dims;
  gint64 ne[4];
} TensorCase;

static const TensorCase tensor_cases[] = {
  { "token_embd.weight", AT_TYPE_Q4_K, 2, { 256, 3 } },
  { "blk.0.attn_q.weight", AT_TYPE_Q8_0, 2, { 64, 5 } },
  { "blk.0.attn_norm.weight", AT_TYPE_F32, 1, { 7 } },
  { "blk.0.ffn_up.weight", AT_TYPE_F16, 3, { 3, 5, 2 } },
  { "output.weight", AT_TYPE_Q6_K, 2, { 512, 2 } },
  { "positions", AT_TYPE_I32, 4, { 2, 3, 1, 2 } },
  { "blk.0.bf16", AT_TYPE_BF16, 2, { 9, 1 } },
};

static AtGgufWriter *
full_writer (guint32 alignment, GPtrArray *data)
{
  AtGgufWriter *writer = at_gguf_writer_new ();
  static const char with_nul[] = { 'x', '\0', 'y' };
  GRand *rand = g_rand_new_with_seed (7);

  if (alignment != AT_GGUF_DEFAULT_ALIGNMENT)
    at_gguf_writer_set_alignment (writer, alignment);
  at_gguf_writer_add_string (writer, "general.architecture", "llama");
  at_gguf_writer_add_value (writer, "u8", &(AtGgufValue){ .type = AT_GGUF_TYPE_UINT8, .u64 = 255 });
  at_gguf_writer_add_value (writer, "i8", &(AtGgufValue){ .type = AT_GGUF_TYPE_INT8, .i64 = -128 });
  at_gguf_writer_add_value (writer, "u16", &(AtGgufValue){ .type = AT_GGUF_TYPE_UINT16, .u64 = 65535 });
  at_gguf_writer_add_value (writer, "i16", &(AtGgufValue){ .type = AT_GGUF_TYPE_INT16, .i64 = -32768 });
  at_gguf_writer_add_u32 (writer, "u32", G_MAXUINT32);
  at_gguf_writer_add_i32 (writer, "i32", G_MININT32);
  at_gguf_writer_add_f32 (writer, "f32", 0.1f);
  at_gguf_writer_add_bool (writer, "bool", TRUE);
  at_gguf_writer_add_value (writer, "u64", &(AtGgufValue){ .type = AT_GGUF_TYPE_UINT64, .u64 = G_MAXUINT64 });
  at_gguf_writer_add_value (writer, "i64", &(AtGgufValue){ .type = AT_GGUF_TYPE_INT64, .i64 = G_MININT64 });
  at_gguf_writer_add_value (writer, "f64", &(AtGgufValue){ .type = AT_GGUF_TYPE_FLOAT64, .f64 = 1e-300 });
  at_gguf_writer_add_value (writer, "nul",
                            &(AtGgufValue){ .type = AT_GGUF_TYPE_STRING, .string = { with_nul, 3 } });
  at_gguf_writer_add_string (writer, "empty", "");
  at_gguf_writer_add_string_array (writer, "strings", strings, G_N_ELEMENTS (strings));
  at_gguf_writer_add_value (writer, "strings_nul",
                            &(AtGgufValue){ .type = AT_GGUF_TYPE_ARRAY,
                                            .array = { .type = AT_GGUF_TYPE_STRING, .n = 2,
                                                       .strings = (const char *[]){ with_nul, "z" },
                                                       .lengths = (gsize[]){ 3, 1 } } });
  at_gguf_writer_add_array (writer, "i16s", AT_GGUF_TYPE_INT16, i16s, G_N_ELEMENTS (i16s));
  at_gguf_writer_add_array (writer, "u64s", AT_GGUF_TYPE_UINT64, u64s, G_N_ELEMENTS (u64s));
  at_gguf_writer_add_array (writer, "f64s", AT_GGUF_TYPE_FLOAT64, f64s, G_N_ELEMENTS (f64s));
  at_gguf_writer_add_array (writer, "f32s", AT_GGUF_TYPE_FLOAT32, f32s, G_N_ELEMENTS (f32s));
  at_gguf_writer_add_array (writer, "bools", AT_GGUF_TYPE_BOOL, bools, G_N_ELEMENTS (bools));
  at_gguf_writer_add_array (writer, "none", AT_GGUF_TYPE_UINT8, NULL, 0);

  for (guint i = 0; i < G_N_ELEMENTS (tensor_cases); i++)
    {
      const TensorCase *c = &tensor_cases[i];
      gsize rows = 1, size;
      guint8 *bytes;
      GBytes *b;

      for (guint d = 1; d < c->n_dims; d++)
        rows *= c->ne[d];
      size = rows * at_type_row_size (c->type, c->ne[0]);
      bytes = g_malloc (size);
      for (gsize j = 0; j < size; j++)
        bytes[j] = g_rand_int (rand);
      b = g_bytes_new_take (bytes, size);
      at_gguf_writer_add_tensor (writer, c->name, c->type, c->n_dims, c->ne, b);
      if (data)
        g_ptr_array_add (data, b);
      else
        g_bytes_unref (b);
    }
  g_rand_free (rand);
  return writer;
}

static void
check_full (AtGguf *gguf, guint32 alignment, GPtrArray *data)
{
  g_autoptr (GError) error = NULL;
  const AtGgufValue *v;
  const AtGgufArray *a;
  guint32 u32;
  gint32 i32;
  guint64 u64;
  float f32;
  gboolean b;

  g_assert_cmpuint (at_gguf_get_alignment (gguf), ==, alignment);
  g_assert_cmpuint (at_gguf_get_data_offset (gguf) % alignment, ==, 0);

  g_assert_cmpint ((v = at_gguf_find (gguf, "u8"))->type, ==, AT_GGUF_TYPE_UINT8);
  g_assert_cmpuint (v->u64, ==, 255);
  g_assert_cmpint ((v = at_gguf_find (gguf, "i8"))->type, ==, AT_GGUF_TYPE_INT8);
  g_assert_cmpint (v->i64, ==, -128);
  g_assert_cmpint ((v = at_gguf_find (gguf, "u16"))->type, ==, AT_GGUF_TYPE_UINT16);
  g_assert_cmpuint (v->u64, ==, 65535);
  g_assert_cmpint ((v = at_gguf_find (gguf, "i16"))->type, ==, AT_GGUF_TYPE_INT16);
  g_assert_cmpint (v->i64, ==, -32768);
  g_assert_cmpint ((v = at_gguf_find (gguf, "u64"))->type, ==, AT_GGUF_TYPE_UINT64);
  g_assert_cmpuint (v->u64, ==, G_MAXUINT64);
  g_assert_cmpint ((v = at_gguf_find (gguf, "i64"))->type, ==, AT_GGUF_TYPE_INT64);
  g_assert_cmpint (v->i64, ==, G_MININT64);
  g_assert_cmpint ((v = at_gguf_find (gguf, "f64"))->type, ==, AT_GGUF_TYPE_FLOAT64);
  g_assert_cmpfloat (v->f64, ==, 1e-300);

  /* Integer getters take any integer type whose value fits. */
  g_assert_true (at_gguf_get_u32 (gguf, "u32", &u32, &error));
  g_assert_cmpuint (u32, ==, G_MAXUINT32);
  g_assert_true (at_gguf_get_u32 (gguf, "u8", &u32, &error));
  g_assert_cmpuint (u32, ==, 255);
  g_assert_true (at_gguf_get_i32 (gguf, "i32", &i32, &error));
  g_assert_cmpint (i32, ==, G_MININT32);
  g_assert_true (at_gguf_get_i32 (gguf, "i16", &i32, &error));
  g_assert_cmpint (i32, ==, -32768);
  g_assert_true (at_gguf_get_u64 (gguf, "u64", &u64, &error));
  g_assert_cmpuint (u64, ==, G_MAXUINT64);
  g_assert_true (at_gguf_get_f32 (gguf, "f32", &f32, &error));
  g_assert_cmpfloat (f32, ==, 0.1f);
  g_assert_true (at_gguf_get_f32 (gguf, "f64", &f32, &error));
  g_assert_true (at_gguf_get_bool (gguf, "bool", &b, &error));
  g_assert_true (b);
  g_assert_cmpstr (at_gguf_get_string (gguf, "empty", &error), ==, "");
  g_assert_no_error (error);

  g_assert_false (at_gguf_get_u32 (gguf, "i8", &u32, &error));
  g_assert_nonnull (strstr (error->message, "key 'i8' is -128, which does not fit uint32"));
  g_clear_error (&error);
  g_assert_false (at_gguf_get_i32 (gguf, "u32", &i32, &error));
  g_assert_nonnull (strstr (error->message, "does not fit int32"));
  g_clear_error (&error);
  g_assert_false (at_gguf_get_u32 (gguf, "u64", &u32, &error));
  g_clear_error (&error);
  g_assert_false (at_gguf_get_f32 (gguf, "u32", &f32, &error));
  g_assert_nonnull (strstr (error->message, "key 'u32' is uint32, expected float32"));
  g_clear_error (&error);
  g_assert_false (at_gguf_get_bool (gguf, "u8", &b, &error));
  g_clear_error (&error);

  v = at_gguf_find (gguf, "nul");
  g_assert_cmpuint (v->string.len, ==, 3);
  g_assert_cmpmem (v->string.str, 4, "x\0y", 4);

  a = at_gguf_get_array (gguf, "strings", AT_GGUF_TYPE_STRING, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (a->n, ==, G_N_ELEMENTS (strings));
  for (guint i = 0; i < a->n; i++)
    {
      AtGgufValue e = at_gguf_array_get (a, i);
      g_assert_cmpstr (a->strings[i], ==, strings[i]);
      g_assert_cmpuint (a->lengths[i], ==, strlen (strings[i]));
      g_assert_cmpstr (e.string.str, ==, strings[i]);
    }
  a = at_gguf_get_array (gguf, "strings_nul", AT_GGUF_TYPE_STRING, &error);
  g_assert_cmpmem (a->strings[0], a->lengths[0], "x\0y", 3);
  g_assert_cmpstr (a->strings[1], ==, "z");

  a = at_gguf_get_array (gguf, "i16s", AT_GGUF_TYPE_INT16, &error);
  for (guint i = 0; i < G_N_ELEMENTS (i16s); i++)
    g_assert_cmpint (at_gguf_array_get (a, i).i64, ==, i16s[i]);
  a = at_gguf_get_array (gguf, "u64s", AT_GGUF_TYPE_UINT64, &error);
  for (guint i = 0; i < G_N_ELEMENTS (u64s); i++)
    g_assert_cmpuint (at_gguf_array_get (a, i).u64, ==, u64s[i]);
  a = at_gguf_get_array (gguf, "f64s", AT_GGUF_TYPE_FLOAT64, &error);
  for (guint i = 0; i < G_N_ELEMENTS (f64s); i++)
    g_assert_cmpfloat (at_gguf_array_get (a, i).f64, ==, f64s[i]);
  a = at_gguf_get_array (gguf, "f32s", AT_GGUF_TYPE_FLOAT32, &error);
  for (guint i = 0; i < G_N_ELEMENTS (f32s); i++)
    g_assert_cmpfloat (at_gguf_array_get_f32 (a, i), ==, f32s[i]);
  a = at_gguf_get_array (gguf, "bools", AT_GGUF_TYPE_BOOL, &error);
  for (guint i = 0; i < G_N_ELEMENTS (bools); i++)
    g_assert_cmpuint (at_gguf_array_get (a, i).u64, ==, bools[i]);
  a = at_gguf_get_array (gguf, "none", AT_GGUF_TYPE_UINT8, &error);
  g_assert_cmpuint (a->n, ==, 0);
  g_assert_no_error (error);

  g_assert_cmpuint (at_gguf_get_n_tensors (gguf), ==, G_N_ELEMENTS (tensor_cases));
  for (guint i = 0; i < G_N_ELEMENTS (tensor_cases); i++)
    {
      const TensorCase *c = &tensor_cases[i];
      const AtGgufTensor *t = at_gguf_find_tensor (gguf, c->name);
      gsize size;
      const void *bytes = g_bytes_get_data (data->pdata[i], &size);

      g_assert_true (t == at_gguf_get_tensor (gguf, i));
      g_assert_cmpstr (t->name, ==, c->name);
      g_assert_cmpint (t->type, ==, c->type);
      g_assert_cmpuint (t->n_dims, ==, c->n_dims);
      for (guint d = 0; d < 4; d++)
        g_assert_cmpint (t->ne[d], ==, d < c->n_dims ? c->ne[d] : 1);
      g_assert_cmpuint (t->offset % alignment, ==, 0);
      g_assert_cmpuint (t->offset, >=, at_gguf_get_data_offset (gguf));
      g_assert_cmpmem (t->data, t->size, bytes, size);
    }
  g_assert_null (at_gguf_find_tensor (gguf, "missing"));
}

static void
test_round_trip (void)
{
  static const guint32 alignments[] = { 32, 64, 8 };

  for (guint k = 0; k < G_N_ELEMENTS (alignments); k++)
    {
      g_autoptr (GPtrArray) data = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_autoptr (AtGgufWriter) writer = full_writer (alignments[k], data);
      g_autoptr (GBytes) bytes = at_gguf_writer_to_bytes (writer);
      g_autoptr (GError) error = NULL;
      g_autoptr (AtGguf) gguf = at_gguf_new_from_bytes (bytes, "round-trip.gguf", &error);

      g_assert_no_error (error);
      g_assert_cmpuint (at_gguf_get_version (gguf), ==, 3);
      check_full (gguf, alignments[k], data);
    }
}

/* Version 2 files have the same layout as version 3. */
static void
test_version_2 (void)
{
  g_autoptr (GPtrArray) data = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (AtGgufWriter) writer = full_writer (32, data);
  g_autoptr (GBytes) bytes = at_gguf_writer_to_bytes (writer);
  gsize size = g_bytes_get_size (bytes);
  guint8 *copy = g_memdup2 (g_bytes_get_data (bytes, NULL), size);
  g_autoptr (GBytes) v2 = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = NULL;

  copy[4] = 2;
  v2 = g_bytes_new_take (copy, size);
  gguf = at_gguf_new_from_bytes (v2, "v2.gguf", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (at_gguf_get_version (gguf), ==, 2);
  check_full (gguf, 32, data);
}

/* Through a real file: written atomically (nothing left beside it), read by mmap. */
static void
test_write_file (void)
{
  g_autoptr (GPtrArray) data = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (AtGgufWriter) writer = full_writer (64, data);
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("at-gguf-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "model.gguf", NULL);
  g_autofree char *missing = g_build_filename (dir, "no", "model.gguf", NULL);
  g_autoptr (AtGguf) gguf = NULL;
  g_autoptr (GDir) listing = NULL;

  g_assert_no_error (error);
  g_assert_true (at_gguf_writer_write (writer, path, &error));
  g_assert_no_error (error);
  /* Over an existing file too. */
  g_assert_true (at_gguf_writer_write (writer, path, &error));
  g_assert_false (at_gguf_writer_write (writer, missing, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_clear_error (&error);

  listing = g_dir_open (dir, 0, &error);
  g_assert_cmpstr (g_dir_read_name (listing), ==, "model.gguf");
  g_assert_null (g_dir_read_name (listing));

  gguf = at_gguf_open (path, &error);
  g_assert_no_error (error);
  check_full (gguf, 64, data);
  g_assert_true (g_str_has_prefix (at_gguf_get_name (gguf), dir));

  g_clear_pointer (&gguf, at_gguf_free);
  g_assert_null (at_gguf_open (missing, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_unlink (path);
  g_rmdir (dir);
}

static void
assert_invalid (const guint8 *data, gsize size, const char *fragment)
{
  /* An exact-size copy, so that a sanitizer build sees any read past the end. */
  g_autoptr (GBytes) bytes = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = at_gguf_new_from_bytes (bytes, "model.gguf", &error);

  g_assert_null (gguf);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_true (g_str_has_prefix (error->message, "model.gguf: "));
  if (fragment && !strstr (error->message, fragment))
    g_error ("'%s' does not say '%s'", error->message, fragment);
}

/* Every proper prefix of a valid file with tensors is invalid: the last tensor
 * ends at the end of the file. */
static void
test_truncated (void)
{
  g_autoptr (AtGgufWriter) writer = full_writer (32, NULL);
  g_autoptr (GBytes) bytes = at_gguf_writer_to_bytes (writer);
  gsize size;
  const guint8 *data = g_bytes_get_data (bytes, &size);

  for (gsize n = 0; n < size; n++)
    assert_invalid (data, n, NULL);
  assert_invalid (data, 20, "file ends inside the header (offset 16)");
  assert_invalid (data, 30, "claims 22 metadata entries, more than the file can hold");
  assert_invalid (data, 324, "file ends inside key 'empty' (offset 319)");
  assert_invalid (data, 900, "file ends inside tensor info 'blk.0.ffn_up.weight' (offset 896)");
  assert_invalid (data, size - 1, "tensor 'blk.0.bf16' ends past the end of the file");
}

/* Hand-built files: a header, then pieces added by each case. */
static GByteArray *
header (guint32 version, guint64 n_tensors, guint64 n_kv)
{
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, (const guint8 *) "GGUF", 4);
  g_byte_array_append (b, (const guint8 *) &version, 4);
  g_byte_array_append (b, (const guint8 *) &n_tensors, 8);
  g_byte_array_append (b, (const guint8 *) &n_kv, 8);
  return b;
}

static void
put_u32 (GByteArray *b, guint32 v)
{
  g_byte_array_append (b, (const guint8 *) &v, 4);
}

static void
put_u64 (GByteArray *b, guint64 v)
{
  g_byte_array_append (b, (const guint8 *) &v, 8);
}

static void
put_str (GByteArray *b, const char *s)
{
  put_u64 (b, strlen (s));
  g_byte_array_append (b, (const guint8 *) s, strlen (s));
}

static void
put_kv_u32 (GByteArray *b, const char *key, guint32 v)
{
  put_str (b, key);
  put_u32 (b, AT_GGUF_TYPE_UINT32);
  put_u32 (b, v);
}

/* A tensor info of n_dims from ne, then enough zero bytes for its data to fit. */
static void
put_tensor (GByteArray *b, const char *name, guint32 n_dims, const guint64 *ne, guint32 type,
            guint64 offset)
{
  put_str (b, name);
  put_u32 (b, n_dims);
  for (guint d = 0; d < n_dims; d++)
    put_u64 (b, ne[d]);
  put_u32 (b, type);
  put_u64 (b, offset);
}

static void
pad (GByteArray *b, gsize n)
{
  static const guint8 zeros[256];

  g_byte_array_append (b, zeros, n);
}

typedef struct {
  const char *name;
  const char *fragment;
  GByteArray *(*build) (void);
} MalformedCase;

static GByteArray *
bad_magic (void)
{
  GByteArray *b = header (3, 0, 0);
  b->data[3] = 'X';
  return b;
}

static GByteArray *
big_endian (void)
{
  return header (GUINT32_SWAP_LE_BE (3), 0, 0);
}

static GByteArray *
version_1 (void)
{
  return header (1, 0, 0);
}

static GByteArray *
version_4 (void)
{
  return header (4, 0, 0);
}

static GByteArray *
huge_kv_count (void)
{
  return header (3, 0, G_MAXUINT64);
}

static GByteArray *
huge_tensor_count (void)
{
  GByteArray *b = header (3, G_MAXUINT64 / 2, 0);
  pad (b, 100);
  return b;
}

static GByteArray *
huge_string (void)
{
  GByteArray *b = header (3, 0, 1);
  put_u64 (b, G_MAXUINT64 - 4);
  pad (b, 16);
  return b;
}

static GByteArray *
unknown_value_type (void)
{
  GByteArray *b = header (3, 0, 1);
  put_str (b, "k");
  put_u32 (b, 13);
  put_u32 (b, 0);
  return b;
}

static GByteArray *
nested_array (void)
{
  GByteArray *b = header (3, 0, 1);
  put_str (b, "k");
  put_u32 (b, AT_GGUF_TYPE_ARRAY);
  put_u32 (b, AT_GGUF_TYPE_ARRAY);
  put_u64 (b, 1);
  put_u32 (b, AT_GGUF_TYPE_UINT8);
  put_u64 (b, 1);
  pad (b, 1);
  return b;
}

static GByteArray *
huge_array (void)
{
  GByteArray *b = header (3, 0, 1);
  put_str (b, "k");
  put_u32 (b, AT_GGUF_TYPE_ARRAY);
  put_u32 (b, AT_GGUF_TYPE_UINT64);
  put_u64 (b, G_MAXUINT64 / 4); /* times 8 bytes overflows 64 bits */
  pad (b, 64);
  return b;
}

static GByteArray *
huge_string_array (void)
{
  GByteArray *b = header (3, 0, 1);
  put_str (b, "k");
  put_u32 (b, AT_GGUF_TYPE_ARRAY);
  put_u32 (b, AT_GGUF_TYPE_STRING);
  put_u64 (b, 1 << 20);
  pad (b, 64);
  return b;
}

static GByteArray *
bad_bool (void)
{
  GByteArray *b = header (3, 0, 1);
  put_str (b, "k");
  put_u32 (b, AT_GGUF_TYPE_BOOL);
  g_byte_array_append (b, (const guint8 *) "\2", 1);
  return b;
}

static GByteArray *
bad_key (void)
{
  GByteArray *b = header (3, 0, 1);
  put_u64 (b, 2);
  g_byte_array_append (b, (const guint8 *) "\xff\xfe", 2);
  put_u32 (b, AT_GGUF_TYPE_UINT8);
  pad (b, 1);
  return b;
}

static GByteArray *
duplicate_key (void)
{
  GByteArray *b = header (3, 0, 2);
  put_kv_u32 (b, "a", 1);
  put_kv_u32 (b, "a", 2);
  return b;
}

static GByteArray *
bad_alignment (void)
{
  GByteArray *b = header (3, 0, 1);
  put_kv_u32 (b, "general.alignment", 48);
  return b;
}

static GByteArray *
string_alignment (void)
{
  GByteArray *b = header (3, 0, 1);
  put_str (b, "general.alignment");
  put_u32 (b, AT_GGUF_TYPE_STRING);
  put_str (b, "32");
  return b;
}

/* One tensor info after a header, then padding and data of data_size bytes. */
static GByteArray *
one_tensor (guint32 n_dims, const guint64 *ne, guint32 type, guint64 offset, gsize data_size)
{
  GByteArray *b = header (3, 1, 0);
  put_tensor (b, "blk.3.attn_q.weight", n_dims, ne, type, offset);
  pad (b, (32 - b->len % 32) % 32);
  pad (b, data_size);
  return b;
}

static GByteArray *
unknown_tensor_type (void)
{
  return one_tensor (1, (guint64[]){ 8 }, 99, 0, 64);
}

static GByteArray *
zero_dims (void)
{
  return one_tensor (0, NULL, AT_TYPE_F32, 0, 64);
}

static GByteArray *
five_dims (void)
{
  return one_tensor (5, (guint64[]){ 1, 1, 1, 1, 1 }, AT_TYPE_F32, 0, 64);
}

static GByteArray *
empty_dim (void)
{
  return one_tensor (2, (guint64[]){ 4, 0 }, AT_TYPE_F32, 0, 64);
}

static GByteArray *
ne_overflow (void)
{
  return one_tensor (3, (guint64[]){ 1u << 31, 1u << 31, 1u << 31 }, AT_TYPE_F32, 0, 64);
}

static GByteArray *
size_overflow (void)
{
  /* 2^62 elements fit an int64, but not their 2^64 bytes. */
  return one_tensor (2, (guint64[]){ 1u << 31, G_GUINT64_CONSTANT (1) << 31 }, AT_TYPE_F32, 0, 64);
}

static GByteArray *
block_size (void)
{
  return one_tensor (2, (guint64[]){ 33, 2 }, AT_TYPE_Q4_0, 0, 256);
}

static GByteArray *
misaligned_offset (void)
{
  return one_tensor (1, (guint64[]){ 4 }, AT_TYPE_F32, 4, 64);
}

static GByteArray *
offset_past_end (void)
{
  return one_tensor (1, (guint64[]){ 4 }, AT_TYPE_F32, 1 << 20, 64);
}

static GByteArray *
huge_offset (void)
{
  return one_tensor (1, (guint64[]){ 4 }, AT_TYPE_F32, G_MAXUINT64 - 31, 64);
}

static GByteArray *
data_past_end (void)
{
  return one_tensor (2, (guint64[]){ 16, 2 }, AT_TYPE_F32, 0, 127);
}

static GByteArray *
duplicate_tensor (void)
{
  GByteArray *b = header (3, 2, 0);
  put_tensor (b, "w", 1, (guint64[]){ 8 }, AT_TYPE_F32, 0);
  put_tensor (b, "w", 1, (guint64[]){ 8 }, AT_TYPE_F32, 32);
  pad (b, 128);
  return b;
}

static GByteArray *
overlap (void)
{
  GByteArray *b = header (3, 2, 0);
  put_tensor (b, "a", 1, (guint64[]){ 16 }, AT_TYPE_F32, 0);
  put_tensor (b, "b", 1, (guint64[]){ 8 }, AT_TYPE_F32, 32);
  pad (b, 128);
  return b;
}

static const MalformedCase malformed_cases[] = {
  { "empty", "not a GGUF file", NULL },
  { "bad-magic", "not a GGUF file", bad_magic },
  { "big-endian", "big-endian GGUF files are not supported", big_endian },
  { "version-1", "GGUF version 1 is not supported", version_1 },
  { "version-4", "unsupported GGUF version 4", version_4 },
  { "huge-kv-count", "claims 18446744073709551615 metadata entries, more than the file can hold",
    huge_kv_count },
  { "huge-tensor-count", "tensors, more than the file can hold", huge_tensor_count },
  { "huge-string", "string of 18446744073709551611 bytes at offset 24 runs past the end",
    huge_string },
  { "unknown-value-type", "key 'k' has unknown value type 13", unknown_value_type },
  { "nested-array", "key 'k' is an array of arrays", nested_array },
  { "huge-array", "key 'k': array of 4611686018427387903 uint64 values runs past the end",
    huge_array },
  { "huge-string-array", "key 'k': array of 1048576 string values runs past the end",
    huge_string_array },
  { "bad-bool", "key 'k' is not a boolean (2)", bad_bool },
  { "bad-key", "metadata key at offset 24 is not a valid UTF-8 string", bad_key },
  { "duplicate-key", "duplicate key 'a'", duplicate_key },
  { "bad-alignment", "general.alignment 48 is not a power of two", bad_alignment },
  { "string-alignment", "key 'general.alignment' is string, expected uint32", string_alignment },
  { "unknown-tensor-type", "tensor 'blk.3.attn_q.weight' has unknown or unsupported type 99",
    unknown_tensor_type },
  { "zero-dims", "tensor 'blk.3.attn_q.weight' has 0 dimensions", zero_dims },
  { "five-dims", "has 5 dimensions (1 to 4 are supported)", five_dims },
  { "empty-dim", "tensor 'blk.3.attn_q.weight' has an empty dimension 1", empty_dim },
  { "ne-overflow", "tensor 'blk.3.attn_q.weight' has too many elements", ne_overflow },
  { "size-overflow", "tensor 'blk.3.attn_q.weight' is too large", size_overflow },
  { "block-size", "rows of 33 elements are not a multiple of the q4_0 block size 32", block_size },
  { "misaligned-offset", "offset 4 is not a multiple of the alignment 32", misaligned_offset },
  { "offset-past-end", "tensor 'blk.3.attn_q.weight' ends past the end of the file",
    offset_past_end },
  { "huge-offset", "tensor 'blk.3.attn_q.weight' ends past the end of the file", huge_offset },
  { "data-past-end", "tensor 'blk.3.attn_q.weight' ends past the end of the file", data_past_end },
  { "duplicate-tensor", "duplicate tensor 'w'", duplicate_tensor },
  { "overlap", "tensors 'a' and 'b' overlap", overlap },
};

static void
test_malformed (gconstpointer data)
{
  const MalformedCase *c = data;
  g_autoptr (GByteArray) b = c->build ? c->build () : g_byte_array_new ();

  assert_invalid (b->data, b->len, c->fragment);
}

/* Inputs that once crashed the reader under the fuzzer (tests/fuzz/README.md). */
static void
test_crashers (void)
{
  g_autofree char *dir_path = g_test_build_filename (G_TEST_DIST, "data", "gguf-crashers", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, &error);
  const char *name;
  guint n = 0;

  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)))
    {
      g_autofree char *path = g_build_filename (dir_path, name, NULL);
      g_autoptr (AtGguf) gguf = NULL;

      if (g_str_has_suffix (name, ".md"))
        continue;
      gguf = at_gguf_open (path, &error);
      g_assert_null (gguf);
      g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
      g_clear_error (&error);
      n++;
    }
  g_test_message ("%u crashers", n);
}

static void
test_value_to_string (void)
{
  g_autoptr (AtGgufWriter) writer = full_writer (32, NULL);
  g_autoptr (GBytes) bytes = at_gguf_writer_to_bytes (writer);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = at_gguf_new_from_bytes (bytes, "x.gguf", &error);
  static const struct {
    const char *key;
    guint max;
    const char *text;
  } cases[] = {
    { "i16s", 10, "[-32768, -1, 0, 32767]" },
    { "i16s", 2, "[-32768, -1, ... 4 int16 values]" },
    { "bools", 0, "[... 3 bool values]" },
    { "strings", 3, "[\"\", \"a\", \"Ġ Ġ\", ... 5 string values]" },
    { "nul", 0, "\"x\\x00y\"" },
    { "i64", 0, "-9223372036854775808" },
    { "bool", 0, "true" },
    { "f32s", 1, "[0.25, ... 3 float32 values]" },
  };

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = at_gguf_value_to_string (at_gguf_find (gguf, cases[i].key), cases[i].max);
      g_assert_cmpstr (text, ==, cases[i].text);
    }
  /* Listing in file order. */
  for (guint i = 0; i < at_gguf_get_n_kv (gguf); i++)
    {
      const char *key;
      const AtGgufValue *value = at_gguf_get_kv (gguf, i, &key);

      g_assert_true (value == at_gguf_find (gguf, key));
      if (i == 0)
        g_assert_cmpstr (key, ==, "general.architecture");
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (vocab_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/formats/gguf/vocab/%s", vocab_cases[i].file);
      g_test_add_data_func (path, &vocab_cases[i], test_vocab);
    }
  g_test_add_func ("/formats/gguf/round-trip", test_round_trip);
  g_test_add_func ("/formats/gguf/version-2", test_version_2);
  g_test_add_func ("/formats/gguf/write-file", test_write_file);
  g_test_add_func ("/formats/gguf/value-to-string", test_value_to_string);
  g_test_add_func ("/formats/gguf/truncated", test_truncated);
  for (guint i = 0; i < G_N_ELEMENTS (malformed_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/formats/gguf/malformed/%s", malformed_cases[i].name);
      g_test_add_data_func (path, &malformed_cases[i], test_malformed);
    }
  g_test_add_func ("/formats/gguf/crashers", test_crashers);
  return g_test_run ();
}
