/* at-engine.h: the engine object — one GPU, one job queue. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define AT_TYPE_ENGINE (at_engine_get_type ())
G_DECLARE_FINAL_TYPE (AtEngine, at_engine, AT, ENGINE, GObject)

/* Opens the GPU chosen by device_selector (an index or a name substring; NULL for
 * $ATELIER_DEVICE or the best device). Cheap enough to call on the UI thread once. */
AtEngine *at_engine_new (const char *device_selector, GError **error);

const char *at_engine_get_device_name (AtEngine *engine);
/* TRUE when the device is a CPU implementation of Vulkan (e.g. lavapipe): the UI says
 * so plainly instead of silently running slowly. */
gboolean at_engine_is_software_device (AtEngine *engine);
/* GPU memory Atelier holds now, and the device-local total. */
guint64 at_engine_get_memory_used (AtEngine *engine, guint64 *total);

/* Loading progress from 0 to 1, delivered in the caller's main context. */
typedef void (*AtLoadProgress) (double fraction, gpointer user_data);

G_END_DECLS
