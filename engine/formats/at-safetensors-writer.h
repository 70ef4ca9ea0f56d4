/* at-safetensors-writer.h: writes safetensors files (fixtures: tiny checkpoints, LoRAs). */
#pragma once

#include "at-types.h"

G_BEGIN_DECLS

typedef struct _AtSafetensorsWriter AtSafetensorsWriter;

AtSafetensorsWriter *at_safetensors_writer_new (void);
void at_safetensors_writer_free (AtSafetensorsWriter *writer);

/* A "__metadata__" entry; a second value for a key replaces the first. */
void at_safetensors_writer_set_metadata (AtSafetensorsWriter *writer, const char *key,
                                         const char *value);
/* Adds a tensor of type F32, F16 or BF16 whose n_dims sizes ne are in ggml order (ne[0]
 * innermost, written as the last safetensors dimension); data holds exactly its bytes and is
 * kept, not copied. Tensors are written in the order they are added. */
gboolean at_safetensors_writer_add_tensor (AtSafetensorsWriter *writer, const char *name,
                                           AtType type, guint n_dims, const gint64 *ne,
                                           GBytes *data, GError **error);
/* Writes the file atomically: a temporary file renamed over path once complete. */
gboolean at_safetensors_writer_write (AtSafetensorsWriter *writer, const char *path,
                                      GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtSafetensorsWriter, at_safetensors_writer_free)

G_END_DECLS
