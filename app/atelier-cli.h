/* atelier-cli.h: sub-commands of the command-line front end. */
#pragma once

#include <glib.h>

#include "gpu/at-gpu.h"

/* Device-to-device copy bandwidth (bytes read + written per second, / 1e9), printed
 * as the roof; 0 with error set on failure. */
double atelier_cli_measure_copy_bandwidth (AtGpu *gpu, guint reps, GError **error);

int atelier_cli_bench (int argc, char **argv);
int atelier_cli_bench_image (int argc, char **argv);
int atelier_cli_bench_text (int argc, char **argv);
int atelier_cli_chat (int argc, char **argv);
int atelier_cli_image (int argc, char **argv);
int atelier_cli_tokenize (int argc, char **argv);
int atelier_cli_text (int argc, char **argv);
