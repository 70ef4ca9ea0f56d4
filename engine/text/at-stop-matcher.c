/* at-stop-matcher.c: the held tail is always the longest suffix of the text given so
 * far that is a proper prefix of a stop string, so a stop string can only begin inside
 * it and the search never looks at text already given out. */
#include "at-stop-matcher.h"

#include <string.h>

struct _AtStopMatcher
{
  GPtrArray *stops;
  GString *held;
  int stopped; /* index into stops, or -1 */
};

AtStopMatcher *
at_stop_matcher_new (const char *const *stops)
{
  AtStopMatcher *m = g_new0 (AtStopMatcher, 1);

  m->stops = g_ptr_array_new_with_free_func (g_free);
  for (gsize i = 0; stops != NULL && stops[i] != NULL; i++)
    if (stops[i][0] != '\0')
      g_ptr_array_add (m->stops, g_strdup (stops[i]));
  m->held = g_string_new (NULL);
  m->stopped = -1;
  return m;
}

void
at_stop_matcher_free (AtStopMatcher *m)
{
  if (m == NULL)
    return;
  g_ptr_array_unref (m->stops);
  g_string_free (m->held, TRUE);
  g_free (m);
}

/* The length of the longest suffix of held that is a proper prefix of a stop string. */
static gsize
pending_length (AtStopMatcher *m)
{
  gsize best = 0;

  for (guint i = 0; i < m->stops->len; i++)
    {
      const char *stop = m->stops->pdata[i];
      gsize len = MIN (strlen (stop) - 1, m->held->len);

      for (; len > best; len--)
        if (memcmp (m->held->str + m->held->len - len, stop, len) == 0)
          {
            best = len;
            break;
          }
    }
  return best;
}

char *
at_stop_matcher_push (AtStopMatcher *m, const char *text, gboolean *stopped)
{
  if (m->stopped >= 0)
    {
      if (stopped != NULL)
        *stopped = TRUE;
      return g_strdup ("");
    }
  g_string_append (m->held, text);

  /* The earliest stop string wins: everything before it is the text. */
  const char *first = NULL;
  for (guint i = 0; i < m->stops->len; i++)
    {
      const char *at = strstr (m->held->str, m->stops->pdata[i]);
      if (at != NULL && (first == NULL || at < first))
        {
          first = at;
          m->stopped = i;
        }
    }
  if (stopped != NULL)
    *stopped = first != NULL;
  if (first != NULL)
    {
      char *before = g_strndup (m->held->str, first - m->held->str);
      g_string_truncate (m->held, 0);
      return before;
    }

  gsize ready = m->held->len - pending_length (m);
  char *out = g_strndup (m->held->str, ready);
  g_string_erase (m->held, 0, ready);
  return out;
}

char *
at_stop_matcher_flush (AtStopMatcher *m)
{
  char *rest = g_strdup (m->held->str);

  g_string_truncate (m->held, 0);
  m->stopped = -1;
  return rest;
}

const char *
at_stop_matcher_get_stop (AtStopMatcher *m)
{
  return m->stopped >= 0 ? m->stops->pdata[m->stopped] : NULL;
}
