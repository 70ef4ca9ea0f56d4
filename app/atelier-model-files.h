/* atelier-model-files.h: the model files (*.gguf, *.safetensors) in a folder, listed on a
 * worker thread so that a slow disk never stalls the window. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct
{
  char *name;
  guint64 size;
} AtelierModelFile;

/* Creates the folder when it is missing. */
void atelier_model_files_list_async (const char *folder, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data);
/* An array of AtelierModelFile sorted by name. */
GPtrArray *atelier_model_files_list_finish (GAsyncResult *result, GError **error);

G_END_DECLS
