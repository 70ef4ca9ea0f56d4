/* at-shader-blobs.h: SPIR-V modules embedded at build time (shaders/embed-spirv.py). */
#pragma once

#include <glib.h>

typedef struct {
  const char *name;     /* variant name from shaders/meson.build */
  const guint32 *code;
  gsize size;           /* bytes */
} AtShaderBlob;

/* Sorted by name. */
extern const AtShaderBlob at_shader_blobs[];
extern const guint at_n_shader_blobs;
