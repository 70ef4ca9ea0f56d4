/* atelier-model-files.c: listing the models folder in a GTask thread. */
#include <errno.h>

#include "atelier-model-files.h"

static void
model_file_free (gpointer data)
{
  AtelierModelFile *file = data;

  g_free (file->name);
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

      if (!g_file_enumerator_iterate (children, &info, NULL, cancellable, &error)
          || info == NULL)
        break;
      if (g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR
          || !is_model_file (g_file_info_get_name (info)))
        continue;
      file = g_new0 (AtelierModelFile, 1);
      file->name = g_strdup (g_file_info_get_name (info));
      file->size = g_file_info_get_size (info);
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
