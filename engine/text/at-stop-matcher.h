/* at-stop-matcher.h: stop strings over streamed text.
 *
 * Generated text arrives a token's worth at a time; a stop string may span several
 * pieces. The matcher holds back the longest tail that could still become a stop
 * string and gives out the rest at once, so the caller never shows text that a stop
 * string later takes back. Text given as valid UTF-8 comes out as valid UTF-8: a held
 * tail starts where a stop string starts, on a character boundary.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _AtStopMatcher AtStopMatcher;

/* stops: NULL-terminated; empty strings are ignored; NULL or none: nothing stops. */
AtStopMatcher *at_stop_matcher_new (const char *const *stops);
void at_stop_matcher_free (AtStopMatcher *m);

/* Feeds text (NUL-terminated) and returns the text now safe to show (often "", never
 * NULL; free with g_free). Once a stop string is complete, returns what came before it
 * and not yet given, and sets *stopped (may be NULL; read it with
 * at_stop_matcher_get_stop too); later pushes give "". */
char *at_stop_matcher_push (AtStopMatcher *m, const char *text, gboolean *stopped);
/* The end of the stream: what is still held back ("" when stopped); the matcher starts
 * over. */
char *at_stop_matcher_flush (AtStopMatcher *m);
/* The stop string that ended the text, or NULL while none has. */
const char *at_stop_matcher_get_stop (AtStopMatcher *m);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtStopMatcher, at_stop_matcher_free)

G_END_DECLS
