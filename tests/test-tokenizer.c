/* Tokenizers against real vocabularies (tests/data/vocab, see its README): Llama 2
 * (SentencePiece), Llama 3 and Qwen2 (byte-level BPE). Every expected tokenization
 * must match exactly; round trips, streaming, special tokens and long inputs too. */
#include "at-error.h"
#include "formats/at-gguf-writer.h"
#include "text/at-tokenizer.h"

#include <string.h>

/* A vocabulary read from its GGUF file, with the spec it was made from. */
typedef struct
{
  AtGguf *gguf;
  AtTokenizerSpec spec;
  AtTokenizer *tok;
} Vocab;

static const char *const vocab_names[] = { "llama-spm", "llama-bpe", "qwen2" };
static Vocab *vocabs[G_N_ELEMENTS (vocab_names)];

static void
vocab_free (Vocab *v)
{
  at_tokenizer_unref (v->tok);
  at_tokenizer_spec_clear (&v->spec);
  at_gguf_free (v->gguf);
  g_free (v);
}

static Vocab *
vocab_load (const char *name)
{
  g_autofree char *path = g_strdup_printf ("%s/ggml-vocab-%s.gguf", AT_VOCAB_DIR, name);
  g_autoptr (GError) error = NULL;
  Vocab *v = g_new0 (Vocab, 1);
  g_autoptr (AtTokenizer) from_gguf = NULL;

  v->gguf = at_gguf_open (path, &error);
  g_assert_no_error (error);
  g_assert_true (at_tokenizer_spec_init_from_gguf (&v->spec, v->gguf, &error));
  g_assert_no_error (error);
  v->tok = at_tokenizer_new (&v->spec, &error);
  g_assert_no_error (error);
  /* The one-call constructor reads the same vocabulary. */
  from_gguf = at_tokenizer_new_from_gguf (v->gguf, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (at_tokenizer_get_n_tokens (from_gguf), ==, v->spec.n_tokens);
  g_assert_cmpint (at_tokenizer_get_bos (from_gguf), ==, at_tokenizer_get_bos (v->tok));
  g_assert_cmpint (at_tokenizer_get_eos (from_gguf), ==, at_tokenizer_get_eos (v->tok));
  return v;
}

static Vocab *
vocab_get (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (vocab_names); i++)
    if (strcmp (name, vocab_names[i]) == 0)
      {
        if (vocabs[i] == NULL)
          vocabs[i] = vocab_load (name);
        return vocabs[i];
      }
  g_assert_not_reached ();
}

static char *
ids_to_string (const gint32 *ids, gsize n)
{
  GString *s = g_string_new (NULL);

  for (gsize i = 0; i < n; i++)
    g_string_append_printf (s, "%s%d", i > 0 ? " " : "", ids[i]);
  return g_string_free (s, FALSE);
}

static void
assert_round_trip (AtTokenizer *tok, const char *text)
{
  g_autoptr (GArray) ids = at_tokenizer_encode (tok, text, -1, AT_TOKENIZE_NONE);
  gsize length;
  g_autofree char *back = at_tokenizer_decode (tok, (gint32 *)ids->data, ids->len, FALSE, &length);

  if (length != strlen (text) || memcmp (back, text, length) != 0)
    {
      g_autofree char *s = ids_to_string ((gint32 *)ids->data, ids->len);
      g_test_message ("round trip of '%s' gave '%s' (ids %s)", text, back, s);
      g_test_fail ();
    }
}

/* The cases of NAME.inp with NAME.out, as llama.cpp's test-tokenizer-0 reads them. */
static void
test_expected (gconstpointer data)
{
  const char *name = data;
  AtTokenizer *tok = vocab_get (name)->tok;
  g_autofree char *inp_path = g_strdup_printf ("%s/ggml-vocab-%s.gguf.inp", AT_VOCAB_DIR, name);
  g_autofree char *out_path = g_strdup_printf ("%s/ggml-vocab-%s.gguf.out", AT_VOCAB_DIR, name);
  g_autofree char *inp = NULL, *out = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) cases = NULL, expected = NULL;
  guint n_cases, failed = 0;

  g_file_get_contents (inp_path, &inp, NULL, &error);
  g_assert_no_error (error);
  g_file_get_contents (out_path, &out, NULL, &error);
  g_assert_no_error (error);
  cases = g_strsplit (inp, "\n__ggml_vocab_test__\n", -1);
  expected = g_strsplit (out, "\n", -1);
  n_cases = g_strv_length (cases);
  g_assert_cmpuint (n_cases, >, 50);
  g_assert_cmpuint (g_strv_length (expected), >=, n_cases);

  for (guint i = 0; i < n_cases; i++)
    {
      g_autoptr (GArray) ids
          = at_tokenizer_encode (vocab_get (name)->tok, cases[i], -1, AT_TOKENIZE_NONE);
      g_autofree char *got = ids_to_string ((gint32 *)ids->data, ids->len);

      if (strcmp (got, expected[i]) != 0)
        {
          g_test_message ("%s case %u '%s':\n  expected %s\n  got      %s", name, i, cases[i],
                          expected[i], got);
          failed++;
        }
      assert_round_trip (tok, cases[i]);
    }
  g_test_message ("%s: %u of %u cases match", name, n_cases - failed, n_cases);
  g_assert_cmpuint (failed, ==, 0);
}

/* A random valid UTF-8 string drawn from scripts and characters that stress the
 * pre-tokenizers: CJK, emoji with joiners and variation selectors, combining marks,
 * unusual spaces, digits of other scripts, controls, noncharacters, private use. */
static char *
random_text (guint n_chars)
{
  static const gunichar ranges[][2] = {
    { 0x20, 0x7e },         { 0x20, 0x20 },     { 0x09, 0x0d },       { 0x01, 0x1f },
    { 0x80, 0xff },         { 0x300, 0x36f },   { 0x400, 0x4ff },     { 0x660, 0x669 },
    { 0x1780, 0x17ff },     { 0x2000, 0x200f }, { 0x2028, 0x202f },   { 0x3000, 0x3000 },
    { 0x3040, 0x30ff },     { 0x4e00, 0x9fff }, { 0xac00, 0xd7a3 },   { 0xe000, 0xe0ff },
    { 0xfe00, 0xfe0f },     { 0xfff0, 0xffff }, { 0x1d400, 0x1d7ff }, { 0x1f300, 0x1faff },
    { 0x10fff0, 0x10ffff }, { '\'', '\'' },     { '0', '9' },         { 'a', 'z' },
  };
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < n_chars; i++)
    {
      guint r = g_test_rand_int_range (0, G_N_ELEMENTS (ranges));
      gunichar c = (gunichar)g_test_rand_int_range (ranges[r][0], ranges[r][1] + 1);
      g_string_append_unichar (s, c);
    }
  return g_string_free (s, FALSE);
}

static void
test_round_trip (gconstpointer data)
{
  AtTokenizer *tok = vocab_get (data)->tok;
  static const char *const fixed[] = {
    "",
    " ",
    "  ",
    "\n",
    " \n ",
    "a",
    " a",
    "a ",
    "\xe2\x96\x81",
    "\xe2\x96\x81 x",
    "<s></s><unk><|im_start|><|begin_of_text|>",
    "<0x41>",
    "e\xcc\x81\xcc\x81\xcc\x81",
    "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
    "\xef\xbb\xbf"
    "BOM",
    "\x7f\x01\x02",
    "\xef\xbf\xbf\xf4\x8f\xbf\xbf",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (fixed); i++)
    assert_round_trip (tok, fixed[i]);
  for (guint i = 0; i < 300; i++)
    {
      g_autofree char *text = random_text (g_test_rand_int_range (1, 60));
      assert_round_trip (tok, text);
    }
}

/* Feeds ids one by one; every chunk must be valid UTF-8 and together they give text. */
static void
check_stream (AtTokenizer *tok, const gint32 *ids, gsize n, const char *text)
{
  g_autoptr (AtDetokenizer) detok = at_detokenizer_new (tok, FALSE);
  g_autoptr (GString) all = g_string_new (NULL);
  g_autofree char *rest = NULL;

  for (gsize i = 0; i < n; i++)
    {
      g_autofree char *chunk = at_detokenizer_push (detok, ids[i]);
      g_assert_true (g_utf8_validate (chunk, -1, NULL));
      g_string_append (all, chunk);
    }
  rest = at_detokenizer_flush (detok);
  g_assert_true (g_utf8_validate (rest, -1, NULL));
  g_string_append (all, rest);
  if (text != NULL)
    g_assert_cmpstr (all->str, ==, text);
}

static void
test_streaming (gconstpointer data)
{
  AtTokenizer *tok = vocab_get (data)->tok;
  gsize n_tokens = at_tokenizer_get_n_tokens (tok);

  for (guint i = 0; i < 200; i++)
    {
      g_autofree char *text = random_text (g_test_rand_int_range (1, 60));
      g_autoptr (GArray) ids = at_tokenizer_encode (tok, text, -1, AT_TOKENIZE_ADD_SPECIAL);
      check_stream (tok, (gint32 *)ids->data, ids->len, text);
    }
  /* Arbitrary ids, byte tokens among them, make broken sequences: still valid chunks. */
  for (guint i = 0; i < 200; i++)
    {
      gint32 ids[16];
      for (gsize j = 0; j < G_N_ELEMENTS (ids); j++)
        ids[j] = g_test_rand_bit () ? g_test_rand_int_range (0, 300)
                                    : g_test_rand_int_range (0, (gint32)n_tokens);
      check_stream (tok, ids, G_N_ELEMENTS (ids), NULL);
    }
}

static void
assert_ids (GArray *ids, const char *expected)
{
  g_autofree char *got = ids_to_string ((gint32 *)ids->data, ids->len);
  g_assert_cmpstr (got, ==, expected);
}

static gboolean
contains (GArray *ids, gint32 id)
{
  for (guint i = 0; i < ids->len; i++)
    if (g_array_index (ids, gint32, i) == id)
      return TRUE;
  return FALSE;
}

static void
test_add_special (void)
{
  Vocab *spm = vocab_get ("llama-spm");
  g_autoptr (GError) error = NULL;
  g_autoptr (AtTokenizer) with_eos = NULL;
  AtTokenizerSpec spec = spm->spec;
  g_autoptr (GArray) empty = at_tokenizer_encode (spm->tok, "", 0, AT_TOKENIZE_NONE);
  g_autoptr (GArray) empty_bos = at_tokenizer_encode (spm->tok, "", 0, AT_TOKENIZE_ADD_SPECIAL);
  g_autoptr (GArray) hello = at_tokenizer_encode (spm->tok, "Hello", -1, AT_TOKENIZE_ADD_SPECIAL);
  g_autoptr (GArray) hello_eos = NULL;
  g_autoptr (GArray) llama3
      = at_tokenizer_encode (vocab_get ("llama-bpe")->tok, "Hello", -1, AT_TOKENIZE_ADD_SPECIAL);
  g_autoptr (GArray) qwen
      = at_tokenizer_encode (vocab_get ("qwen2")->tok, "Hello", -1, AT_TOKENIZE_ADD_SPECIAL);
  g_autofree char *decoded = NULL;

  assert_ids (empty, "");
  assert_ids (empty_bos, "1");
  assert_ids (hello, "1 15043");
  decoded = at_tokenizer_decode (spm->tok, (gint32 *)hello->data, hello->len, FALSE, NULL);
  g_assert_cmpstr (decoded, ==, "Hello");
  g_clear_pointer (&decoded, g_free);
  decoded = at_tokenizer_decode (spm->tok, (gint32 *)hello->data, hello->len, TRUE, NULL);
  g_assert_cmpstr (decoded, ==, "<s> Hello");

  spec.add_eos = TRUE;
  with_eos = at_tokenizer_new (&spec, &error);
  g_assert_no_error (error);
  hello_eos = at_tokenizer_encode (with_eos, "Hello", -1, AT_TOKENIZE_ADD_SPECIAL);
  assert_ids (hello_eos, "1 15043 2");

  assert_ids (llama3, "128000 9906");
  assert_ids (qwen, "9707"); /* Qwen adds no BOS */
}

static void
test_parse_special (void)
{
  AtTokenizer *spm = vocab_get ("llama-spm")->tok;
  AtTokenizer *llama3 = vocab_get ("llama-bpe")->tok;
  AtTokenizer *qwen = vocab_get ("qwen2")->tok;
  const char *chat = "<|im_start|>user\nHi<|im_end|>\n";
  g_autoptr (GArray) plain = at_tokenizer_encode (qwen, chat, -1, AT_TOKENIZE_NONE);
  g_autoptr (GArray) parsed = at_tokenizer_encode (qwen, chat, -1, AT_TOKENIZE_PARSE_SPECIAL);
  g_autoptr (GArray) think = at_tokenizer_encode (qwen, "<think>x", -1, AT_TOKENIZE_NONE);
  g_autoptr (GArray) bot = at_tokenizer_encode (llama3, "<|begin_of_text|>Hi<|eot_id|>", -1,
                                                AT_TOKENIZE_PARSE_SPECIAL);
  g_autoptr (GArray) s_plain = at_tokenizer_encode (spm, "<s>Hello", -1, AT_TOKENIZE_NONE);
  g_autoptr (GArray) s_parsed
      = at_tokenizer_encode (spm, "<s>Hello", -1, AT_TOKENIZE_PARSE_SPECIAL);
  g_autofree char *back = NULL;
  g_autofree char *special = NULL;

  g_assert_false (contains (plain, 151644) || contains (plain, 151645));
  assert_ids (parsed, "151644 872 198 13048 151645 198");
  /* User-defined tokens are matched without being asked. */
  assert_ids (think, "151667 87");
  assert_ids (bot, "128000 13347 128009");
  g_assert_false (contains (s_plain, 1));
  /* The text after a special token gets its own space prefix. */
  assert_ids (s_parsed, "1 15043");

  back = at_tokenizer_decode (qwen, (gint32 *)parsed->data, parsed->len, FALSE, NULL);
  g_assert_cmpstr (back, ==, "user\nHi\n");
  special = at_tokenizer_decode (qwen, (gint32 *)parsed->data, parsed->len, TRUE, NULL);
  g_assert_cmpstr (special, ==, chat);

  g_assert_true (at_tokenizer_is_end_of_generation (llama3, 128009));
  g_assert_true (at_tokenizer_is_end_of_generation (llama3, 128001));
  g_assert_cmpint (at_tokenizer_get_eot (llama3), ==, 128009);
  g_assert_true (at_tokenizer_is_end_of_generation (qwen, 151645));
  g_assert_true (at_tokenizer_is_end_of_generation (qwen, 151643)); /* <|endoftext|> */
  g_assert_false (at_tokenizer_is_end_of_generation (qwen, 151644));
  g_assert_true (at_tokenizer_is_end_of_generation (spm, 2));
  g_assert_false (at_tokenizer_is_end_of_generation (spm, 1));
}

/* 100 KB of text, once as prose and once as a single word (one long merge run): the
 * merge loops must stay O(n log n). */
static void
test_long (gconstpointer data)
{
  AtTokenizer *tok = vocab_get (data)->tok;
  g_autoptr (GString) prose = g_string_new (NULL);
  g_autofree char *word = g_strnfill (100000, 'a');
  g_autoptr (GTimer) timer = g_timer_new ();

  while (prose->len < 100000)
    {
      g_autofree char *piece = random_text (40);
      g_string_append (prose, piece);
      g_string_append (prose, " the quick brown fox, 1234567; ");
    }
  assert_round_trip (tok, prose->str);
  assert_round_trip (tok, word);
  g_test_message ("%s: 2 x 100 KB encoded and decoded in %.2f s", (const char *)data,
                  g_timer_elapsed (timer, NULL));
  /* Quadratic merging would take minutes here; this only catches that. */
  g_assert_cmpfloat (g_timer_elapsed (timer, NULL), <, 20.0);
}

/* Tokens never cross the pre-tokenizer's word boundaries: every boundary listed (byte
 * offsets) must be a boundary between two tokens' pieces. */
static void
assert_boundaries (AtTokenizer *tok, const char *text, const gsize *boundaries, gsize n)
{
  g_autoptr (GArray) ids = at_tokenizer_encode (tok, text, -1, AT_TOKENIZE_NONE);
  g_autoptr (GHashTable) ends = g_hash_table_new (NULL, NULL);
  gsize offset = 0;

  for (guint i = 0; i < ids->len; i++)
    {
      gsize length;
      at_tokenizer_token_to_piece (tok, g_array_index (ids, gint32, i), FALSE, &length);
      offset += length;
      g_hash_table_add (ends, GSIZE_TO_POINTER (offset));
    }
  g_assert_cmpuint (offset, ==, strlen (text));
  for (gsize i = 0; i < n; i++)
    if (!g_hash_table_contains (ends, GSIZE_TO_POINTER (boundaries[i])))
      {
        g_autofree char *s = ids_to_string ((gint32 *)ids->data, ids->len);
        g_test_message ("'%s': no token ends at byte %" G_GSIZE_FORMAT " (ids %s)", text,
                        boundaries[i], s);
        g_test_fail ();
      }
}

/* The gpt2 and smollm pre-tokenizers (no real expected tokenizations here), on Llama 3's
 * vocabulary, whose merges would join across these boundaries. */
static void
test_other_pre_tokenizers (void)
{
  const char *text = "Hello world's 12345  \n xyz";
  /* gpt2: Hello| world|'s| 12345|  \n| xyz */
  const gsize gpt2[] = { 5, 11, 13, 19, 22, 26 };
  /* smollm: digits alone first: ... |'s| |1|2|3|4|5|  \n| xyz */
  const gsize smollm[] = { 5, 11, 13, 14, 15, 16, 17, 18, 19, 22, 26 };
  AtTokenizerSpec spec = vocab_get ("llama-bpe")->spec;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtTokenizer) tok_gpt2 = NULL, tok_smollm = NULL;

  spec.pre = "gpt2";
  tok_gpt2 = at_tokenizer_new (&spec, &error);
  g_assert_no_error (error);
  assert_boundaries (tok_gpt2, text, gpt2, G_N_ELEMENTS (gpt2));
  spec.pre = "smollm";
  tok_smollm = at_tokenizer_new (&spec, &error);
  g_assert_no_error (error);
  assert_boundaries (tok_smollm, text, smollm, G_N_ELEMENTS (smollm));
  assert_round_trip (tok_gpt2, text);
  assert_round_trip (tok_smollm, text);
}

static void
test_bad_spec (void)
{
  const char *tokens[] = { "a", "b", "ab" };
  const char *merges[] = { "a b" };
  AtTokenizerSpec spec;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtTokenizer) tok = NULL;
  g_autoptr (GArray) ids = NULL;

  at_tokenizer_spec_init (&spec, "wordpiece", NULL);
  spec.tokens = tokens;
  spec.n_tokens = G_N_ELEMENTS (tokens);
  g_assert_null (at_tokenizer_new (&spec, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED);
  g_clear_error (&error);

  spec.model = "gpt2";
  spec.pre = "no-such-pre";
  g_assert_null (at_tokenizer_new (&spec, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED);
  g_clear_error (&error);

  spec.pre = "qwen2";
  spec.eos_id = 3;
  g_assert_null (at_tokenizer_new (&spec, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_clear_error (&error);

  /* A tiny vocabulary without the byte alphabet still works for what it has. */
  spec.eos_id = -1;
  spec.merges = merges;
  spec.n_merges = G_N_ELEMENTS (merges);
  tok = at_tokenizer_new (&spec, &error);
  g_assert_no_error (error);
  ids = at_tokenizer_encode (tok, "abba", -1, AT_TOKENIZE_NONE);
  assert_ids (ids, "2 1 0");
}

/* Metadata the GGUF glue must refuse: no model key, a per-token array of the wrong
 * length, an id of the wrong type. */
static void
test_bad_gguf (void)
{
  const char *tokens[] = { "a", "b", "ab" };
  const float scores[] = { 0.0f, -1.0f };
  struct
  {
    const char *fault, *message;
  } cases[] = {
    { "no-model", "tokenizer.ggml.model" },
    { "scores", "'tokenizer.ggml.scores' has 2 elements for 3 tokens" },
    { "bos", "tokenizer.ggml.bos_token_id" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (AtGgufWriter) writer = at_gguf_writer_new ();
      g_autoptr (GBytes) bytes = NULL;
      g_autoptr (AtGguf) gguf = NULL;
      g_autoptr (GError) error = NULL;

      if (!g_str_equal (cases[i].fault, "no-model"))
        at_gguf_writer_add_string (writer, "tokenizer.ggml.model", "llama");
      at_gguf_writer_add_string_array (writer, "tokenizer.ggml.tokens", tokens,
                                       G_N_ELEMENTS (tokens));
      if (g_str_equal (cases[i].fault, "scores"))
        at_gguf_writer_add_array (writer, "tokenizer.ggml.scores", AT_GGUF_TYPE_FLOAT32, scores,
                                  G_N_ELEMENTS (scores));
      if (g_str_equal (cases[i].fault, "bos"))
        at_gguf_writer_add_string (writer, "tokenizer.ggml.bos_token_id", "1");
      bytes = at_gguf_writer_to_bytes (writer);
      gguf = at_gguf_new_from_bytes (bytes, "bad.gguf", &error);
      g_assert_no_error (error);
      g_assert_null (at_tokenizer_new_from_gguf (gguf, &error));
      g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
      if (strstr (error->message, cases[i].message) == NULL)
        g_error ("'%s' does not mention '%s'", error->message, cases[i].message);
    }
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (vocab_names); i++)
    {
      const char *name = vocab_names[i];
      g_autofree char *expected = g_strdup_printf ("/text/tokenizer/%s/expected", name);
      g_autofree char *round_trip = g_strdup_printf ("/text/tokenizer/%s/round-trip", name);
      g_autofree char *streaming = g_strdup_printf ("/text/tokenizer/%s/streaming", name);
      g_autofree char *long_input = g_strdup_printf ("/text/tokenizer/%s/long", name);

      g_test_add_data_func (expected, name, test_expected);
      g_test_add_data_func (round_trip, name, test_round_trip);
      g_test_add_data_func (streaming, name, test_streaming);
      g_test_add_data_func (long_input, name, test_long);
    }
  g_test_add_func ("/text/tokenizer/add-special", test_add_special);
  g_test_add_func ("/text/tokenizer/parse-special", test_parse_special);
  g_test_add_func ("/text/tokenizer/other-pre-tokenizers", test_other_pre_tokenizers);
  g_test_add_func ("/text/tokenizer/bad-spec", test_bad_spec);
  g_test_add_func ("/text/tokenizer/bad-gguf", test_bad_gguf);
  status = g_test_run ();
  for (gsize i = 0; i < G_N_ELEMENTS (vocabs); i++)
    g_clear_pointer (&vocabs[i], vocab_free);
  return status;
}
