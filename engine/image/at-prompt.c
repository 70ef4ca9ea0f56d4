/* A scanner for the tokens of A1111's re_attention, tried in its order, and its bracket
 * stacks. One deliberate difference: A1111 multiplies its BREAK marker's weight of -1 like
 * any text inside brackets, after which the marker is no longer recognised and the word
 * "BREAK" is encoded with a negative weight; here a BREAK is always a break. */
#include "image/at-prompt.h"

#include <math.h>
#include <string.h>

#include "at-error.h"

#define ROUND_MULTIPLIER 1.1
#define SQUARE_MULTIPLIER (1 / 1.1)

static void
span_clear (gpointer data)
{
  g_free (((AtPromptSpan *) data)->text);
}

static void
append_span (GArray *spans, const char *text, gsize length, gboolean is_break)
{
  AtPromptSpan span = { g_strndup (text, length), 1.0, is_break };
  g_array_append_val (spans, span);
}

static void
multiply_range (GArray *spans, guint start, double multiplier)
{
  for (guint i = start; i < spans->len; i++)
    if (!g_array_index (spans, AtPromptSpan, i).is_break)
      g_array_index (spans, AtPromptSpan, i).weight *= multiplier;
}

/* Python's \w and \s on str, which re_break's \b and \s* use. */
static gboolean
is_word_char (gunichar c)
{
  switch (g_unichar_type (c))
    {
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
      return TRUE;
    default:
      return c == '_';
    }
}

static gboolean
is_space (gunichar c)
{
  return g_unichar_isspace (c) || c == '\v' || (c >= 0x1c && c <= 0x1f) || c == 0x85;
}

/* re.split (r"\s*\bBREAK\b\s*", text) on text[0, length), a BREAK span between the parts. */
static void
append_text (GArray *spans, const char *text, gsize length)
{
  const char *end = text + length;
  const char *part = text;
  const char *prev = NULL; /* the character before p, NULL at the start of text */

  for (const char *p = text; p < end; prev = p, p = g_utf8_next_char (p))
    {
      const char *word = p;
      while (word < end && is_space (g_utf8_get_char (word)))
        word = g_utf8_next_char (word);
      const char *before = word == p ? prev : g_utf8_prev_char (word);
      const char *after = word + 5;
      if (end - word < 5 || strncmp (word, "BREAK", 5) != 0
          || (before != NULL && is_word_char (g_utf8_get_char (before)))
          || (after < end && is_word_char (g_utf8_get_char (after))))
        continue;

      append_span (spans, part, p - part, FALSE);
      append_span (spans, "", 0, TRUE);
      while (after < end && is_space (g_utf8_get_char (after)))
        after = g_utf8_next_char (after);
      part = after;
      /* The loop goes on from the end of the match. */
      if (after == end)
        break;
      p = g_utf8_prev_char (after);
    }
  append_span (spans, part, end - part, FALSE);
}

/* Matches :([+-]?[.\d]+)\) at p, leaving the number in ASCII in number and the length of
 * the whole match in *match. Python's \d takes any decimal digit, and so does float(). */
static gboolean
match_weight (const char *p, GString *number, gsize *match)
{
  const char *q = p + 1;
  if (*p != ':')
    return FALSE;
  g_string_truncate (number, 0);
  if (*q == '+' || *q == '-')
    g_string_append_c (number, *q++);
  gsize sign = number->len;
  for (;;)
    {
      gunichar c = g_utf8_get_char (q);
      if (c == '.')
        g_string_append_c (number, '.');
      else if (g_unichar_isdigit (c))
        g_string_append_c (number, (char) ('0' + g_unichar_digit_value (c)));
      else
        break;
      q = g_utf8_next_char (q);
    }
  if (number->len == sign || *q != ')')
    return FALSE;
  *match = q + 1 - p;
  return TRUE;
}

/* float() of a string of digits and dots: at most one dot and at least one digit. */
static gboolean
parse_weight (const char *number, double *weight)
{
  const char *digits = number + (*number == '+' || *number == '-');
  const char *dot = strchr (digits, '.');
  if ((dot != NULL && strchr (dot + 1, '.') != NULL) || strspn (digits, ".") == strlen (digits))
    return FALSE;
  *weight = g_ascii_strtod (number, NULL);
  return isfinite (*weight);
}

static void
merge_equal_weights (GArray *spans)
{
  guint i = 0;
  while (i + 1 < spans->len)
    {
      AtPromptSpan *a = &g_array_index (spans, AtPromptSpan, i);
      AtPromptSpan *b = a + 1;
      if (a->is_break || b->is_break || a->weight != b->weight)
        {
          i++;
          continue;
        }
      char *text = g_strconcat (a->text, b->text, NULL);
      g_free (a->text);
      a->text = text;
      g_array_remove_index (spans, i + 1);
    }
}

GArray *
at_prompt_parse_attention (const char *prompt, GError **error)
{
  g_autofree char *valid = g_utf8_make_valid (prompt, -1);
  g_autoptr (GArray) spans = g_array_new (FALSE, FALSE, sizeof (AtPromptSpan));
  g_autoptr (GArray) round = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr (GArray) square = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr (GString) number = g_string_new (NULL);
  g_array_set_clear_func (spans, span_clear);

  const char *p = valid;
  while (*p != '\0')
    {
      gsize match;
      if (p[0] == '\\' && p[1] != '\0' && strchr ("()[]\\", p[1]) != NULL)
        {
          append_span (spans, p + 1, 1, FALSE);
          p += 2;
        }
      else if (p[0] == '\\')
        {
          /* A lone backslash escapes nothing and vanishes, as in A1111. */
          append_span (spans, "", 0, FALSE);
          p++;
        }
      else if (*p == '(' || *p == '[')
        {
          guint position = spans->len;
          g_array_append_val (*p == '(' ? round : square, position);
          p++;
        }
      else if (match_weight (p, number, &match) && round->len > 0)
        {
          double weight;
          if (!parse_weight (number->str, &weight))
            {
              g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                           "prompt: the weight '%.*s' is not a number", (int) (match - 2),
                           p + 1);
              return NULL;
            }
          multiply_range (spans, g_array_index (round, guint, round->len - 1), weight);
          g_array_set_size (round, round->len - 1);
          p += match;
        }
      else if ((*p == ')' && round->len > 0) || (*p == ']' && square->len > 0))
        {
          GArray *stack = *p == ')' ? round : square;
          multiply_range (spans, g_array_index (stack, guint, stack->len - 1),
                          *p == ')' ? ROUND_MULTIPLIER : SQUARE_MULTIPLIER);
          g_array_set_size (stack, stack->len - 1);
          p++;
        }
      else if (match_weight (p, number, &match))
        {
          append_text (spans, p, match);
          p += match;
        }
      else if (strchr (":)]", *p) != NULL)
        {
          append_text (spans, p, 1);
          p++;
        }
      else
        {
          gsize length = strcspn (p, "\\()[]:");
          append_text (spans, p, length);
          p += length;
        }
    }

  for (guint i = 0; i < round->len; i++)
    multiply_range (spans, g_array_index (round, guint, i), ROUND_MULTIPLIER);
  for (guint i = 0; i < square->len; i++)
    multiply_range (spans, g_array_index (square, guint, i), SQUARE_MULTIPLIER);
  if (spans->len == 0)
    append_span (spans, "", 0, FALSE);
  merge_equal_weights (spans);
  return g_steal_pointer (&spans);
}
