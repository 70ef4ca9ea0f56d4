/* CLIP BPE tokenizer on the real vocabulary, A1111's emphasis parser and its chunking. */
#include <glib/gstdio.h>
#include <string.h>

#include "at-error.h"
#include "image/at-clip-tokenizer.h"
#include "image/at-prompt.h"

static AtClipTokenizer *tokenizer;

#define BOS 49406
#define EOS 49407
/* Ids follow from the vocabulary file: the byte symbols come first, printable ASCII c at
 * c - '!' and with "</w>" 256 later (',' -> 267, 'a</w>' -> 320, '!</w>' -> 256); the token
 * made by the merge on line n of the file (line 1 is a version comment) is 512 + n - 2:
 * "c at</w>" is line 1858 -> 2368, "pho to</w>" 615 -> 1125, "o f</w>" 29 -> 539,
 * "h ello</w>" 2796 -> 3306, "wor ld</w>" 492 -> 1002, "i t</w>" 75 -> 585,
 * "' s</w>" 58 -> 568, "hor se</w>" 4048 -> 4558, "photo graph</w>" 8343 -> 8853. */
#define CAT 2368
#define DOG 1929
#define COMMA 267

static void
assert_encodes (const char *text, const gint32 *expected, guint n_expected)
{
  g_autoptr (GArray) ids = at_clip_tokenizer_encode (tokenizer, text);
  if (ids->len != n_expected
      || memcmp (ids->data, expected, n_expected * sizeof (gint32)) != 0)
    {
      g_autoptr (GString) got = g_string_new (NULL);
      for (guint i = 0; i < ids->len; i++)
        g_string_append_printf (got, " %d", g_array_index (ids, gint32, i));
      g_error ("'%s' encodes as%s", text, got->str);
    }
}

#define ASSERT_ENCODES(text, ...)                                                      \
  assert_encodes (text, (const gint32[]) { __VA_ARGS__ },                              \
                  sizeof ((const gint32[]) { __VA_ARGS__ }) / sizeof (gint32))

static void
test_vocab (void)
{
  g_assert_cmpuint (at_clip_tokenizer_get_n_vocab (tokenizer), ==, 49408);
  g_assert_cmpint (at_clip_tokenizer_get_bos (tokenizer), ==, BOS);
  g_assert_cmpint (at_clip_tokenizer_get_eos (tokenizer), ==, EOS);

  g_autoptr (GError) error = NULL;
  g_autoptr (AtClipTokenizer) missing = at_clip_tokenizer_new_from_file ("/nonexistent/v.gz",
                                                                         &error);
  g_assert_null (missing);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);

  /* Plain-text vocabularies load too; these two are cut short and malformed. */
  const char *bad[][2] = {
    { "#version: 0.2\nt h\ni n\n", "has 2 merges, not 48894" },
    { "#version: 0.2\nt h\ni n x\n", "line 3 is not a merge of two symbols" },
  };
  g_autofree char *dir = g_dir_make_tmp ("at-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "vocab.txt", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) bad_error = NULL;
      g_assert_true (g_file_set_contents (path, bad[i][0], -1, NULL));
      g_autoptr (AtClipTokenizer) t = at_clip_tokenizer_new_from_file (path, &bad_error);
      g_assert_null (t);
      g_assert_error (bad_error, AT_ERROR, AT_ERROR_INVALID_FILE);
      g_assert_nonnull (strstr (bad_error->message, bad[i][1]));
    }
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_encode (void)
{
  ASSERT_ENCODES ("a photo of a cat", 320, 1125, 539, 320, CAT);
  /* Whitespace collapses and case folds. */
  ASSERT_ENCODES ("  A\tPhoto   of\n a CAT ", 320, 1125, 539, 320, CAT);
  ASSERT_ENCODES ("a photograph of an astronaut riding a horse", 320, 8853, 539, 550, 18376,
                  6765, 320, 4558);
  ASSERT_ENCODES ("Hello, World!", 3306, COMMA, 1002, 256);
  /* Contractions split off; digits are one token each. */
  ASSERT_ENCODES ("it's 1024px", 585, 568, 272, 271, 273, 275, 10262);
  /* A curly apostrophe is straightened as ftfy does. */
  ASSERT_ENCODES ("it\xe2\x80\x99s", 585, 568);
  ASSERT_ENCODES ("don't <|endoftext|>x", 847, 713, EOS, 343);
  ASSERT_ENCODES ("(masterpiece:1.2)", 263, 12066, 281, 272, 269, 273, 264);
  /* Multi-byte characters go through their UTF-8 bytes; a decomposed é is composed first. */
  ASSERT_ENCODES ("caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac", 15304, 1097, 35689, 563,
                  39121, 19277, 361);
  ASSERT_ENCODES ("cafe\xcc\x81", 15304);
  g_autoptr (GArray) none = at_clip_tokenizer_encode (tokenizer, " \t ");
  g_assert_cmpuint (none->len, ==, 0);
}

static void
test_decode (void)
{
  g_autoptr (GArray) ids = at_clip_tokenizer_encode (tokenizer, "A photo of a café, 2 cats!");
  g_autofree char *text = at_clip_tokenizer_decode (tokenizer, (gint32 *) (void *) ids->data,
                                                    ids->len);
  g_assert_cmpstr (text, ==, "a photo of a café , 2 cats ! ");
}

typedef struct {
  const char *text;
  double weight; /* 0 for a BREAK */
} Span;

static void
assert_parses (const char *prompt, const Span *expected, guint n_expected)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) spans = at_prompt_parse_attention (prompt, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (spans->len, ==, n_expected);
  for (guint i = 0; i < n_expected; i++)
    {
      const AtPromptSpan *span = &g_array_index (spans, AtPromptSpan, i);
      g_assert_cmpint (span->is_break, ==, expected[i].weight == 0);
      if (span->is_break)
        continue;
      g_assert_cmpstr (span->text, ==, expected[i].text);
      /* A1111's values are the same double products, so they compare exactly. */
      g_assert_cmpfloat (span->weight, ==, expected[i].weight);
    }
}

#define ASSERT_PARSES(prompt, ...)                                                   \
  assert_parses (prompt, (const Span[]) { __VA_ARGS__ },                             \
                 sizeof ((const Span[]) { __VA_ARGS__ }) / sizeof (Span))

static void
test_parse_attention (void)
{
  /* The examples of parse_prompt_attention's docstring. */
  ASSERT_PARSES ("normal text", { "normal text", 1.0 });
  ASSERT_PARSES ("an (important) word", { "an ", 1.0 }, { "important", 1.1 }, { " word", 1.0 });
  ASSERT_PARSES ("(unbalanced", { "unbalanced", 1.1 });
  ASSERT_PARSES ("\\(literal\\]", { "(literal]", 1.0 });
  ASSERT_PARSES ("(unnecessary)(parens)", { "unnecessaryparens", 1.1 });
  ASSERT_PARSES ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", { "a ", 1.0 },
                 { "house", 1.5730000000000004 }, { " ", 1.1 }, { "on", 1.0 }, { " a ", 1.1 },
                 { "hill", 0.55 }, { ", sun, ", 1.1 }, { "sky", 1.4641000000000006 },
                 { ".", 1.1 });

  /* The rest of the syntax, worked out from re_attention and the bracket stacks. */
  ASSERT_PARSES ("", { "", 1.0 });
  ASSERT_PARSES ("((word))", { "word", 1.1 * 1.1 });
  ASSERT_PARSES ("[word]", { "word", 1 / 1.1 });
  ASSERT_PARSES ("[[word]", { "word", (1 / 1.1) * (1 / 1.1) });
  ASSERT_PARSES ("a (b:1.5) c", { "a ", 1.0 }, { "b", 1.5 }, { " c", 1.0 });
  ASSERT_PARSES ("(b:.5)(c:+2.)", { "b", 0.5 }, { "c", 2.0 });
  ASSERT_PARSES ("a) b] c:1.5) d:", { "a) b] c:1.5) d:", 1.0 });
  ASSERT_PARSES ("(a:x)", { "a:x", 1.1 });
  ASSERT_PARSES ("\\\\ a\\b \\", { "\\ ab ", 1.0 });
  ASSERT_PARSES ("a BREAK b", { "a", 1.0 }, { NULL, 0 }, { "b", 1.0 });
  ASSERT_PARSES ("BREAK,BREAKING xBREAK (BREAK)", { "", 1.0 }, { NULL, 0 },
                 { ",BREAKING xBREAK ", 1.0 }, { "", 1.1 }, { NULL, 0 }, { "", 1.1 });

  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) bad = at_prompt_parse_attention ("(a:1.2.3)", &error);
  g_assert_null (bad);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "'1.2.3'"));
}

static AtClipPromptTokens *
encode_prompt (const char *prompt, gint32 pad_id, guint n_chunks)
{
  g_autoptr (GError) error = NULL;
  AtClipPromptTokens *tokens = at_clip_tokenizer_encode_prompt (tokenizer, prompt, pad_id, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tokens->n_chunks, ==, n_chunks);
  for (guint c = 0; c < n_chunks; c++)
    {
      g_assert_cmpint (tokens->ids[c * AT_CLIP_CONTEXT], ==, BOS);
      g_assert_cmpfloat (tokens->weights[c * AT_CLIP_CONTEXT], ==, 1.0f);
    }
  return tokens;
}

/* Asserts window c holds ids (then EOS, then pad) with weight 1 outside the given ones. */
static void
assert_window (const AtClipPromptTokens *tokens, guint c, const gint32 *ids, guint n,
               gint32 pad_id)
{
  const gint32 *window = tokens->ids + c * AT_CLIP_CONTEXT;
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (window[1 + i], ==, ids[i]);
  g_assert_cmpint (window[1 + n], ==, EOS);
  for (guint i = n + 2; i < AT_CLIP_CONTEXT; i++)
    {
      g_assert_cmpint (window[i], ==, pad_id);
      g_assert_cmpfloat (tokens->weights[c * AT_CLIP_CONTEXT + i], ==, 1.0f);
    }
}

static void
test_prompt_short (void)
{
  const gint32 ids[] = { 320, 1125, 539, 320, CAT };
  g_autoptr (AtClipPromptTokens) sd1 = encode_prompt ("a photo of a cat", EOS, 1);
  assert_window (sd1, 0, ids, 5, EOS);
  g_autoptr (AtClipPromptTokens) sd2 = encode_prompt ("a photo of a cat", 0, 1);
  assert_window (sd2, 0, ids, 5, 0);

  g_autoptr (AtClipPromptTokens) empty = encode_prompt ("", 0, 1);
  assert_window (empty, 0, NULL, 0, 0);

  g_autoptr (AtClipPromptTokens) weighted = encode_prompt ("a photo of a [(cat:1.5)]", EOS, 1);
  assert_window (weighted, 0, ids, 5, EOS);
  for (guint i = 1; i <= 4; i++)
    g_assert_cmpfloat (weighted->weights[i], ==, 1.0f);
  g_assert_cmpfloat (weighted->weights[5], ==, (float) (1.5 * (1 / 1.1)));
  g_assert_cmpfloat (weighted->weights[6], ==, 1.0f);
}

static char *
repeat (const char *word, guint n)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (s, "%s ", word);
  return g_string_free (s, FALSE);
}

static void
fill_ids (gint32 *ids, guint n, gint32 id)
{
  for (guint i = 0; i < n; i++)
    ids[i] = id;
}

static void
test_prompt_chunks (void)
{
  gint32 ids[AT_CLIP_CHUNK_TOKENS];
  g_autofree char *cats70 = repeat ("cat", 70);
  g_autofree char *cats50 = repeat ("cat", 50);
  g_autofree char *cats75 = repeat ("cat", 75);
  g_autofree char *cats80 = repeat ("cat", 80);
  g_autofree char *dogs10 = repeat ("dog", 10);
  g_autofree char *dogs40 = repeat ("dog", 40);

  /* No comma: a plain cut after 75 tokens. */
  g_autoptr (AtClipPromptTokens) plain = encode_prompt (cats80, EOS, 2);
  fill_ids (ids, 75, CAT);
  assert_window (plain, 0, ids, 75, EOS);
  assert_window (plain, 1, ids, 5, EOS);

  /* A comma 5 tokens before the end of the chunk: cut after it, the dogs move on. */
  g_autofree char *near = g_strconcat (cats70, ", ", dogs10, NULL);
  g_autoptr (AtClipPromptTokens) near_tokens = encode_prompt (near, 0, 2);
  fill_ids (ids, 70, CAT);
  ids[70] = COMMA;
  assert_window (near_tokens, 0, ids, 71, 0);
  fill_ids (ids, 10, DOG);
  assert_window (near_tokens, 1, ids, 10, 0);

  /* A comma 25 tokens back is too far: the cut stays at 75. */
  g_autofree char *far = g_strconcat (cats50, ", ", dogs40, NULL);
  g_autoptr (AtClipPromptTokens) far_tokens = encode_prompt (far, EOS, 2);
  fill_ids (ids, 50, CAT);
  ids[50] = COMMA;
  fill_ids (ids + 51, 24, DOG);
  assert_window (far_tokens, 0, ids, 75, EOS);
  fill_ids (ids, 16, DOG);
  assert_window (far_tokens, 1, ids, 16, EOS);

  /* A comma as the 76th token opens the next chunk. */
  g_autofree char *comma76 = g_strconcat (cats75, ", dog", NULL);
  g_autoptr (AtClipPromptTokens) comma_tokens = encode_prompt (comma76, EOS, 2);
  ids[0] = COMMA;
  ids[1] = DOG;
  assert_window (comma_tokens, 1, ids, 2, EOS);

  /* Exactly 75 tokens fill one window with no padding. */
  g_autoptr (AtClipPromptTokens) full = encode_prompt (cats75, 0, 1);
  g_assert_cmpint (full->ids[AT_CLIP_CONTEXT - 1], ==, EOS);
}

static void
test_prompt_break (void)
{
  const gint32 cat[] = { CAT }, dog[] = { DOG };
  g_autoptr (AtClipPromptTokens) tokens = encode_prompt ("cat BREAK (dog)", EOS, 2);
  assert_window (tokens, 0, cat, 1, EOS);
  assert_window (tokens, 1, dog, 1, EOS);
  g_assert_cmpfloat (tokens->weights[AT_CLIP_CONTEXT + 1], ==, 1.1f);

  /* A trailing BREAK opens no empty chunk; two in a row leave one empty between. */
  g_autoptr (AtClipPromptTokens) trailing = encode_prompt ("cat BREAK", EOS, 1);
  g_autoptr (AtClipPromptTokens) twice = encode_prompt ("cat BREAK BREAK dog", 0, 3);
  assert_window (twice, 1, NULL, 0, 0);
  assert_window (twice, 2, dog, 1, 0);

  g_autoptr (GError) error = NULL;
  g_autoptr (AtClipPromptTokens) bad = at_clip_tokenizer_encode_prompt (tokenizer, "(a:..)", EOS,
                                                                        &error);
  g_assert_null (bad);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "data", "clip",
                                                 "bpe_simple_vocab_16e6.txt.gz", NULL);
  g_autoptr (GError) error = NULL;
  tokenizer = at_clip_tokenizer_new_from_file (path, &error);
  g_assert_no_error (error);

  g_test_add_func ("/image/clip-tokenizer/vocab", test_vocab);
  g_test_add_func ("/image/clip-tokenizer/encode", test_encode);
  g_test_add_func ("/image/clip-tokenizer/decode", test_decode);
  g_test_add_func ("/image/prompt/parse-attention", test_parse_attention);
  g_test_add_func ("/image/prompt/short", test_prompt_short);
  g_test_add_func ("/image/prompt/chunks", test_prompt_chunks);
  g_test_add_func ("/image/prompt/break", test_prompt_break);
  int status = g_test_run ();
  at_clip_tokenizer_free (tokenizer);
  return status;
}
