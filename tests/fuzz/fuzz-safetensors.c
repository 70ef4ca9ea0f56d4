/* libFuzzer target for the safetensors header parser: any input must give a reader or a
 * GError, never a crash, a leak or an out-of-bounds read. */
#include "formats/at-safetensors.h"

int LLVMFuzzerTestOneInput (const guint8 *data, gsize size);

int
LLVMFuzzerTestOneInput (const guint8 *data, gsize size)
{
  g_autoptr (GBytes) bytes = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_new_from_bytes (bytes, "fuzz.safetensors", &error);

  g_assert ((st == NULL) != (error == NULL));
  if (st != NULL)
    for (guint i = 0; i < at_safetensors_get_n_tensors (st); i++)
      {
        /* Touch every tensor's first and last byte so ASan checks the ranges. */
        const AtSafetensorsTensor *t = at_safetensors_get_tensor (st, i);
        volatile guint8 sink = 0;
        if (t->size > 0)
          sink = t->data[0] ^ t->data[t->size - 1];
        (void) sink;
        g_assert (at_safetensors_lookup (st, t->name) == t);
      }
  return 0;
}
