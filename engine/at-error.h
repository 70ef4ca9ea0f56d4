/* at-error.h: the engine's one error domain. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define AT_ERROR (at_error_quark ())

typedef enum {
  AT_ERROR_FAILED,           /* anything without a better code */
  AT_ERROR_NO_DEVICE,        /* no usable Vulkan driver or device */
  AT_ERROR_UNSUPPORTED,      /* the device or model lacks something we need */
  AT_ERROR_OUT_OF_MEMORY,    /* GPU or host memory exhausted, or a size past a limit */
  AT_ERROR_DEVICE_LOST,      /* the GPU reset or the driver gave up */
  AT_ERROR_INVALID_FILE,     /* a model or image file is malformed */
  AT_ERROR_INVALID_ARGUMENT, /* impossible parameters from the caller */
} AtError;

GQuark at_error_quark (void);

G_END_DECLS
