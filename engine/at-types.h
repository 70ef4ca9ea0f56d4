/* at-types.h: element types of tensors, with GGUF's type ids and block layouts. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Values are GGUF's (ggml_type) so that tensor infos map one to one. */
typedef enum {
  AT_TYPE_F32 = 0,
  AT_TYPE_F16 = 1,
  AT_TYPE_Q4_0 = 2,
  AT_TYPE_Q4_1 = 3,
  AT_TYPE_Q5_0 = 6,
  AT_TYPE_Q5_1 = 7,
  AT_TYPE_Q8_0 = 8,
  AT_TYPE_Q2_K = 10,
  AT_TYPE_Q3_K = 11,
  AT_TYPE_Q4_K = 12,
  AT_TYPE_Q5_K = 13,
  AT_TYPE_Q6_K = 14,
  AT_TYPE_I32 = 26,
  AT_TYPE_BF16 = 30,
  AT_TYPE_COUNT = 31
} AtType;

typedef struct {
  const char *name;  /* as GGUF tools print it: "q4_K" */
  guint block_size;  /* elements per block (1 for plain types) */
  guint type_size;   /* bytes per block */
} AtTypeInfo;

/* NULL for ids that are not (yet) supported types. */
const AtTypeInfo *at_type_info (guint type);
gboolean at_type_is_valid (guint type);
gboolean at_type_is_quantized (AtType type);
gboolean at_type_is_weight (AtType type);
const char *at_type_name (AtType type);
/* Bytes of a row of n elements; n must be a multiple of the block size. */
gsize at_type_row_size (AtType type, gint64 n);
/* The type named by name (case-insensitive), or -1. */
int at_type_from_name (const char *name);

/* Every supported type, in id order. */
extern const AtType at_all_types[];
extern const guint at_n_all_types;

G_END_DECLS
