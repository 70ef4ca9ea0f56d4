/* atelier-cli bench: GPU speed measurements that print numbers. */
#include "atelier-cli.h"

int
atelier_cli_bench (int argc, char **argv)
{
  g_printerr ("atelier-cli bench: not built yet\n");
  return 1;
}
