/* atelier-write-actions.c: the AI actions' instructions and the handling of replies.
 *
 * The instructions are in English whatever the interface language: the small local
 * models follow English instructions best, and each says to keep the text's own
 * language (except Translate). */
#include "config.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <math.h>

#include "atelier-write-actions.h"

/* Continue writes about a paragraph. */
#define CONTINUE_TOKENS 128
#define MIN_REPLY_TOKENS 64
#define MAX_REPLY_TOKENS 2048
/* Preambles are one short line; a longer first line is text. */
#define MAX_PREAMBLE_BYTES 120
#define ASSET_PROMPT_CHARS 200

typedef struct
{
  const char *name;  /* stored and used as the action target */
  const char *title; /* the library's prompt starts with it */
  /* How long the reply is relative to the source, in tenths. */
  guint length_tenths;
  const char *instruction;
} ActionInfo;

static const ActionInfo actions[] = {
  [ATELIER_WRITE_CONTINUE] = { "continue", "Continue", 0, NULL },
  [ATELIER_WRITE_REWRITE] = { "rewrite", "Rewrite", 15,
                              "Rewrite the following text so that it reads better: clearer, "
                              "smoother, correct. Keep its meaning, its language and its "
                              "Markdown formatting." },
  [ATELIER_WRITE_SHORTEN] = { "shorten", "Shorten", 10,
                              "Make the following text shorter, about half its length, "
                              "keeping the important points, its language and its Markdown "
                              "formatting." },
  [ATELIER_WRITE_EXPAND] = { "expand", "Expand", 30,
                             "Expand the following text to about twice its length with "
                             "relevant detail, keeping its meaning, its voice, its language "
                             "and its Markdown formatting." },
  /* Its instruction names the tone: see atelier_write_prompt_new. */
  [ATELIER_WRITE_CHANGE_TONE] = { "change-tone", "Change tone", 15, NULL },
  [ATELIER_WRITE_SUMMARISE] = { "summarise", "Summarise", 5,
                                "Summarise the following text in a few sentences, in the "
                                "same language as the text." },
  [ATELIER_WRITE_TRANSLATE_TO_CHINESE] = { "translate-zh", "Translate to Chinese", 30,
                                           "Translate the following text into Simplified "
                                           "Chinese. Keep its Markdown formatting." },
  [ATELIER_WRITE_TRANSLATE_TO_ENGLISH] = { "translate-en", "Translate to English", 20,
                                           "Translate the following text into English. "
                                           "Keep its Markdown formatting." },
};

static const char *const tones[] = {
  [ATELIER_TONE_NONE] = "",
  [ATELIER_TONE_FORMAL] = "formal",
  [ATELIER_TONE_FRIENDLY] = "friendly",
  [ATELIER_TONE_CONFIDENT] = "confident",
  [ATELIER_TONE_PLAYFUL] = "playful",
  [ATELIER_TONE_EMPATHETIC] = "empathetic",
};

static const char system_prompt[] =
  "You are a careful writing assistant. You do exactly what the user asks with the text "
  "they give you and reply with the resulting text only: no introduction, no "
  "explanation, no notes, no quotation marks around it.";

/* Opening phrases of the lines chat models put before their answer, lower case. */
static const char *const preamble_openings[] = {
  "here is", "here's", "here are", "sure", "certainly", "of course", "okay", "ok,",
  "absolutely", "below is", "the rewritten", "the revised", "the shortened",
  "the expanded", "the summary", "the translation", "the translated", "rewritten",
  "revised", "shortened", "expanded", "summary", "translation", "以下是", "下面是",
  "这是", "好的", "当然", "翻译", "译文", "改写", "摘要", "总结",
};

/* Opening and closing marks that may wrap a whole reply. */
static const char *const quotes[][2] = {
  { "\"", "\"" }, { "'", "'" }, { "\u201c", "\u201d" }, { "\u2018", "\u2019" },
  { "\u300c", "\u300d" }, { "\u300e", "\u300f" }, { "\u00ab", "\u00bb" },
};

const char *
atelier_write_action_to_string (AtelierWriteAction action)
{
  g_return_val_if_fail (action < G_N_ELEMENTS (actions), NULL);
  return actions[action].name;
}

gboolean
atelier_write_action_from_string (const char *name, AtelierWriteAction *action)
{
  for (guint i = 0; i < G_N_ELEMENTS (actions); i++)
    if (g_strcmp0 (name, actions[i].name) == 0)
      {
        *action = i;
        return TRUE;
      }
  return FALSE;
}

const char *
atelier_write_tone_to_string (AtelierWriteTone tone)
{
  g_return_val_if_fail (tone < G_N_ELEMENTS (tones), NULL);
  return tone == ATELIER_TONE_NONE ? NULL : tones[tone];
}

gboolean
atelier_write_tone_from_string (const char *name, AtelierWriteTone *tone)
{
  for (guint i = 0; i < G_N_ELEMENTS (tones); i++)
    if (g_strcmp0 (name, tones[i]) == 0)
      {
        *tone = i;
        return TRUE;
      }
  return FALSE;
}

static gboolean
is_cjk (gunichar c)
{
  GUnicodeScript script = g_unichar_get_script (c);

  return script == G_UNICODE_SCRIPT_HAN || script == G_UNICODE_SCRIPT_HIRAGANA
         || script == G_UNICODE_SCRIPT_KATAKANA || script == G_UNICODE_SCRIPT_HANGUL;
}

AtelierWriteAction
atelier_write_translation_for (const char *text)
{
  guint letters = 0, cjk = 0;

  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (is_cjk (c))
        cjk++;
      if (g_unichar_isalpha (c))
        letters++;
    }
  return letters > 0 && 3 * cjk >= letters ? ATELIER_WRITE_TRANSLATE_TO_ENGLISH
                                           : ATELIER_WRITE_TRANSLATE_TO_CHINESE;
}

AtelierWritePrompt *
atelier_write_prompt_new (AtelierWriteAction action, AtelierWriteTone tone, const char *text)
{
  AtelierWritePrompt *prompt;
  g_autofree char *instruction = NULL;

  g_return_val_if_fail (action < G_N_ELEMENTS (actions) && action != ATELIER_WRITE_CONTINUE,
                        NULL);
  g_return_val_if_fail (action != ATELIER_WRITE_CHANGE_TONE
                        || (tone != ATELIER_TONE_NONE && tone < G_N_ELEMENTS (tones)),
                        NULL);

  if (action == ATELIER_WRITE_CHANGE_TONE)
    instruction = g_strdup_printf ("Rewrite the following text in a %s tone. Keep its "
                                   "meaning, its language and its Markdown formatting.",
                                   tones[tone]);
  else
    instruction = g_strdup (actions[action].instruction);
  prompt = g_new0 (AtelierWritePrompt, 1);
  prompt->system = g_strdup (system_prompt);
  prompt->user = g_strdup_printf ("%s Reply with the new text only.\n\nText:\n%s",
                                  instruction, text);
  return prompt;
}

void
atelier_write_prompt_free (AtelierWritePrompt *prompt)
{
  g_free (prompt->system);
  g_free (prompt->user);
  g_free (prompt);
}

gint64
atelier_write_max_tokens (AtelierWriteAction action, const char *text)
{
  /* A token is 3 to 4 bytes of English and about one CJK character (3 bytes) in the
   * tokenizers of the common models: bytes / 3 errs on the long side. */
  gint64 source_tokens = strlen (text) / 3 + 8;

  g_return_val_if_fail (action < G_N_ELEMENTS (actions), 0);
  if (action == ATELIER_WRITE_CONTINUE)
    return CONTINUE_TOKENS;
  return CLAMP (source_tokens * actions[action].length_tenths / 10 + 32, MIN_REPLY_TOKENS,
                MAX_REPLY_TOKENS);
}

static gboolean
opens_with_preamble (const char *line, gsize length, gboolean *could_still)
{
  g_autofree char *lower = g_ascii_strdown (line, length);

  *could_still = FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (preamble_openings); i++)
    {
      if (g_str_has_prefix (lower, preamble_openings[i]))
        return TRUE;
      if (g_str_has_prefix (preamble_openings[i], lower))
        *could_still = TRUE;
    }
  return FALSE;
}

static const char *
skip_space (const char *p)
{
  while (*p != '\0' && g_unichar_isspace (g_utf8_get_char (p)))
    p = g_utf8_next_char (p);
  return p;
}

gssize
atelier_write_reply_body_start (const char *reply, gboolean complete)
{
  const char *line = skip_space (reply);
  const char *newline = strchr (line, '\n');
  gsize line_length = newline != NULL ? (gsize) (newline - line) : strlen (line);
  g_autofree char *trimmed = NULL;
  gboolean could_still, opens;
  const char *body;

  if (*line == '\0')
    return complete ? (gssize) strlen (reply) : -1;
  opens = opens_with_preamble (line, line_length, &could_still);
  if (newline == NULL && !complete)
    {
      if ((opens || could_still) && line_length <= MAX_PREAMBLE_BYTES)
        return -1;
      return line - reply;
    }
  trimmed = g_strchomp (g_strndup (line, line_length));
  if (!opens || line_length > MAX_PREAMBLE_BYTES
      || !(g_str_has_suffix (trimmed, ":") || g_str_has_suffix (trimmed, "\uff1a")))
    return line - reply;
  if (newline == NULL)
    return strlen (reply);
  body = skip_space (newline);
  if (*body == '\0' && !complete)
    return -1;
  return body - reply;
}

char *
atelier_write_clean_reply (const char *reply)
{
  char *body = g_strstrip (g_strdup (reply + atelier_write_reply_body_start (reply, TRUE)));
  gsize length = strlen (body);

  for (guint i = 0; i < G_N_ELEMENTS (quotes); i++)
    {
      const char *open = quotes[i][0], *close = quotes[i][1];
      gsize open_length = strlen (open), close_length = strlen (close);
      g_autofree char *inner = NULL;

      if (length <= open_length + close_length || !g_str_has_prefix (body, open)
          || !g_str_has_suffix (body, close))
        continue;
      inner = g_strndup (body + open_length, length - open_length - close_length);
      /* "a" and "b": the marks quote parts, not the whole. */
      if (strstr (inner, open) != NULL || strstr (inner, close) != NULL)
        break;
      g_free (body);
      return g_strstrip (g_steal_pointer (&inner));
    }
  return body;
}

char *
atelier_write_asset_prompt (AtelierWriteAction action, AtelierWriteTone tone,
                            const char *source)
{
  glong n_chars = g_utf8_strlen (source, -1);
  g_autofree char *start = g_utf8_substring (source, 0, MIN (n_chars, ASSET_PROMPT_CHARS));

  g_return_val_if_fail (action < G_N_ELEMENTS (actions), NULL);
  if (action == ATELIER_WRITE_CHANGE_TONE)
    return g_strdup_printf ("%s (%s): %s", actions[action].title, tones[tone], start);
  return g_strdup_printf ("%s: %s", actions[action].title, start);
}

char *
atelier_write_parameters_json (AtelierWriteAction action, AtelierWriteTone tone,
                               const char *model, double temperature, guint64 seed,
                               gint64 tokens)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "action");
  json_builder_add_string_value (builder, atelier_write_action_to_string (action));
  json_builder_set_member_name (builder, "tone");
  if (tone == ATELIER_TONE_NONE)
    json_builder_add_null_value (builder);
  else
    json_builder_add_string_value (builder, atelier_write_tone_to_string (tone));
  json_builder_set_member_name (builder, "model");
  json_builder_add_string_value (builder, model);
  json_builder_set_member_name (builder, "temperature");
  /* Rounded to what a person sets: 0.8f is 0.800000011920929 as a double, and reads
   * back as 0.8 rounded. */
  json_builder_add_double_value (builder, round (temperature * 1000) / 1000);
  json_builder_set_member_name (builder, "seed");
  /* JSON numbers are doubles in most readers: a 64-bit seed as a number would lose
   * digits, so seeds are kept below 2^53 by the caller. */
  json_builder_add_int_value (builder, (gint64) seed);
  json_builder_set_member_name (builder, "tokens");
  json_builder_add_int_value (builder, tokens);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

static char *
format_seconds (double seconds)
{
  guint whole = (guint) ceil (seconds);

  if (whole < 60)
    /* Translators: a duration in seconds. */
    return g_strdup_printf (_("%u s"), whole);
  /* Translators: a duration in minutes and seconds. */
  return g_strdup_printf (_("%u min %u s"), whole / 60, whole % 60);
}

char *
atelier_write_progress_text (gint64 n_tokens, double decode_seconds, gint64 max_tokens)
{
  GString *text;
  double rate;

  if (n_tokens <= 0)
    return g_strdup (_("Reading the text…"));
  text = g_string_new (NULL);
  g_string_append_printf (text, ngettext ("%u token", "%u tokens", (gulong) n_tokens),
                          (guint) n_tokens);
  /* The first token ends the prompt's decoding: the speed counts the tokens after it. */
  if (n_tokens < 2 || decode_seconds <= 0)
    return g_string_free (text, FALSE);
  rate = (n_tokens - 1) / decode_seconds;
  g_string_append (text, " · ");
  g_string_append_printf (text, _("%.1f tokens/s"), rate);
  if (max_tokens > n_tokens)
    {
      g_autofree char *left = format_seconds ((max_tokens - n_tokens) / rate);

      g_string_append (text, " · ");
      /* Translators: the longest the generation can still take; %s is a duration. */
      g_string_append_printf (text, _("at most %s left"), left);
    }
  return g_string_free (text, FALSE);
}
