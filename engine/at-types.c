#include "at-types.h"

#include "at-error.h"

G_DEFINE_QUARK (at-error-quark, at_error)

/* Block layouts as in GGUF/ggml: QK_K = 256 super-blocks for the K-quants. */
static const AtTypeInfo type_infos[AT_TYPE_COUNT] = {
  [AT_TYPE_F32] = { "f32", 1, 4 },
  [AT_TYPE_F16] = { "f16", 1, 2 },
  [AT_TYPE_BF16] = { "bf16", 1, 2 },
  [AT_TYPE_Q4_0] = { "q4_0", 32, 2 + 16 },
  [AT_TYPE_Q4_1] = { "q4_1", 32, 2 + 2 + 16 },
  [AT_TYPE_Q5_0] = { "q5_0", 32, 2 + 4 + 16 },
  [AT_TYPE_Q5_1] = { "q5_1", 32, 2 + 2 + 4 + 16 },
  [AT_TYPE_Q8_0] = { "q8_0", 32, 2 + 32 },
  [AT_TYPE_Q2_K] = { "q2_K", 256, 16 + 64 + 2 + 2 },
  [AT_TYPE_Q3_K] = { "q3_K", 256, 32 + 64 + 12 + 2 },
  [AT_TYPE_Q4_K] = { "q4_K", 256, 2 + 2 + 12 + 128 },
  [AT_TYPE_Q5_K] = { "q5_K", 256, 2 + 2 + 12 + 32 + 128 },
  [AT_TYPE_Q6_K] = { "q6_K", 256, 128 + 64 + 16 + 2 },
  [AT_TYPE_I32] = { "i32", 1, 4 },
};

const AtType at_all_types[] = {
  AT_TYPE_F32, AT_TYPE_F16, AT_TYPE_Q4_0, AT_TYPE_Q4_1, AT_TYPE_Q5_0, AT_TYPE_Q5_1,
  AT_TYPE_Q8_0, AT_TYPE_Q2_K, AT_TYPE_Q3_K, AT_TYPE_Q4_K, AT_TYPE_Q5_K, AT_TYPE_Q6_K,
  AT_TYPE_BF16, AT_TYPE_I32,
};
const guint at_n_all_types = G_N_ELEMENTS (at_all_types);

const AtTypeInfo *
at_type_info (guint type)
{
  if (type >= AT_TYPE_COUNT || type_infos[type].name == NULL)
    return NULL;
  return &type_infos[type];
}

gboolean
at_type_is_valid (guint type)
{
  return at_type_info (type) != NULL;
}

/* Types that can hold weights (everything but the integer types). */
gboolean
at_type_is_weight (AtType type)
{
  return at_type_is_valid (type) && type != AT_TYPE_I32;
}

gboolean
at_type_is_quantized (AtType type)
{
  return at_type_info (type)->block_size > 1;
}

const char *
at_type_name (AtType type)
{
  const AtTypeInfo *info = at_type_info (type);
  return info ? info->name : "unknown";
}

gsize
at_type_row_size (AtType type, gint64 n)
{
  const AtTypeInfo *info = at_type_info (type);
  g_return_val_if_fail (info != NULL && n % info->block_size == 0, 0);
  return (gsize) (n / info->block_size) * info->type_size;
}

int
at_type_from_name (const char *name)
{
  for (guint i = 0; i < AT_TYPE_COUNT; i++)
    if (type_infos[i].name && g_ascii_strcasecmp (type_infos[i].name, name) == 0)
      return (int) i;
  return -1;
}
