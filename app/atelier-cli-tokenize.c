/* atelier-cli tokenize: the token ids of a text, as the model's vocabulary encodes it. */
#include <stdio.h>

#include "atelier-cli.h"
#include "formats/at-gguf.h"
#include "text/at-tokenizer.h"

int
atelier_cli_tokenize (int argc, char **argv)
{
  g_autofree char *model_path = NULL;
  gboolean bos = FALSE, parse_special = FALSE;
  GOptionEntry entries[]
      = { { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path, "GGUF model or vocabulary",
            "MODEL" },
          { "bos", 0, 0, G_OPTION_ARG_NONE, &bos, "Add BOS/EOS as the vocabulary asks", NULL },
          { "special", 0, 0, G_OPTION_ARG_NONE, &parse_special,
            "Read control tokens written in TEXT (<|im_start|>) as their ids", NULL },
          { NULL } };
  g_autoptr (GOptionContext) options = g_option_context_new ("TEXT");
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = NULL;
  g_autoptr (AtTokenizer) tok = NULL;
  g_autoptr (GArray) ids = NULL;
  g_autoptr (GString) line = g_string_new (NULL);

  g_option_context_set_summary (options, "Prints the token ids of TEXT on one line.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("atelier-cli tokenize: %s\n", error->message);
      return 2;
    }
  if (model_path == NULL || argc != 2)
    {
      g_printerr ("Usage: atelier-cli tokenize -m MODEL.gguf TEXT [--bos]\n");
      return 2;
    }
  gguf = at_gguf_open (model_path, &error);
  if (gguf != NULL)
    tok = at_tokenizer_new_from_gguf (gguf, &error);
  if (tok == NULL)
    {
      g_printerr ("atelier-cli tokenize: %s\n", error->message);
      return 1;
    }
  ids = at_tokenizer_encode (tok, argv[1], -1,
                             (bos ? AT_TOKENIZE_ADD_SPECIAL : 0)
                                 | (parse_special ? AT_TOKENIZE_PARSE_SPECIAL : 0));
  for (guint i = 0; i < ids->len; i++)
    g_string_append_printf (line, "%s%d", i > 0 ? " " : "", g_array_index (ids, gint32, i));
  g_print ("%s\n", line->str);
  return 0;
}
