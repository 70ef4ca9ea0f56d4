/* at-gguf-writer.h: writes GGUF v3 files (test fixtures, generated models).
 *
 * Metadata and tensors are written in the order they are added. Adding a key or a
 * tensor name twice, or tensor data of the wrong size, is a programmer error.
 */
#pragma once

#include "formats/at-gguf.h"

G_BEGIN_DECLS

typedef struct _AtGgufWriter AtGgufWriter;

AtGgufWriter *at_gguf_writer_new (void);
void at_gguf_writer_free (AtGgufWriter *writer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtGgufWriter, at_gguf_writer_free)

/* Adds general.alignment and aligns the tensor data to it (default 32). */
void at_gguf_writer_set_alignment (AtGgufWriter *writer, guint32 alignment);

/* Any scalar or string value (value->string.len bytes of value->string.str), or an
 * array described by value->array: its elements are taken from array.strings and
 * array.lengths (lengths may be NULL for NUL-terminated strings) or from array.data
 * packed in host order. Everything is copied. */
void at_gguf_writer_add_value (AtGgufWriter *writer, const char *key, const AtGgufValue *value);
void at_gguf_writer_add_u32 (AtGgufWriter *writer, const char *key, guint32 value);
void at_gguf_writer_add_i32 (AtGgufWriter *writer, const char *key, gint32 value);
void at_gguf_writer_add_f32 (AtGgufWriter *writer, const char *key, float value);
void at_gguf_writer_add_bool (AtGgufWriter *writer, const char *key, gboolean value);
void at_gguf_writer_add_string (AtGgufWriter *writer, const char *key, const char *value);
/* n packed elements of a numeric or bool type, in host order. */
void at_gguf_writer_add_array (AtGgufWriter *writer, const char *key, AtGgufType type,
                               const void *elements, gsize n);
void at_gguf_writer_add_string_array (AtGgufWriter *writer, const char *key,
                                      const char *const *strings, gsize n);

/* A tensor of n_dims (1..4) dimensions ne[] (ne[0] innermost); data holds exactly its
 * bytes and is referenced, not copied. */
void at_gguf_writer_add_tensor (AtGgufWriter *writer, const char *name, AtType type,
                                guint n_dims, const gint64 *ne, GBytes *data);

/* The whole file in memory. */
GBytes *at_gguf_writer_to_bytes (AtGgufWriter *writer);
/* Writes path atomically: a temporary file beside it, renamed over it once complete. */
gboolean at_gguf_writer_write (AtGgufWriter *writer, const char *path, GError **error);

G_END_DECLS
