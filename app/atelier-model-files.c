/* atelier-model-files.c: listing the models folder and reading each file's header in a
 * GTask thread: opening a multi-gigabyte file maps it and walks its tensor table. */
#include <errno.h>
#include <string.h>

#include "at-error.h"
#include "atelier-model-files.h"
#include "formats/at-gguf.h"
#include "formats/at-safetensors.h"
#include "image/at-sd-checkpoint.h"
#include "text/at-text-model.h"

static void
model_file_free (gpointer data)
{
  AtelierModelFile *file = data;

  g_free (file->name);
  g_free (file->family);
  g_free (file->quantization);
  g_free (file->error);
  g_free (file);
}

static int
compare_by_name (gconstpointer a, gconstpointer b)
{
  const AtelierModelFile *fa = *(AtelierModelFile *const *) a;
  const AtelierModelFile *fb = *(AtelierModelFile *const *) b;

  return g_utf8_collate (fa->name, fb->name);
}

static gboolean
is_model_file (const char *name)
{
  return g_str_has_suffix (name, ".gguf") || g_str_has_suffix (name, ".safetensors");
}

/* The readers' messages start with the file's name, which the row already shows. */
static void
set_error (AtelierModelFile *file, const char *path, const GError *error)
{
  g_autofree char *display = g_filename_display_name (path);
  g_autofree char *base = g_filename_display_basename (path);
  const char *message = error->message;

  if (g_str_has_prefix (message, display) && g_str_has_prefix (message + strlen (display), ": "))
    message += strlen (display) + 2;
  else if (g_str_has_prefix (message, base) && g_str_has_prefix (message + strlen (base), ": "))
    message += strlen (base) + 2;
  file->error = g_strdup (message);
}

/* Element counts per type, to find the type most of the weights are stored in. */
typedef struct
{
  GHashTable *counts; /* type name -> guint64 elements, as pointer-sized integers */
  guint64 best_count;
  const char *best;
} TypeCounter;

static void
type_counter_init (TypeCounter *counter)
{
  *counter = (TypeCounter) { .counts = g_hash_table_new (g_str_hash, g_str_equal) };
}

/* The winning type in capitals ("Q4_K", "F16"), or NULL when nothing was counted. */
static char *
type_counter_finish (TypeCounter *counter)
{
  g_hash_table_unref (counter->counts);
  return counter->best != NULL ? g_ascii_strup (counter->best, -1) : NULL;
}

static void
type_counter_add (TypeCounter *counter, const char *type, guint64 n)
{
  guint64 total = n + GPOINTER_TO_SIZE (g_hash_table_lookup (counter->counts, type));

  g_hash_table_insert (counter->counts, (gpointer) type, GSIZE_TO_POINTER ((gsize) total));
  if (total > counter->best_count)
    {
      counter->best_count = total;
      counter->best = type;
    }
}

static guint64
tensor_elements (const gint64 *ne, guint n_dims)
{
  guint64 n = 1;

  for (guint d = 0; d < n_dims; d++)
    n *= (guint64) ne[d];
  return n;
}

/* "Llama 3" for the byte-level BPE vocabulary Llama 3 brought, "Llama" for the
 * SentencePiece ones (Llama 2, TinyLlama, Mistral), "Qwen 2" for qwen2. */
static char *
gguf_family (AtGguf *gguf, const char *arch)
{
  const AtGgufValue *tokenizer = at_gguf_find (gguf, "tokenizer.ggml.model");

  if (g_str_equal (arch, "llama"))
    return g_strdup (tokenizer != NULL && tokenizer->type == AT_GGUF_TYPE_STRING
                     && g_str_equal (tokenizer->string.str, "gpt2") ? "Llama 3" : "Llama");
  if (g_str_has_prefix (arch, "qwen") && g_ascii_isdigit (arch[4]))
    return g_strdup_printf ("Qwen %s", arch + 4);
  return g_strdup (arch);
}

static void
inspect_gguf (AtelierModelFile *file, const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGguf) gguf = at_gguf_open (path, &error);
  AtTextModelFile model = { 0 };
  TypeCounter counter;
  const char *arch;

  if (gguf == NULL)
    {
      set_error (file, path, error);
      return;
    }
  arch = at_gguf_get_string (gguf, "general.architecture", &error);
  if (arch == NULL)
    {
      set_error (file, path, error);
      return;
    }
  file->family = gguf_family (gguf, arch);

  type_counter_init (&counter);
  for (guint i = 0; i < at_gguf_get_n_tensors (gguf); i++)
    {
      const AtGgufTensor *t = at_gguf_get_tensor (gguf, i);
      guint64 n = tensor_elements ((const gint64 *) t->ne, t->n_dims);

      file->n_params += n;
      /* Norms and biases stay F32 in every quantized file: only matrices tell. */
      if (t->n_dims >= 2)
        type_counter_add (&counter, at_type_name (t->type), n);
    }
  file->quantization = type_counter_finish (&counter);

  if (!at_text_model_file_init (&model, gguf, &error))
    set_error (file, path, error);
  else
    file->kind = ATELIER_MODEL_KIND_TEXT;
  at_text_model_file_clear (&model);
}

static void
inspect_safetensors (AtelierModelFile *file, const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_open (path, &error);
  TypeCounter counter;
  AtSdCheckpointInfo info;

  if (st == NULL)
    {
      set_error (file, path, error);
      return;
    }
  type_counter_init (&counter);
  for (guint i = 0; i < at_safetensors_get_n_tensors (st); i++)
    {
      const AtSafetensorsTensor *t = at_safetensors_get_tensor (st, i);

      file->n_params += t->n_elements;
      if (t->n_dims >= 2)
        type_counter_add (&counter, t->dtype, t->n_elements);
    }
  file->quantization = type_counter_finish (&counter);

  /* TAESD decoders are plain numbered layers: only their name says what they are. */
  if (strstr (file->name, "taesd") != NULL && strstr (file->name, "decoder") != NULL)
    {
      file->family = g_strdup ("TAESD");
      file->kind = ATELIER_MODEL_KIND_PREVIEW;
      return;
    }
  if (!at_sd_checkpoint_detect (st, &info, &error))
    {
      set_error (file, path, error);
      return;
    }
  file->family = g_strdup (at_sd_family_name (info.family));
  file->kind = ATELIER_MODEL_KIND_IMAGE;
}

static void
list_thread (GTask *task, gpointer source_object, gpointer task_data,
             GCancellable *cancellable)
{
  const char *folder = task_data;
  g_autoptr (GFile) dir = g_file_new_for_path (folder);
  g_autoptr (GFileEnumerator) children = NULL;
  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (model_file_free);
  GError *error = NULL;

  if (g_mkdir_with_parents (folder, 0755) != 0)
    {
      int saved_errno = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                               "%s: %s", folder, g_strerror (saved_errno));
      return;
    }

  children = g_file_enumerate_children (dir,
                                        G_FILE_ATTRIBUTE_STANDARD_NAME ","
                                        G_FILE_ATTRIBUTE_STANDARD_SIZE ","
                                        G_FILE_ATTRIBUTE_STANDARD_TYPE,
                                        G_FILE_QUERY_INFO_NONE, cancellable, &error);
  while (children != NULL)
    {
      GFileInfo *info = NULL;
      AtelierModelFile *file;
      g_autofree char *path = NULL;

      if (!g_file_enumerator_iterate (children, &info, NULL, cancellable, &error)
          || info == NULL)
        break;
      if (g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR
          || !is_model_file (g_file_info_get_name (info)))
        continue;
      file = g_new0 (AtelierModelFile, 1);
      file->name = g_strdup (g_file_info_get_name (info));
      file->size = g_file_info_get_size (info);
      path = g_build_filename (folder, file->name, NULL);
      if (g_str_has_suffix (file->name, ".gguf"))
        {
          file->format = "GGUF";
          inspect_gguf (file, path);
        }
      else
        {
          file->format = "safetensors";
          inspect_safetensors (file, path);
        }
      g_ptr_array_add (files, file);
    }
  if (error != NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  g_ptr_array_sort (files, compare_by_name);
  g_task_return_pointer (task, g_steal_pointer (&files), (GDestroyNotify) g_ptr_array_unref);
}

void
atelier_model_files_list_async (const char *folder, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);

  g_task_set_source_tag (task, atelier_model_files_list_async);
  g_task_set_task_data (task, g_strdup (folder), g_free);
  g_task_run_in_thread (task, list_thread);
}

GPtrArray *
atelier_model_files_list_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
