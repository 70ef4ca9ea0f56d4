/* libFuzzer target for the GGUF reader (README.md beside it): every input either
 * opens, with every value and every tensor byte readable, or fails with
 * AT_ERROR_INVALID_FILE. The sanitizers catch anything else. */
#include <stdint.h>
#include <stdlib.h>

#include "formats/at-gguf.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static volatile guint8 sink;

/* Reads everything the reader hands out, so that a bad pointer or length shows. */
static void
touch (AtGguf *gguf)
{
  for (guint i = 0; i < at_gguf_get_n_kv (gguf); i++)
    {
      const char *key;
      const AtGgufValue *value = at_gguf_get_kv (gguf, i, &key);
      g_autofree char *text = at_gguf_value_to_string (value, 4);
      guint32 u32;
      float f32;

      g_assert (at_gguf_find (gguf, key) == value);
      sink ^= text[0];
      if (!at_gguf_get_u32 (gguf, key, &u32, NULL) && !at_gguf_get_f32 (gguf, key, &f32, NULL))
        at_gguf_get_string (gguf, key, NULL);
      if (value->type == AT_GGUF_TYPE_ARRAY)
        for (guint64 j = 0; j < value->array.n; j++)
          {
            AtGgufValue element = at_gguf_array_get (&value->array, j);

            if (element.type == AT_GGUF_TYPE_STRING)
              for (gsize k = 0; k <= element.string.len; k++)
                sink ^= element.string.str[k];
          }
    }
  for (guint i = 0; i < at_gguf_get_n_tensors (gguf); i++)
    {
      const AtGgufTensor *t = at_gguf_get_tensor (gguf, i);
      const guint8 *bytes = t->data;

      g_assert (at_gguf_find_tensor (gguf, t->name) == t);
      sink ^= bytes[0] ^ bytes[t->size - 1];
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) bytes = g_bytes_new_static (data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = at_gguf_new_from_bytes (bytes, "fuzz.gguf", &error);

  if (gguf)
    touch (gguf);
  else if (!g_error_matches (error, AT_ERROR, AT_ERROR_INVALID_FILE))
    abort ();
  return 0;
}
