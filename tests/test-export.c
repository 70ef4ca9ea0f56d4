/* test-export.c: export names, sidecars and conversions (PNG to JPEG and WebP, WAV to
 * Ogg), checked by decoding what was written; PNG import with its parameters. */
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <unistd.h>
#include <webp/decode.h>

#include "atelier-export.h"
#include "formats/at-png.h"

#define WIDTH 37
#define HEIGHT 23
#define INFOTEXT "red fox in snow, 雪\nNegative prompt: blurry\n" \
                 "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 37x23, Model: tiny"

static char *
make_folder (void)
{
  g_autoptr (GError) error = NULL;
  char *folder = g_dir_make_tmp ("atelier-export-XXXXXX", &error);

  g_assert_no_error (error);
  return folder;
}

static void
test_slug (void)
{
  static const struct
  {
    const char *prompt;
    guint max_chars;
    const char *slug;
  } cases[] = {
    { "A red fox, in snow!", 40, "a-red-fox-in-snow" },
    { "  --Hello   World--  ", 40, "hello-world" },
    /* Cut at a word boundary, never in a word... */
    { "alpha beta gamma", 12, "alpha-beta" },
    { "alpha beta gamma", 10, "alpha-beta" },
    /* ...unless the first word alone is too long. */
    { "supercalifragilistic", 5, "super" },
    { "Café Crème brûlée", 40, "café-crème-brûlée" },
    /* Decomposed accents are composed first, so they are not taken for separators. */
    { "Cafe\xcc\x81", 40, "café" },
    { "一只红色的狐狸，在雪中", 40, "一只红色的狐狸-在雪中" },
    { "一二三四五六", 4, "一二三四" },
    { "!!! ??? ...", 40, "" },
    { "", 40, "" },
    { "bad \xff utf-8", 40, "" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *slug = atelier_export_slug (cases[i].prompt, cases[i].max_chars);

      g_assert_cmpstr (slug, ==, cases[i].slug);
    }
}

static gint64
local_noon (int year, int month, int day)
{
  g_autoptr (GDateTime) time = g_date_time_new_local (year, month, day, 12, 0, 0);

  return g_date_time_to_unix (time) * G_USEC_PER_SEC;
}

static void
test_names (void)
{
  AtelierExportFormats formats = { "jpeg", "text", "ogg" };
  AtelierExportFormats defaults = { "png", "markdown", "wav" };
  g_autofree char *folder = make_folder ();
  g_autofree char *base = NULL;
  g_autofree char *unique = NULL;
  g_autofree char *path = NULL;
  char *ext;

  base = atelier_export_base_name (ATELIER_ASSET_IMAGE, "Red fox in snow", local_noon (2026, 11, 22),
                                   42);
  g_assert_cmpstr (base, ==, "red-fox-in-snow_2026-11-22_42");
  g_free (base);
  base = atelier_export_base_name (ATELIER_ASSET_AUDIO, "…", local_noon (2026, 1, 2), 7);
  g_assert_cmpstr (base, ==, "audio_2026-01-02_7");
  g_free (base);
  base = atelier_export_base_name (ATELIER_ASSET_TEXT, "春天的诗", local_noon (2026, 3, 4), 9);
  g_assert_cmpstr (base, ==, "春天的诗_2026-03-04_9");

  ext = atelier_export_extension (ATELIER_ASSET_IMAGE, "/l/a.png", &formats);
  g_assert_cmpstr (ext, ==, "jpg");
  g_free (ext);
  ext = atelier_export_extension (ATELIER_ASSET_TEXT, "/l/a.md", &formats);
  g_assert_cmpstr (ext, ==, "txt");
  g_free (ext);
  ext = atelier_export_extension (ATELIER_ASSET_TEXT, "/l/a.md", &defaults);
  g_assert_cmpstr (ext, ==, "md");
  g_free (ext);
  ext = atelier_export_extension (ATELIER_ASSET_AUDIO, "/l/a.WAV", &formats);
  g_assert_cmpstr (ext, ==, "ogg");
  g_free (ext);
  /* Only WAV is encoded; anything else keeps its format. */
  ext = atelier_export_extension (ATELIER_ASSET_AUDIO, "/l/a.flac", &formats);
  g_assert_cmpstr (ext, ==, "flac");
  g_free (ext);

  /* Collisions with the file or with the sidecar both count. */
  unique = atelier_export_unique_base (folder, base, "md");
  g_assert_cmpstr (unique, ==, base);
  g_free (unique);
  path = g_strdup_printf ("%s/%s.md", folder, base);
  g_assert_true (g_file_set_contents (path, "", 0, NULL));
  unique = atelier_export_unique_base (folder, base, "md");
  g_assert_cmpstr (unique, ==, "春天的诗_2026-03-04_9-2");
  g_free (unique);
  g_free (path);
  path = g_strdup_printf ("%s/%s-2.json", folder, base);
  g_assert_true (g_file_set_contents (path, "", 0, NULL));
  unique = atelier_export_unique_base (folder, base, "md");
  g_assert_cmpstr (unique, ==, "春天的诗_2026-03-04_9-3");
  /* Another extension is another file. */
  g_free (unique);
  unique = atelier_export_unique_base (folder, base, "txt");
  g_assert_cmpstr (unique, ==, base);
}

/* A library in a fresh folder with one asset of each kind. */
typedef struct
{
  char *library_folder;
  char *project;
  AtelierLibrary *library;
  AtelierAsset *image, *text, *audio;
  guint8 rgba[WIDTH * HEIGHT * 4];
} Fixture;

static void
write_wav (const char *path)
{
  const guint rate = 16000, n = rate / 2;
  gsize size = 44 + n * 2;
  g_autofree guint8 *wav = g_malloc0 (size);
  guint32 u32;
  guint16 u16;

#define PUT32(at, v) (u32 = GUINT32_TO_LE (v), memcpy (wav + (at), &u32, 4))
#define PUT16(at, v) (u16 = GUINT16_TO_LE (v), memcpy (wav + (at), &u16, 2))
  memcpy (wav, "RIFF", 4);
  PUT32 (4, size - 8);
  memcpy (wav + 8, "WAVEfmt ", 8);
  PUT32 (16, 16);
  PUT16 (20, 1); /* PCM */
  PUT16 (22, 1); /* mono */
  PUT32 (24, rate);
  PUT32 (28, rate * 2);
  PUT16 (32, 2);
  PUT16 (34, 16);
  memcpy (wav + 36, "data", 4);
  PUT32 (40, n * 2);
  for (guint i = 0; i < n; i++)
    PUT16 (44 + i * 2, (guint16)(gint16)(8000 * sin (2 * G_PI * 440 * i / rate)));
#undef PUT32
#undef PUT16
  g_assert_true (g_file_set_contents (path, (char *)wav, size, NULL));
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *image_path = NULL;
  g_autofree char *text_path = NULL;
  g_autofree char *audio_path = NULL;
  AtelierAssetInfo image_info = { .prompt = "Red fox in snow", .model = "tiny",
                                  .parameters = "{\"steps\": 20, \"sampler\": \"Euler a\"}",
                                  .seed = 1234 };
  AtelierAssetInfo text_info = { .prompt = "A poem about spring" };
  AtelierAssetInfo audio_info = { .prompt = "Hello there" };

  f->library_folder = make_folder ();
  f->project = make_folder ();
  f->library = atelier_library_new (f->library_folder, &error);
  g_assert_no_error (error);

  /* Opaque on the left, fading to transparent on the right; colours vary both ways. */
  for (guint y = 0; y < HEIGHT; y++)
    for (guint x = 0; x < WIDTH; x++)
      {
        guint8 *p = f->rgba + (y * WIDTH + x) * 4;

        p[0] = (guint8)(x * 255 / (WIDTH - 1));
        p[1] = (guint8)(y * 255 / (HEIGHT - 1));
        p[2] = 128;
        p[3] = (guint8)(255 - x * 128 / (WIDTH - 1));
      }
  image_path = atelier_library_new_path (f->library, ATELIER_ASSET_IMAGE, "png");
  g_assert_true (at_png_write (image_path, f->rgba, WIDTH, HEIGHT, 4, WIDTH * 4, INFOTEXT,
                               &error));
  f->image = atelier_library_add (f->library, ATELIER_ASSET_IMAGE, image_path, &image_info,
                                  &error);
  g_assert_no_error (error);

  text_path = atelier_library_new_path (f->library, ATELIER_ASSET_TEXT, "md");
  g_assert_true (g_file_set_contents (text_path, "# Spring\n\nBlossoms *everywhere*.\n", -1, NULL));
  f->text = atelier_library_add (f->library, ATELIER_ASSET_TEXT, text_path, &text_info, &error);
  g_assert_no_error (error);

  audio_path = atelier_library_new_path (f->library, ATELIER_ASSET_AUDIO, "wav");
  write_wav (audio_path);
  f->audio = atelier_library_add (f->library, ATELIER_ASSET_AUDIO, audio_path, &audio_info,
                                  &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->image);
  g_clear_object (&f->text);
  g_clear_object (&f->audio);
  g_clear_object (&f->library);
  g_free (f->library_folder);
  g_free (f->project);
}

static char *
export (Fixture *f, AtelierAsset *asset, const char *image, const char *text, const char *audio)
{
  AtelierExportFormats formats = { image, text, audio };
  g_autoptr (GError) error = NULL;
  char *path = NULL;

  g_assert_true (atelier_export_asset (asset, f->project, &formats, &path, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (path, f->project));
  return path;
}

static char *
sidecar_of (const char *path)
{
  const char *dot = strrchr (path, '.');

  return g_strdup_printf ("%.*s.json", (int)(dot - path), path);
}

static void
assert_same_file (const char *a, const char *b)
{
  g_autofree char *ca = NULL;
  g_autofree char *cb = NULL;
  gsize la, lb;

  g_assert_true (g_file_get_contents (a, &ca, &la, NULL));
  g_assert_true (g_file_get_contents (b, &cb, &lb, NULL));
  g_assert_cmpmem (ca, la, cb, lb);
}

/* Mean absolute difference per channel between decoded RGB(A) and the source composited
 * over white (JPEG) or as is (WebP keeps alpha). */
static double
mean_error (Fixture *f, const guint8 *pixels, guint channels, gsize stride, gboolean over_white)
{
  double sum = 0;

  for (guint y = 0; y < HEIGHT; y++)
    for (guint x = 0; x < WIDTH; x++)
      for (guint c = 0; c < channels; c++)
        {
          const guint8 *s = f->rgba + (y * WIDTH + x) * 4;
          double want = s[c];

          if (over_white && c < 3)
            want = (s[c] * s[3] + 255.0 * (255 - s[3])) / 255;
          sum += fabs (pixels[y * stride + x * channels + c] - want);
        }
  return sum / (WIDTH * HEIGHT * channels);
}

static void
test_image (Fixture *f, gconstpointer data)
{
  g_autofree char *png = export (f, f->image, "png", "markdown", "wav");
  g_autofree char *jpeg = export (f, f->image, "jpeg", "markdown", "wav");
  g_autofree char *webp = export (f, f->image, "webp", "markdown", "wav");
  g_autofree char *again = export (f, f->image, "png", "markdown", "wav");
  g_autoptr (GdkPixbuf) pixbuf = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *parameters = NULL;
  g_autofree char *contents = NULL;
  g_autofree guint8 *decoded = NULL;
  gsize size;
  int width, height;
  double err;

  g_assert_true (strstr (png, G_DIR_SEPARATOR_S "red-fox-in-snow_") != NULL);
  g_assert_true (g_str_has_suffix (png, ".png"));
  /* PNG: the very file, parameters chunk included. */
  assert_same_file (png, atelier_asset_get_path (f->image));
  g_free (at_png_read (png, (guint *)&width, (guint *)&height, &parameters, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (parameters, ==, INFOTEXT);
  /* Never overwritten: each export's sidecar takes the name, so the next one goes on. */
  g_assert_true (g_str_has_suffix (jpeg, "-2.jpg"));
  g_assert_true (g_str_has_suffix (webp, "-3.webp"));
  g_assert_true (g_str_has_suffix (again, "-4.png"));

  pixbuf = gdk_pixbuf_new_from_file (jpeg, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_suffix (jpeg, ".jpg"));
  g_assert_cmpint (gdk_pixbuf_get_width (pixbuf), ==, WIDTH);
  g_assert_cmpint (gdk_pixbuf_get_height (pixbuf), ==, HEIGHT);
  g_assert_cmpint (gdk_pixbuf_get_n_channels (pixbuf), ==, 3);
  /* Quality 92 on smooth gradients: a few levels of error on average at most. */
  err = mean_error (f, gdk_pixbuf_read_pixels (pixbuf), 3, gdk_pixbuf_get_rowstride (pixbuf),
                    TRUE);
  g_test_message ("JPEG mean error %.2f levels", err);
  g_assert_cmpfloat (err, <, 4);

  g_assert_true (g_file_get_contents (webp, &contents, &size, NULL));
  g_assert_true (size > 12 && memcmp (contents, "RIFF", 4) == 0
                 && memcmp (contents + 8, "WEBP", 4) == 0);
  decoded = WebPDecodeRGBA ((const uint8_t *)contents, size, &width, &height);
  g_assert_nonnull (decoded);
  g_assert_cmpint (width, ==, WIDTH);
  g_assert_cmpint (height, ==, HEIGHT);
  err = mean_error (f, decoded, 4, WIDTH * 4, FALSE);
  g_test_message ("WebP mean error %.2f levels", err);
  g_assert_cmpfloat (err, <, 4);
  WebPFree (g_steal_pointer (&decoded));
}

static void
test_sidecar (Fixture *f, gconstpointer data)
{
  g_autofree char *path = export (f, f->image, "png", "markdown", "wav");
  g_autofree char *sidecar = sidecar_of (path);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GDateTime) created = NULL;
  JsonObject *root, *parameters;

  json_parser_load_from_file (parser, sidecar, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (root, "kind"), ==, "image");
  g_assert_cmpstr (json_object_get_string_member (root, "prompt"), ==, "Red fox in snow");
  g_assert_cmpstr (json_object_get_string_member (root, "model"), ==, "tiny");
  g_assert_cmpint (json_object_get_int_member (root, "seed"), ==, 1234);
  g_assert_cmpstr (json_object_get_string_member (root, "source"), ==,
                   atelier_asset_get_path (f->image));
  /* The parameters are the object itself, not a string holding it. */
  parameters = json_object_get_object_member (root, "parameters");
  g_assert_nonnull (parameters);
  g_assert_cmpint (json_object_get_int_member (parameters, "steps"), ==, 20);
  g_assert_cmpstr (json_object_get_string_member (parameters, "sampler"), ==, "Euler a");
  created = g_date_time_new_from_iso8601 (json_object_get_string_member (root, "created"), NULL);
  g_assert_nonnull (created);
  g_assert_cmpint (g_date_time_to_unix (created), ==,
                   atelier_asset_get_created (f->image) / G_USEC_PER_SEC);
}

/* The bytes may hold NULs, so no string search. */
static gboolean
contains (const char *data, gsize size, const char *needle)
{
  gsize length = strlen (needle);

  for (gsize i = 0; i + length <= size; i++)
    if (memcmp (data + i, needle, length) == 0)
      return TRUE;
  return FALSE;
}

static void
test_text_and_audio (Fixture *f, gconstpointer data)
{
  g_autofree char *md = export (f, f->text, "png", "markdown", "wav");
  g_autofree char *txt = export (f, f->text, "png", "text", "wav");
  g_autofree char *wav = export (f, f->audio, "png", "markdown", "wav");
  g_autofree char *ogg = export (f, f->audio, "png", "markdown", "ogg");
  g_autofree char *ogg_sidecar = sidecar_of (ogg);
  g_autofree char *contents = NULL;
  g_autoptr (GDir) dir = NULL;
  gsize size;

  g_assert_true (strstr (md, G_DIR_SEPARATOR_S "a-poem-about-spring_") != NULL);
  g_assert_true (g_str_has_suffix (md, ".md"));
  g_assert_true (g_str_has_suffix (txt, ".txt"));
  assert_same_file (md, atelier_asset_get_path (f->text));
  assert_same_file (txt, atelier_asset_get_path (f->text));
  g_assert_true (g_str_has_suffix (wav, ".wav"));
  assert_same_file (wav, atelier_asset_get_path (f->audio));

  g_assert_true (g_str_has_suffix (ogg, ".ogg"));
  g_assert_true (g_file_get_contents (ogg, &contents, &size, NULL));
  g_assert_cmpuint (size, >, 100);
  g_assert_cmpmem (contents, 4, "OggS", 4);
  /* A Vorbis stream: its identification header is in the first page. */
  g_assert_true (contains (contents, MIN (size, 200), "\x01vorbis"));
  g_assert_true (g_file_test (ogg_sidecar, G_FILE_TEST_IS_REGULAR));

  /* Nothing half-written is left behind: every file has its sidecar. */
  dir = g_dir_open (f->project, 0, NULL);
  for (const char *name; (name = g_dir_read_name (dir)) != NULL;)
    {
      g_autofree char *path = g_build_filename (f->project, name, NULL);
      g_autofree char *sidecar = sidecar_of (path);

      g_assert_true (g_file_test (sidecar, G_FILE_TEST_IS_REGULAR));
    }
}

static void
progress (guint done, guint total, gpointer user_data)
{
  guint *calls = user_data;

  g_assert_cmpuint (done, ==, ++*calls);
  g_assert_cmpuint (total, ==, 3);
}

static void
exported (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static void
test_async (Fixture *f, gconstpointer data)
{
  g_autoptr (GPtrArray) assets = g_ptr_array_new ();
  AtelierExportFormats formats = { "webp", "text", "ogg" };
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = NULL;
  guint calls = 0, files = 0;

  g_ptr_array_add (assets, f->image);
  g_ptr_array_add (assets, f->text);
  g_ptr_array_add (assets, f->audio);
  atelier_export_assets_async (assets, f->project, &formats, NULL, progress, &calls, exported,
                               &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (atelier_export_assets_finish (result, &error), ==, 3);
  g_assert_no_error (error);
  g_assert_cmpuint (calls, ==, 3);
  dir = g_dir_open (f->project, 0, NULL);
  while (g_dir_read_name (dir) != NULL)
    files++;
  g_assert_cmpuint (files, ==, 6);
}

static void
test_unwritable (Fixture *f, gconstpointer data)
{
  AtelierExportFormats formats = { "png", "markdown", "wav" };
  g_autoptr (GError) error = NULL;
  g_autofree char *missing = g_build_filename (f->project, "gone", NULL);
  /* root writes into a 0555 folder anyway; nobody creates files in /proc. */
  const char *read_only = geteuid () == 0 ? "/proc" : f->project;

  if (geteuid () != 0)
    g_assert_cmpint (g_chmod (f->project, 0555), ==, 0);
  g_assert_false (atelier_export_asset (f->image, read_only, &formats, NULL, NULL, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, read_only));
  g_clear_error (&error);
  if (geteuid () != 0)
    g_chmod (f->project, 0755);

  g_assert_false (atelier_export_asset (f->text, missing, &formats, NULL, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, missing));
}

static void
test_import (void)
{
  g_autofree char *folder = make_folder ();
  g_autofree char *with = g_build_filename (folder, "with.png", NULL);
  g_autofree char *without = g_build_filename (folder, "without.png", NULL);
  g_autofree char *not_png = g_build_filename (folder, "not.png", NULL);
  g_autofree char *target = g_build_filename (folder, "copy.png", NULL);
  g_autoptr (AtelierPngImport) import = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  guint8 pixels[4 * 4 * 4] = { 0 };
  JsonObject *params;

  g_assert_true (at_png_write (with, pixels, 4, 4, 4, 16, INFOTEXT, &error));
  g_assert_true (at_png_write (without, pixels, 4, 4, 4, 16, NULL, &error));
  g_assert_true (g_file_set_contents (not_png, "GIF89a", -1, NULL));

  import = atelier_png_import (with, target, &error);
  g_assert_no_error (error);
  assert_same_file (with, target);
  g_assert_cmpstr (import->prompt, ==, "red fox in snow, 雪");
  g_assert_cmpstr (import->model, ==, "tiny");
  g_assert_cmpint (import->seed, ==, 1234);
  g_assert_true (json_parser_load_from_data (parser, import->parameters, -1, NULL));
  params = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (params, "infotext"), ==, INFOTEXT);
  g_assert_cmpstr (json_object_get_string_member (params, "negative_prompt"), ==, "blurry");
  g_assert_cmpint (json_object_get_int_member (params, "steps"), ==, 20);
  g_assert_cmpfloat (json_object_get_double_member (params, "cfg_scale"), ==, 7);
  g_assert_cmpint (json_object_get_int_member (params, "width"), ==, 37);
  g_assert_cmpstr (json_object_get_string_member (params, "sampler"), ==, "Euler a");
  g_clear_pointer (&import, atelier_png_import_free);

  g_unlink (target);
  import = atelier_png_import (without, target, &error);
  g_assert_no_error (error);
  g_assert_null (import->parameters);
  g_assert_null (import->prompt);
  g_assert_cmpint (import->seed, ==, -1);
  g_clear_pointer (&import, atelier_png_import_free);

  g_unlink (target);
  import = atelier_png_import (not_png, target, &error);
  g_assert_null (import);
  g_assert_nonnull (error);
  g_assert_false (g_file_test (target, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  g_autofree char *data_dirs = g_strdup (g_getenv ("XDG_DATA_DIRS"));

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  /* GdkPixbuf tells a JPEG by its MIME type, from the system's MIME database. */
  g_setenv ("XDG_DATA_DIRS", data_dirs != NULL ? data_dirs : "/usr/local/share:/usr/share", TRUE);
  g_test_add_func ("/app/export/slug", test_slug);
  g_test_add_func ("/app/export/names", test_names);
  g_test_add ("/app/export/image", Fixture, NULL, fixture_setup, test_image, fixture_teardown);
  g_test_add ("/app/export/sidecar", Fixture, NULL, fixture_setup, test_sidecar,
              fixture_teardown);
  g_test_add ("/app/export/text-and-audio", Fixture, NULL, fixture_setup, test_text_and_audio,
              fixture_teardown);
  g_test_add ("/app/export/async", Fixture, NULL, fixture_setup, test_async, fixture_teardown);
  g_test_add ("/app/export/unwritable", Fixture, NULL, fixture_setup, test_unwritable,
              fixture_teardown);
  g_test_add_func ("/app/export/import", test_import);
  return g_test_run ();
}
