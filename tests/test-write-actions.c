/* test-write-actions.c: the Write page's instructions, reply bounds, reply clean-up,
 * library record and progress line, against values written out by hand. */
#include <json-glib/json-glib.h>
#include <locale.h>

#include "atelier-write-actions.h"

static void
test_names (void)
{
  AtelierWriteAction action;
  AtelierWriteTone tone;

  for (AtelierWriteAction a = ATELIER_WRITE_CONTINUE; a <= ATELIER_WRITE_TRANSLATE_TO_ENGLISH;
       a++)
    {
      g_assert_true (atelier_write_action_from_string (atelier_write_action_to_string (a),
                                                       &action));
      g_assert_cmpint (action, ==, a);
    }
  g_assert_cmpstr (atelier_write_action_to_string (ATELIER_WRITE_TRANSLATE_TO_CHINESE), ==,
                   "translate-zh");
  g_assert_false (atelier_write_action_from_string ("paint", &action));
  g_assert_false (atelier_write_action_from_string (NULL, &action));

  g_assert_true (atelier_write_tone_from_string ("playful", &tone));
  g_assert_cmpint (tone, ==, ATELIER_TONE_PLAYFUL);
  g_assert_null (atelier_write_tone_to_string (ATELIER_TONE_NONE));
  g_assert_false (atelier_write_tone_from_string ("grumpy", &tone));
}

static void
test_translation_direction (void)
{
  g_assert_cmpint (atelier_write_translation_for ("The fox jumps."), ==,
                   ATELIER_WRITE_TRANSLATE_TO_CHINESE);
  g_assert_cmpint (atelier_write_translation_for ("狐狸跳过了懒狗。"), ==,
                   ATELIER_WRITE_TRANSLATE_TO_ENGLISH);
  /* 4 Han characters of 11 letters: more than a third, Chinese text with a brand name. */
  g_assert_cmpint (atelier_write_translation_for ("我用 Atelier 写作"), ==,
                   ATELIER_WRITE_TRANSLATE_TO_ENGLISH);
  /* 2 of 15: English with a Chinese word in it. */
  g_assert_cmpint (atelier_write_translation_for ("Say 你好 to everyone"), ==,
                   ATELIER_WRITE_TRANSLATE_TO_CHINESE);
  g_assert_cmpint (atelier_write_translation_for ("1234 !!"), ==,
                   ATELIER_WRITE_TRANSLATE_TO_CHINESE);
}

static void
test_prompts (void)
{
  g_autoptr (AtelierWritePrompt) rewrite = atelier_write_prompt_new (ATELIER_WRITE_REWRITE,
                                                                     ATELIER_TONE_NONE,
                                                                     "It was a dark night.");
  g_autoptr (AtelierWritePrompt) tone = atelier_write_prompt_new (ATELIER_WRITE_CHANGE_TONE,
                                                                  ATELIER_TONE_FRIENDLY,
                                                                  "Pay now.");
  g_autoptr (AtelierWritePrompt) zh = atelier_write_prompt_new (
    ATELIER_WRITE_TRANSLATE_TO_CHINESE, ATELIER_TONE_NONE, "Hello");
  g_autoptr (AtelierWritePrompt) en = atelier_write_prompt_new (
    ATELIER_WRITE_TRANSLATE_TO_ENGLISH, ATELIER_TONE_NONE, "你好");

  g_assert_true (strstr (rewrite->system, "resulting text only") != NULL);
  g_assert_cmpstr (rewrite->user, ==,
                   "Rewrite the following text so that it reads better: clearer, smoother, "
                   "correct. Keep its meaning, its language and its Markdown formatting. "
                   "Reply with the new text only.\n\nText:\nIt was a dark night.");
  g_assert_cmpstr (tone->user, ==,
                   "Rewrite the following text in a friendly tone. Keep its meaning, its "
                   "language and its Markdown formatting. Reply with the new text only."
                   "\n\nText:\nPay now.");
  g_assert_true (g_str_has_prefix (zh->user, "Translate the following text into Simplified "
                                             "Chinese."));
  g_assert_true (g_str_has_suffix (zh->user, "\n\nText:\nHello"));
  g_assert_true (g_str_has_prefix (en->user, "Translate the following text into English."));
  g_assert_true (g_str_has_suffix (en->user, "\n\nText:\n你好"));
  g_assert_cmpstr (rewrite->system, ==, en->system);
}

static void
test_max_tokens (void)
{
  /* 300 bytes: 300 / 3 + 8 = 108 source tokens. */
  g_autofree char *text = g_strnfill (300, 'a');
  g_autofree char *long_text = g_strnfill (30000, 'a');

  g_assert_cmpint (atelier_write_max_tokens (ATELIER_WRITE_CONTINUE, text), ==, 128);
  g_assert_cmpint (atelier_write_max_tokens (ATELIER_WRITE_REWRITE, text), ==, 108 * 15 / 10 + 32);
  g_assert_cmpint (atelier_write_max_tokens (ATELIER_WRITE_SHORTEN, text), ==, 108 + 32);
  g_assert_cmpint (atelier_write_max_tokens (ATELIER_WRITE_EXPAND, text), ==, 108 * 3 + 32);
  g_assert_cmpint (atelier_write_max_tokens (ATELIER_WRITE_SUMMARISE, text), ==, 108 / 2 + 32);
  g_assert_cmpint (atelier_write_max_tokens (ATELIER_WRITE_SUMMARISE, ""), ==, 64);
  g_assert_cmpint (atelier_write_max_tokens (ATELIER_WRITE_EXPAND, long_text), ==, 2048);
}

static void
test_body_start (void)
{
  static const char preamble[] = "Here is the rewritten text:\n\nThe night was dark.";
  static const char chinese[] = "以下是翻译：\n夜色很黑。";

  /* Streaming: a line that may still become a preamble waits for its end. */
  g_assert_cmpint (atelier_write_reply_body_start ("", FALSE), ==, -1);
  g_assert_cmpint (atelier_write_reply_body_start ("  \n", FALSE), ==, -1);
  g_assert_cmpint (atelier_write_reply_body_start ("He", FALSE), ==, -1);
  g_assert_cmpint (atelier_write_reply_body_start ("Here is the", FALSE), ==, -1);
  g_assert_cmpint (atelier_write_reply_body_start ("Here is the rewritten text:\n", FALSE), ==,
                   -1);
  g_assert_cmpint (atelier_write_reply_body_start (preamble, FALSE), ==,
                   strlen ("Here is the rewritten text:\n\n"));
  g_assert_cmpint (atelier_write_reply_body_start (chinese, FALSE), ==,
                   strlen ("以下是翻译：\n"));
  g_assert_cmpint (atelier_write_reply_body_start ("好", FALSE), ==, -1);
  /* Text that no preamble begins with streams at once, leading space dropped. */
  g_assert_cmpint (atelier_write_reply_body_start (" Night", FALSE), ==, 1);
  /* "The" may still become "The rewritten text:". */
  g_assert_cmpint (atelier_write_reply_body_start ("The", FALSE), ==, -1);
  g_assert_cmpint (atelier_write_reply_body_start ("夜", FALSE), ==, 0);
  /* A first line that opens like a preamble but is text. */
  g_assert_cmpint (atelier_write_reply_body_start ("Sure enough, it rained.\nThen", FALSE), ==,
                   0);
  g_assert_cmpint (atelier_write_reply_body_start ("Summary of the day", TRUE), ==, 0);
  /* Complete: a reply that is only a preamble has an empty body. */
  g_assert_cmpint (atelier_write_reply_body_start ("Sure! Here it is:", TRUE), ==,
                   strlen ("Sure! Here it is:"));
  g_assert_cmpint (atelier_write_reply_body_start ("Here is the text:\n\n", TRUE), ==,
                   strlen ("Here is the text:\n\n"));
}

static void
test_clean_reply (void)
{
  static const struct
  {
    const char *reply, *clean;
  } cases[] = {
    { "Here is the rewritten text:\n\n\"The night was dark.\"\n", "The night was dark." },
    { "Sure! Here's a shorter version:\n“Short.”", "Short." },
    { "以下是翻译：\n「夜色很黑。」", "夜色很黑。" },
    { "  The night was dark.  ", "The night was dark." },
    { "\"Yes,\" she said, \"no.\"", "\"Yes,\" she said, \"no.\"" },
    { "“One” and “two”", "“One” and “two”" },
    { "\"\"", "\"\"" },
    { "Ingredients:\nflour", "Ingredients:\nflour" },
    { "Here is the text:", "" },
    { "# Title\n\nBody", "# Title\n\nBody" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *clean = atelier_write_clean_reply (cases[i].reply);

      g_assert_cmpstr (clean, ==, cases[i].clean);
    }
}

static void
test_asset_record (void)
{
  g_autofree char *long_source = g_strnfill (250, 'x');
  g_autofree char *prompt = atelier_write_asset_prompt (ATELIER_WRITE_REWRITE,
                                                        ATELIER_TONE_NONE, long_source);
  g_autofree char *tone_prompt = atelier_write_asset_prompt (ATELIER_WRITE_CHANGE_TONE,
                                                             ATELIER_TONE_FORMAL, "夜色很黑");
  g_autofree char *json = atelier_write_parameters_json (ATELIER_WRITE_CHANGE_TONE,
                                                         ATELIER_TONE_FORMAL, "tiny.gguf",
                                                         0.8f, 12345, 42);
  g_autofree char *no_tone = atelier_write_parameters_json (ATELIER_WRITE_CONTINUE,
                                                            ATELIER_TONE_NONE, "a.gguf", 1.0,
                                                            7, 128);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *object;
  g_autofree char *x200 = g_strnfill (200, 'x');
  g_autofree char *expected = g_strconcat ("Rewrite: ", x200, NULL);

  g_assert_cmpstr (prompt, ==, expected);
  g_assert_cmpstr (tone_prompt, ==, "Change tone (formal): 夜色很黑");

  g_assert_true (json_parser_load_from_data (parser, json, -1, &error));
  g_assert_no_error (error);
  object = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpuint (json_object_get_size (object), ==, 6);
  g_assert_cmpstr (json_object_get_string_member (object, "action"), ==, "change-tone");
  g_assert_cmpstr (json_object_get_string_member (object, "tone"), ==, "formal");
  g_assert_cmpstr (json_object_get_string_member (object, "model"), ==, "tiny.gguf");
  /* 0.8f is 0.800000011920929 as a double: stored as the 0.8 the person set. */
  g_assert_cmpfloat (json_object_get_double_member (object, "temperature"), ==, 0.8);
  g_assert_cmpint (json_object_get_int_member (object, "seed"), ==, 12345);
  g_assert_cmpint (json_object_get_int_member (object, "tokens"), ==, 42);
  g_assert_true (json_parser_load_from_data (parser, no_tone, -1, &error));
  g_assert_no_error (error);
  g_assert_true (json_object_get_null_member (json_node_get_object (json_parser_get_root (parser)),
                                              "tone"));
}

static void
test_progress (void)
{
  static const struct
  {
    gint64 n_tokens;
    double seconds;
    gint64 max_tokens;
    const char *text;
  } cases[] = {
    { 0, 0, 128, "Reading the text…" },
    { 1, 0, 128, "1 token" },
    /* 10 tokens after the first in 2 s: 5 per second; 117 left: 23.4 s, shown as 24. */
    { 11, 2.0, 128, "11 tokens · 5.0 tokens/s · at most 24 s left" },
    /* 1000 left at 10 per second. */
    { 21, 2.0, 1021, "21 tokens · 10.0 tokens/s · at most 1 min 40 s left" },
    { 128, 5.0, 128, "128 tokens · 25.4 tokens/s" },
    { 5, 1.0, -1, "5 tokens · 4.0 tokens/s" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = atelier_write_progress_text (cases[i].n_tokens, cases[i].seconds,
                                                           cases[i].max_tokens);

      g_assert_cmpstr (text, ==, cases[i].text);
    }
}

int
main (int argc, char **argv)
{
  /* Untranslated strings, "." as the decimal point. */
  setlocale (LC_ALL, "C.UTF-8");
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/app/write-actions/names", test_names);
  g_test_add_func ("/app/write-actions/translation-direction", test_translation_direction);
  g_test_add_func ("/app/write-actions/prompts", test_prompts);
  g_test_add_func ("/app/write-actions/max-tokens", test_max_tokens);
  g_test_add_func ("/app/write-actions/body-start", test_body_start);
  g_test_add_func ("/app/write-actions/clean-reply", test_clean_reply);
  g_test_add_func ("/app/write-actions/asset-record", test_asset_record);
  g_test_add_func ("/app/write-actions/progress", test_progress);
  return g_test_run ();
}
