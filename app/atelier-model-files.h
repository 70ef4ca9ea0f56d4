/* atelier-model-files.h: the model files (*.gguf, *.safetensors) in a folder, listed and
 * inspected on a worker thread so that a slow disk never stalls the window. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum
{
  ATELIER_MODEL_KIND_UNKNOWN, /* unreadable, or a layout Atelier does not know */
  ATELIER_MODEL_KIND_TEXT,    /* a GGUF language model */
  ATELIER_MODEL_KIND_IMAGE,   /* a Stable Diffusion checkpoint */
  ATELIER_MODEL_KIND_PREVIEW, /* a TAESD decoder for live previews */
} AtelierModelKind;

typedef struct
{
  char *name;
  guint64 size;
  /* What the file holds, read from its header; only name and size are set when the
   * file could not be read (error then says why). */
  AtelierModelKind kind;
  const char *format;  /* "GGUF", "safetensors" (static) */
  char *family;        /* "Llama 3", "Qwen 2", "SD 1.x"; NULL when not recognised */
  char *quantization;  /* the type most weights are stored in: "Q4_K", "F16" */
  guint64 n_params;    /* elements of all tensors; 0 when unreadable */
  /* Why the file cannot be used, without the file's name ("tensor 'x' ends past the end
   * of the file", "SDXL checkpoints are not supported yet ..."); NULL when it can. */
  char *error;
} AtelierModelFile;

/* Creates the folder when it is missing. */
void atelier_model_files_list_async (const char *folder, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data);
/* An array of AtelierModelFile sorted by name. A file that cannot be read is listed with
 * its error; only a folder that cannot be read fails the listing. */
GPtrArray *atelier_model_files_list_finish (GAsyncResult *result, GError **error);

G_END_DECLS
