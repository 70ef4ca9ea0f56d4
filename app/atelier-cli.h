/* atelier-cli.h: sub-commands of the command-line front end. */
#pragma once

#include <glib.h>

int atelier_cli_bench (int argc, char **argv);
int atelier_cli_tokenize (int argc, char **argv);
int atelier_cli_text (int argc, char **argv);
