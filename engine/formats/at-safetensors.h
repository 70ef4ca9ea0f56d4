/* at-safetensors.h: a safetensors file read through mmap, its header validated in full.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON (an object mapping tensor
 * names to {dtype, shape, data_offsets}, plus an optional "__metadata__" object of strings),
 * then the data section that data_offsets [begin, end) are relative to.
 */
#pragma once

#include "at-types.h"

G_BEGIN_DECLS

typedef struct _AtSafetensors AtSafetensors;

typedef struct {
  const char *name;
  const char *dtype;  /* as the file spells it: "F16", "F8_E4M3" */
  gboolean supported; /* dtype is one Atelier computes with: F32, F16 or BF16 */
  AtType type;        /* meaningful only when supported */
  guint n_dims;
  const gint64 *ne;   /* n_dims sizes in ggml order: ne[0] is the last safetensors dimension */
  gint64 n_elements;  /* product of the sizes (1 for a scalar) */
  gsize offset;       /* bytes from the start of the file */
  gsize size;         /* bytes */
  const guint8 *data; /* inside the mapping; valid while the AtSafetensors lives */
} AtSafetensorsTensor;

/* Every problem with the file is an AT_ERROR_INVALID_FILE naming the file. Tensors whose
 * dtype is not supported are kept (marked unsupported) so that only a loader that needs
 * them fails, through at_safetensors_tensor_check_supported(). */
AtSafetensors *at_safetensors_open (const char *path, GError **error);
/* The same over bytes already in memory; display_name stands for the file in messages. */
AtSafetensors *at_safetensors_new_from_bytes (GBytes *bytes, const char *display_name,
                                              GError **error);
void at_safetensors_free (AtSafetensors *st);

/* The file's name as messages show it. */
const char *at_safetensors_get_name (AtSafetensors *st);
/* NULL when there is no such tensor. */
const AtSafetensorsTensor *at_safetensors_lookup (AtSafetensors *st, const char *name);
/* Tensors sorted by name, for iteration. */
guint at_safetensors_get_n_tensors (AtSafetensors *st);
const AtSafetensorsTensor *at_safetensors_get_tensor (AtSafetensors *st, guint index);
/* "__metadata__" entries; NULL when the key is absent. */
const char *at_safetensors_get_metadata (AtSafetensors *st, const char *key);
/* Sorted metadata keys, NULL-terminated, owned by st. */
const char *const *at_safetensors_get_metadata_keys (AtSafetensors *st);
/* FALSE with "model.safetensors: tensor 'x' has dtype F8_E4M3, not supported" unless the
 * tensor's dtype is supported. */
gboolean at_safetensors_tensor_check_supported (AtSafetensors *st, const AtSafetensorsTensor *t,
                                                GError **error);

/* Makes tensor `name` read data (exactly its size in bytes, so of its dtype and shape)
 * instead of the file's bytes until reset: its data pointer then points into data, which
 * is kept. This is how LoRA weights are merged in before models upload the tensors.
 * AT_ERROR_INVALID_ARGUMENT for an unknown tensor or a wrong size. */
gboolean at_safetensors_set_tensor_data (AtSafetensors *st, const char *name, GBytes *data,
                                         GError **error);
/* Every replaced tensor reads the file's bytes again. */
void at_safetensors_reset_tensor_data (AtSafetensors *st);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtSafetensors, at_safetensors_free)

G_END_DECLS
