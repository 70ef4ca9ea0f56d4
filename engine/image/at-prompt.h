/* at-prompt.h: AUTOMATIC1111's prompt emphasis syntax.
 *
 *   (text)        weight x 1.1, nesting multiplies: ((text)) is x 1.21
 *   (text:1.5)    weight x 1.5
 *   [text]        weight / 1.1
 *   \( \) \[ \] \\   the literal characters
 *   BREAK         ends the current 75-token chunk
 *
 * Unbalanced brackets behave as in A1111: an unmatched closing one is text, an unclosed
 * opening one applies to the rest of the prompt.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *text;
  double weight;
  gboolean is_break; /* a BREAK: text and weight are empty and 1 */
} AtPromptSpan;

/* The prompt as spans of text with their weights, neighbours of equal weight merged, as
 * parse_prompt_attention() returns them; BREAKs are spans of their own. Fails with
 * AT_ERROR_INVALID_ARGUMENT for a weight that is not a finite number, such as (a:1.2.3). */
GArray *at_prompt_parse_attention (const char *prompt, GError **error);

G_END_DECLS
