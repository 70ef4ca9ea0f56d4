/* at-gguf.h: GGUF (v2 and v3) model files, read through mmap.
 *
 * Opening a file validates all of it before anything is handed out: header, every
 * metadata value, every tensor info against the file's size, types, shapes and the
 * data alignment. Afterwards lookups cannot fail on a malformed file; they only
 * report missing keys and type mismatches. Metadata strings are copied (and
 * NUL-terminated); tensor data stays in the map. Little-endian files only.
 */
#pragma once

#include <glib.h>

#include "at-error.h"
#include "at-types.h"

G_BEGIN_DECLS

/* Value types, with GGUF's ids. */
typedef enum {
  AT_GGUF_TYPE_UINT8 = 0,
  AT_GGUF_TYPE_INT8 = 1,
  AT_GGUF_TYPE_UINT16 = 2,
  AT_GGUF_TYPE_INT16 = 3,
  AT_GGUF_TYPE_UINT32 = 4,
  AT_GGUF_TYPE_INT32 = 5,
  AT_GGUF_TYPE_FLOAT32 = 6,
  AT_GGUF_TYPE_BOOL = 7,
  AT_GGUF_TYPE_STRING = 8,
  AT_GGUF_TYPE_ARRAY = 9,
  AT_GGUF_TYPE_UINT64 = 10,
  AT_GGUF_TYPE_INT64 = 11,
  AT_GGUF_TYPE_FLOAT64 = 12,
  AT_GGUF_N_TYPES
} AtGgufType;

#define AT_GGUF_DEFAULT_ALIGNMENT 32

/* An array value. Elements of numeric and bool arrays are packed, little-endian and
 * unaligned in the map (read them with at_gguf_array_get and friends); string arrays
 * come as NUL-terminated copies with their byte lengths (a string may hold a NUL). */
typedef struct {
  AtGgufType type; /* element type; never ARRAY */
  guint64 n;
  const guint8 *data;          /* numeric and bool arrays, else NULL */
  const char *const *strings;  /* string arrays, else NULL */
  const gsize *lengths;        /* string arrays, else NULL */
} AtGgufArray;

typedef struct {
  AtGgufType type;
  union {
    guint64 u64;  /* UINT8, UINT16, UINT32, UINT64; BOOL as 0 or 1 */
    gint64 i64;   /* INT8, INT16, INT32, INT64 */
    double f64;   /* FLOAT32, FLOAT64 */
    struct {
      const char *str; /* NUL-terminated */
      gsize len;
    } string;
    AtGgufArray array;
  };
} AtGgufValue;

typedef struct {
  const char *name;
  AtType type;
  guint n_dims;     /* 1..4 */
  gint64 ne[4];     /* elements per dimension, ne[0] innermost; 1 past n_dims */
  guint64 offset;   /* absolute byte offset in the file, aligned */
  gsize size;       /* bytes */
  const void *data; /* in the map, valid while the AtGguf lives */
} AtGgufTensor;

typedef struct _AtGguf AtGguf;

/* Maps and validates path; AT_ERROR_INVALID_FILE names the file and the problem. */
AtGguf *at_gguf_open (const char *path, GError **error);
/* The same over bytes in memory (kept referenced); name is used in messages. */
AtGguf *at_gguf_new_from_bytes (GBytes *bytes, const char *name, GError **error);
void at_gguf_free (AtGguf *gguf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtGguf, at_gguf_free)

const char *at_gguf_get_name (AtGguf *gguf);
guint32 at_gguf_get_version (AtGguf *gguf);
guint32 at_gguf_get_alignment (AtGguf *gguf);
/* Where tensor data starts (tensor offsets in the file are relative to it). */
guint64 at_gguf_get_data_offset (AtGguf *gguf);

/* Metadata in file order, for listing. */
guint at_gguf_get_n_kv (AtGguf *gguf);
const AtGgufValue *at_gguf_get_kv (AtGguf *gguf, guint index, const char **key);
/* NULL when absent: for optional keys. */
const AtGgufValue *at_gguf_find (AtGguf *gguf, const char *key);

/* Typed getters: FALSE with AT_ERROR_INVALID_FILE when the key is missing or holds
 * another type. The integer getters take any integer type whose value fits; the
 * float getter takes FLOAT32 and FLOAT64. */
gboolean at_gguf_get_u32 (AtGguf *gguf, const char *key, guint32 *out, GError **error);
gboolean at_gguf_get_u64 (AtGguf *gguf, const char *key, guint64 *out, GError **error);
gboolean at_gguf_get_i32 (AtGguf *gguf, const char *key, gint32 *out, GError **error);
gboolean at_gguf_get_f32 (AtGguf *gguf, const char *key, float *out, GError **error);
gboolean at_gguf_get_bool (AtGguf *gguf, const char *key, gboolean *out, GError **error);
/* NUL-terminated, owned by gguf. */
const char *at_gguf_get_string (AtGguf *gguf, const char *key, GError **error);
/* An array whose elements are of element_type, owned by gguf. */
const AtGgufArray *at_gguf_get_array (AtGguf *gguf, const char *key, AtGgufType element_type,
                                      GError **error);

/* Element i of an array as a scalar value (a string element points at the copy). */
AtGgufValue at_gguf_array_get (const AtGgufArray *array, guint64 i);
float at_gguf_array_get_f32 (const AtGgufArray *array, guint64 i);
gint32 at_gguf_array_get_i32 (const AtGgufArray *array, guint64 i);

/* "uint32", "string", ... */
const char *at_gguf_type_name (AtGgufType type);
/* Bytes of one element in the file; 0 for STRING and ARRAY (variable). */
gsize at_gguf_type_size (AtGgufType type);
/* A short human-readable form of a value; arrays show at most max_elements. */
char *at_gguf_value_to_string (const AtGgufValue *value, guint max_elements);

/* Tensors in file order, and by name (NULL when absent). */
guint at_gguf_get_n_tensors (AtGguf *gguf);
const AtGgufTensor *at_gguf_get_tensor (AtGguf *gguf, guint index);
const AtGgufTensor *at_gguf_find_tensor (AtGguf *gguf, const char *name);

G_END_DECLS
