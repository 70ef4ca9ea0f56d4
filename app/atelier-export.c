/* atelier-export.c: export into a project folder and PNG import (see atelier-export.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <json-glib/json-glib.h>
#include <webp/encode.h>

#include "atelier-export.h"
#include "formats/at-png.h"

/* Enough words to recognise the prompt in a file manager, short enough for a column. */
#define SLUG_CHARS 40
/* Visually lossless for generated images, a fraction of the PNG's size. */
#define LOSSY_QUALITY 92

char *
atelier_export_slug (const char *prompt, guint max_chars)
{
  g_autofree char *normal = g_utf8_normalize (prompt != NULL ? prompt : "", -1,
                                              G_NORMALIZE_NFC);
  GString *slug = g_string_new (NULL);
  gsize boundary = 0; /* slug->len before the last '-' */
  guint n_chars = 0;
  gboolean separate = FALSE;

  /* Not valid UTF-8: nothing of it is safe in a file name. */
  if (normal == NULL)
    return g_string_free (slug, FALSE);
  for (const char *p = normal; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (!g_unichar_isalnum (c))
        {
          separate = slug->len > 0;
          continue;
        }
      if (separate)
        {
          if (n_chars + 2 > max_chars)
            break;
          boundary = slug->len;
          g_string_append_c (slug, '-');
          n_chars++;
          separate = FALSE;
        }
      if (n_chars + 1 > max_chars)
        {
          /* Half a word reads worse than one word fewer. */
          if (boundary > 0)
            g_string_truncate (slug, boundary);
          break;
        }
      g_string_append_unichar (slug, g_unichar_tolower (c));
      n_chars++;
    }
  return g_string_free (slug, FALSE);
}

static const char *
source_extension (const char *path)
{
  const char *base = strrchr (path, G_DIR_SEPARATOR);
  const char *dot = strrchr (base != NULL ? base : path, '.');

  return dot != NULL ? dot + 1 : "";
}

static gboolean
is_wav (const char *path)
{
  return g_ascii_strcasecmp (source_extension (path), "wav") == 0;
}

char *
atelier_export_extension (AtelierAssetKind kind, const char *source_path,
                          const AtelierExportFormats *formats)
{
  switch (kind)
    {
    case ATELIER_ASSET_IMAGE:
      if (g_strcmp0 (formats->image, "jpeg") == 0)
        return g_strdup ("jpg");
      if (g_strcmp0 (formats->image, "webp") == 0)
        return g_strdup ("webp");
      return g_strdup ("png");
    case ATELIER_ASSET_TEXT:
      return g_strdup (g_strcmp0 (formats->text, "text") == 0 ? "txt" : "md");
    case ATELIER_ASSET_AUDIO:
      if (g_strcmp0 (formats->audio, "ogg") == 0 && is_wav (source_path))
        return g_strdup ("ogg");
      return g_ascii_strdown (source_extension (source_path), -1);
    }
  g_return_val_if_reached (NULL);
}

char *
atelier_export_base_name (AtelierAssetKind kind, const char *prompt, gint64 created, gint64 id)
{
  g_autofree char *slug = atelier_export_slug (prompt, SLUG_CHARS);
  g_autoptr (GDateTime) time = g_date_time_new_from_unix_local (created / G_USEC_PER_SEC);
  g_autofree char *date = g_date_time_format (time, "%Y-%m-%d");

  return g_strdup_printf ("%s_%s_%" G_GINT64_FORMAT,
                          slug[0] != '\0' ? slug : atelier_asset_kind_to_string (kind), date,
                          id);
}

static char *
child_path (const char *folder, const char *base, const char *extension)
{
  g_autofree char *name = g_strconcat (base, ".", extension, NULL);

  return g_build_filename (folder, name, NULL);
}

char *
atelier_export_unique_base (const char *folder, const char *base, const char *extension)
{
  for (guint n = 1;; n++)
    {
      g_autofree char *candidate = n == 1 ? g_strdup (base) : g_strdup_printf ("%s-%u", base, n);
      g_autofree char *file = child_path (folder, candidate, extension);
      g_autofree char *sidecar = child_path (folder, candidate, "json");

      if (!g_file_test (file, G_FILE_TEST_EXISTS) && !g_file_test (sidecar, G_FILE_TEST_EXISTS))
        return g_steal_pointer (&candidate);
    }
}

char *
atelier_export_sidecar (AtelierAsset *asset)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GDateTime) time = NULL;
  g_autofree char *created = NULL;
  JsonNode *parameters = NULL;
  gint64 usec = atelier_asset_get_created (asset);

  time = g_date_time_new_from_unix_local (usec / G_USEC_PER_SEC);
  created = g_date_time_format_iso8601 (time);
  if (json_parser_load_from_data (parser, atelier_asset_get_parameters (asset), -1, NULL)
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    parameters = json_node_copy (json_parser_get_root (parser));
  else
    parameters = json_node_init_object (json_node_alloc (), json_object_new ());

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "kind");
  json_builder_add_string_value (builder,
                                 atelier_asset_kind_to_string (atelier_asset_get_kind (asset)));
  json_builder_set_member_name (builder, "prompt");
  json_builder_add_string_value (builder, atelier_asset_get_prompt (asset));
  json_builder_set_member_name (builder, "parameters");
  json_builder_add_value (builder, parameters);
  json_builder_set_member_name (builder, "model");
  json_builder_add_string_value (builder, atelier_asset_get_model (asset));
  json_builder_set_member_name (builder, "seed");
  json_builder_add_int_value (builder, atelier_asset_get_seed (asset));
  json_builder_set_member_name (builder, "created");
  json_builder_add_string_value (builder, created);
  json_builder_set_member_name (builder, "source");
  json_builder_add_string_value (builder, atelier_asset_get_path (asset));
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  return json_generator_to_data (generator, NULL);
}

static gboolean
write_file (const char *path, const void *data, gsize size, GError **error)
{
  /* CONSISTENT: a temporary file renamed into place. */
  return g_file_set_contents_full (path, data, size, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
}

static gboolean
copy_file (const char *source, const char *target, GError **error)
{
  g_autofree char *contents = NULL;
  gsize size;

  return g_file_get_contents (source, &contents, &size, error)
         && write_file (target, contents, size, error);
}

static gboolean
convert_image (const char *source, const char *target, const char *format, GError **error)
{
  g_autofree guint8 *rgba = NULL;
  guint width, height;

  rgba = at_png_read (source, &width, &height, NULL, NULL, error);
  if (rgba == NULL)
    return FALSE;
  if (g_str_equal (format, "webp"))
    {
      uint8_t *out = NULL;
      size_t size = WebPEncodeRGBA (rgba, (int)width, (int)height, (int)width * 4,
                                    LOSSY_QUALITY, &out);
      gboolean ok;

      if (size == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       _("%s could not be encoded as WebP"), source);
          return FALSE;
        }
      ok = write_file (target, out, size, error);
      WebPFree (out);
      return ok;
    }
  else
    {
      g_autofree guint8 *rgb = g_malloc ((gsize)width * height * 3);
      g_autoptr (GdkPixbuf) pixbuf = NULL;
      g_autofree char *buffer = NULL;
      gsize size;

      /* JPEG has no alpha: transparent parts become white, as on a page. */
      for (gsize i = 0; i < (gsize)width * height; i++)
        for (int c = 0; c < 3; c++)
          {
            guint a = rgba[i * 4 + 3];

            rgb[i * 3 + c] = (guint8)((rgba[i * 4 + c] * a + 255 * (255 - a) + 127) / 255);
          }
      pixbuf = gdk_pixbuf_new_from_data (rgb, GDK_COLORSPACE_RGB, FALSE, 8, (int)width,
                                         (int)height, (int)width * 3, NULL, NULL);
      if (!gdk_pixbuf_save_to_buffer (pixbuf, &buffer, &size, "jpeg", error, "quality",
                                      G_STRINGIFY (LOSSY_QUALITY), NULL))
        return FALSE;
      return write_file (target, buffer, size, error);
    }
}

static gpointer
init_gstreamer (gpointer data)
{
  GError **error = data;

  return GINT_TO_POINTER (gst_init_check (NULL, NULL, error));
}

/* filesrc ! wavparse ! audioconvert ! vorbisenc ! oggmux ! filesink, into a temporary
 * file renamed to target once the stream ended. */
static gboolean
encode_ogg (const char *source, const char *target, GCancellable *cancellable, GError **error)
{
  static GOnce once = G_ONCE_INIT;
  g_autoptr (GError) init_error = NULL;
  g_autoptr (GstElement) pipeline = NULL;
  g_autoptr (GstElement) src = NULL;
  g_autoptr (GstElement) sink = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autofree char *partial = NULL;
  gboolean ended = FALSE;
  int fd;

  if (!GPOINTER_TO_INT (g_once (&once, init_gstreamer, &init_error)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Ogg encoding is not available: GStreamer could not start"));
      return FALSE;
    }
  pipeline = gst_parse_launch ("filesrc name=src ! wavparse ! audioconvert ! vorbisenc "
                               "! oggmux ! filesink name=sink",
                               error);
  if (pipeline == NULL)
    {
      g_prefix_error (error, _("Ogg encoding is not available: "));
      return FALSE;
    }
  partial = g_strconcat (target, ".XXXXXX", NULL);
  fd = g_mkstemp_full (partial, O_WRONLY, 0644);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _("%s could not be written: %s"), target, g_strerror (saved));
      return FALSE;
    }
  close (fd);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (src, "location", source, NULL);
  g_object_set (sink, "location", partial, NULL);

  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  while (!ended && !g_cancellable_set_error_if_cancelled (cancellable, error))
    {
      /* A tenth of a second between looks at the cancellable. */
      g_autoptr (GstMessage) message =
        gst_bus_timed_pop_filtered (bus, GST_SECOND / 10, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

      if (message == NULL)
        continue;
      if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR)
        {
          g_autoptr (GError) gst_error = NULL;

          gst_message_parse_error (message, &gst_error, NULL);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       _("%s could not be encoded as Ogg: %s"), source, gst_error->message);
          break;
        }
      ended = TRUE;
    }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  if (ended && g_rename (partial, target) == 0)
    return TRUE;
  if (ended)
    {
      int saved = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _("%s could not be written: %s"), target, g_strerror (saved));
    }
  g_unlink (partial);
  return FALSE;
}

gboolean
atelier_export_asset (AtelierAsset *asset, const char *folder,
                      const AtelierExportFormats *formats, char **exported_path,
                      GCancellable *cancellable, GError **error)
{
  const char *source = atelier_asset_get_path (asset);
  AtelierAssetKind kind = atelier_asset_get_kind (asset);
  g_autofree char *extension = atelier_export_extension (kind, source, formats);
  g_autofree char *wanted = atelier_export_base_name (kind, atelier_asset_get_prompt (asset),
                                                      atelier_asset_get_created (asset),
                                                      atelier_asset_get_id (asset));
  g_autofree char *base = NULL;
  g_autofree char *target = NULL;
  g_autofree char *sidecar_path = NULL;
  g_autofree char *sidecar = NULL;
  gboolean ok;

  if (!g_file_test (folder, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("The project folder %s does not exist"), folder);
      return FALSE;
    }
  base = atelier_export_unique_base (folder, wanted, extension);
  target = child_path (folder, base, extension);
  sidecar_path = child_path (folder, base, "json");

  if (kind == ATELIER_ASSET_IMAGE && !g_str_equal (extension, "png"))
    ok = convert_image (source, target, formats->image, error);
  else if (kind == ATELIER_ASSET_AUDIO && g_str_equal (extension, "ogg") && is_wav (source))
    ok = encode_ogg (source, target, cancellable, error);
  else
    ok = copy_file (source, target, error);
  if (!ok)
    {
      g_prefix_error (error, _("Exporting into %s failed: "), folder);
      return FALSE;
    }

  sidecar = atelier_export_sidecar (asset);
  if (!write_file (sidecar_path, sidecar, strlen (sidecar), error))
    {
      /* An asset without its sidecar would lose what made it. */
      g_unlink (target);
      g_prefix_error (error, _("Exporting into %s failed: "), folder);
      return FALSE;
    }
  if (exported_path != NULL)
    *exported_path = g_steal_pointer (&target);
  return TRUE;
}

typedef struct
{
  GPtrArray *assets;
  char *folder;
  char *image, *text, *audio; /* the formats, owned */
  AtelierExportProgress progress;
  gpointer progress_data;
} ExportJob;

static void
export_job_free (ExportJob *job)
{
  g_ptr_array_unref (job->assets);
  g_free (job->folder);
  g_free (job->image);
  g_free (job->text);
  g_free (job->audio);
  g_free (job);
}

typedef struct
{
  GTask *task;
  guint done;
} ExportProgress;

static void
export_progress_free (ExportProgress *report)
{
  g_object_unref (report->task);
  g_free (report);
}

static gboolean
report_progress (gpointer data)
{
  ExportProgress *report = data;
  ExportJob *job = g_task_get_task_data (report->task);

  job->progress (report->done, job->assets->len, job->progress_data);
  return G_SOURCE_REMOVE;
}

static void
export_thread (GTask *task, gpointer source_object, gpointer task_data,
               GCancellable *cancellable)
{
  ExportJob *job = task_data;
  AtelierExportFormats formats = { job->image, job->text, job->audio };
  GError *error = NULL;

  for (guint i = 0; i < job->assets->len; i++)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, &error)
          || !atelier_export_asset (g_ptr_array_index (job->assets, i), job->folder, &formats,
                                    NULL, cancellable, &error))
        {
          g_task_return_error (task, error);
          return;
        }
      if (job->progress != NULL)
        {
          ExportProgress *report = g_new (ExportProgress, 1);

          report->task = g_object_ref (task);
          report->done = i + 1;
          g_main_context_invoke_full (g_task_get_context (task), G_PRIORITY_DEFAULT,
                                      report_progress, report,
                                      (GDestroyNotify)export_progress_free);
        }
    }
  g_task_return_int (task, job->assets->len);
}

void
atelier_export_assets_async (GPtrArray *assets, const char *folder,
                             const AtelierExportFormats *formats, GCancellable *cancellable,
                             AtelierExportProgress progress, gpointer progress_data,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  ExportJob *job = g_new0 (ExportJob, 1);

  job->assets = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < assets->len; i++)
    g_ptr_array_add (job->assets, g_object_ref (g_ptr_array_index (assets, i)));
  job->folder = g_strdup (folder);
  job->image = g_strdup (formats->image);
  job->text = g_strdup (formats->text);
  job->audio = g_strdup (formats->audio);
  job->progress = progress;
  job->progress_data = progress_data;
  g_task_set_source_tag (task, atelier_export_assets_async);
  g_task_set_task_data (task, job, (GDestroyNotify)export_job_free);
  g_task_run_in_thread (task, export_thread);
}

guint
atelier_export_assets_finish (GAsyncResult *result, GError **error)
{
  gssize n;

  g_return_val_if_fail (g_task_is_valid (result, NULL), 0);
  n = g_task_propagate_int (G_TASK (result), error);
  return n > 0 ? (guint)n : 0;
}

void
atelier_png_import_free (AtelierPngImport *import)
{
  g_free (import->path);
  g_free (import->parameters);
  g_free (import->prompt);
  g_free (import->model);
  g_free (import);
}

static void
add_string (JsonBuilder *builder, const char *name, const char *value)
{
  if (value == NULL)
    return;
  json_builder_set_member_name (builder, name);
  json_builder_add_string_value (builder, value);
}

static void
add_int (JsonBuilder *builder, const char *name, gint64 value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_int_value (builder, value);
}

static void
add_double (JsonBuilder *builder, const char *name, double value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_double_value (builder, value);
}

char *
atelier_export_parameters_json (const char *infotext)
{
  g_autoptr (AtGenerationParams) p = at_generation_params_parse (infotext);
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  add_string (builder, "infotext", infotext);
  add_string (builder, "prompt", p->prompt);
  add_string (builder, "negative_prompt", p->negative_prompt);
  if (p->steps > 0)
    add_int (builder, "steps", p->steps);
  add_string (builder, "sampler", p->sampler);
  add_string (builder, "schedule_type", p->schedule_type);
  if (p->cfg_scale >= 0)
    add_double (builder, "cfg_scale", p->cfg_scale);
  if (p->seed >= 0)
    add_int (builder, "seed", p->seed);
  if (p->width > 0 && p->height > 0)
    {
      add_int (builder, "width", p->width);
      add_int (builder, "height", p->height);
    }
  add_string (builder, "model_hash", p->model_hash);
  add_string (builder, "model", p->model);
  if (p->denoising_strength >= 0)
    add_double (builder, "denoising_strength", p->denoising_strength);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  return json_generator_to_data (generator, NULL);
}

AtelierPngImport *
atelier_png_import (const char *path, const char *library_path, GError **error)
{
  g_autoptr (AtelierPngImport) import = g_new0 (AtelierPngImport, 1);
  g_autoptr (AtGenerationParams) params = NULL;
  g_autofree guint8 *pixels = NULL;
  g_autofree char *infotext = NULL;
  guint width, height;

  /* Decoding all of it, not only the chunk: a broken PNG stays out of the library. */
  pixels = at_png_read (path, &width, &height, &infotext, &params, error);
  if (pixels == NULL || !copy_file (path, library_path, error))
    return NULL;
  import->path = g_strdup (library_path);
  import->seed = -1;
  if (infotext != NULL)
    {
      import->parameters = atelier_export_parameters_json (infotext);
      import->prompt = g_strdup (params->prompt);
      import->model = g_strdup (params->model);
      import->seed = params->seed;
    }
  return g_steal_pointer (&import);
}
