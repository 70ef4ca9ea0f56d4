/* main.c: the studio's entry point. */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "atelier-application.h"

int
main (int argc, char **argv)
{
  g_autoptr (AtelierApplication) app = NULL;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  app = atelier_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
