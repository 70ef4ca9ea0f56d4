/* PNG writing and reading with A1111's "parameters" chunk: pixel and metadata round
 * trips, hand-written infotexts in A1111's format, and broken files. */
#include "at-error.h"
#include "formats/at-png.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <png.h>
#include <string.h>

static char *tmpdir;

/* PNG's CRC-32 (ISO 3309), bitwise: a test only needs it to forge chunks. */
static guint32
crc32_of (const char *data, gsize len)
{
  guint32 crc = 0xffffffffu;

  for (gsize i = 0; i < len; i++)
    {
      crc ^= (guchar)data[i];
      for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
  return crc ^ 0xffffffffu;
}

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static guint8 *
test_pixels (guint width, guint height, guint channels)
{
  guint8 *p = g_malloc ((gsize)width * height * channels);

  for (gsize i = 0; i < (gsize)width * height * channels; i++)
    p[i] = (guint8)(i * 7 + i / 13);
  return p;
}

static AtGenerationParams *
sample_params (void)
{
  AtGenerationParams *p = at_generation_params_new ();

  g_free (p->prompt);
  p->prompt
      = g_strdup ("a \"quiet\" harbour at dawn, oil painting\n(fishing boats:1.2), mist: soft");
  g_free (p->negative_prompt);
  p->negative_prompt = g_strdup ("blurry, lowres");
  p->steps = 20;
  p->sampler = g_strdup ("Euler a");
  p->cfg_scale = 7;
  p->seed = 42;
  p->width = 512;
  p->height = 768;
  p->model_hash = g_strdup ("abcdef1234");
  p->model = g_strdup ("v1-5-pruned-emaonly");
  return p;
}

static void
assert_params_equal (const AtGenerationParams *a, const AtGenerationParams *b)
{
  g_assert_cmpstr (a->prompt, ==, b->prompt);
  g_assert_cmpstr (a->negative_prompt, ==, b->negative_prompt);
  g_assert_cmpint (a->steps, ==, b->steps);
  g_assert_cmpstr (a->sampler, ==, b->sampler);
  g_assert_cmpstr (a->schedule_type, ==, b->schedule_type);
  g_assert_cmpfloat (a->cfg_scale, ==, b->cfg_scale);
  g_assert_cmpint (a->seed, ==, b->seed);
  g_assert_cmpuint (a->width, ==, b->width);
  g_assert_cmpuint (a->height, ==, b->height);
  g_assert_cmpstr (a->model_hash, ==, b->model_hash);
  g_assert_cmpstr (a->model, ==, b->model);
  g_assert_cmpfloat (a->denoising_strength, ==, b->denoising_strength);
  g_assert_cmpuint (a->extra->len, ==, b->extra->len);
  for (guint i = 0; i < a->extra->len; i++)
    {
      g_assert_cmpstr (g_array_index (a->extra, AtGenerationParam, i).key, ==,
                       g_array_index (b->extra, AtGenerationParam, i).key);
      g_assert_cmpstr (g_array_index (a->extra, AtGenerationParam, i).value, ==,
                       g_array_index (b->extra, AtGenerationParam, i).value);
    }
}

/* The chunk type ("tEXt", "iTXt") that holds the parameters in the file at path. */
static char *
text_chunk_type (const char *path)
{
  g_autofree char *data = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  for (gsize pos = 8; pos + 12 <= len;)
    {
      guint32 size;

      memcpy (&size, data + pos, 4); /* chunks need not be 4-byte aligned */
      size = GUINT32_FROM_BE (size);

      if (pos + 8 + sizeof "parameters" <= len
          && memcmp (data + pos + 8, "parameters", sizeof "parameters") == 0)
        return g_strndup (data + pos + 4, 4);
      pos += 12 + size;
    }
  return NULL;
}

static void
test_infotext_format (void)
{
  g_autoptr (AtGenerationParams) p = sample_params ();
  g_autofree char *text = NULL;

  g_free (p->prompt);
  p->prompt = g_strdup ("PROMPT");
  g_free (p->negative_prompt);
  p->negative_prompt = g_strdup ("NEG");
  p->height = 512;
  text = at_generation_params_to_text (p);
  g_assert_cmpstr (text, ==,
                   "PROMPT\nNegative prompt: NEG\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
                   "Seed: 42, Size: 512x512, Model hash: abcdef1234, Model: v1-5-pruned-emaonly");

  /* Values with ',' ':' or newlines are JSON strings; no negative prompt, no line. */
  g_free (p->negative_prompt);
  p->negative_prompt = g_strdup ("");
  p->cfg_scale = 7.5;
  p->denoising_strength = 0.75;
  g_free (p->model);
  p->model = g_strdup ("my model, v2: \"final\"");
  at_generation_params_add_extra (p, "Lora hashes", "film: 0123abcd, grain: 4567ef01");
  g_free (text);
  text = at_generation_params_to_text (p);
  g_assert_cmpstr (text, ==,
                   "PROMPT\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, "
                   "Model hash: abcdef1234, Model: \"my model, v2: \\\"final\\\"\", Denoising "
                   "strength: 0.75, Lora hashes: \"film: 0123abcd, grain: 4567ef01\"");
}

static void
round_trip (const AtGenerationParams *p, guint channels, const char *want_chunk)
{
  g_autofree char *path = tmp_path ("round-trip.png");
  g_autofree guint8 *pixels = test_pixels (37, 23, channels);
  g_autofree char *text = at_generation_params_to_text (p);
  g_autoptr (GError) error = NULL;
  g_autofree char *read_text = NULL;
  g_autoptr (AtGenerationParams) read_params = NULL;
  g_autofree guint8 *rgba = NULL;
  g_autofree char *chunk = NULL;
  guint w, h;

  g_assert_true (at_png_write (path, pixels, 37, 23, channels, 37 * channels, text, &error));
  g_assert_no_error (error);
  rgba = at_png_read (path, &w, &h, &read_text, &read_params, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (w, ==, 37);
  g_assert_cmpuint (h, ==, 23);
  for (gsize i = 0; i < 37 * 23; i++)
    for (guint c = 0; c < 4; c++)
      g_assert_cmpuint (rgba[i * 4 + c], ==, c < channels ? pixels[i * channels + c] : 0xff);
  g_assert_cmpstr (read_text, ==, text);
  assert_params_equal (read_params, p);
  chunk = text_chunk_type (path);
  g_assert_cmpstr (chunk, ==, want_chunk);
}

static void
test_round_trip (void)
{
  g_autoptr (AtGenerationParams) p = sample_params ();
  g_autoptr (AtGenerationParams) latin1 = sample_params ();
  g_autoptr (AtGenerationParams) cjk = sample_params ();

  round_trip (p, 4, "tEXt");
  round_trip (p, 3, "tEXt");

  g_free (latin1->prompt);
  latin1->prompt = g_strdup ("café crème, naïve");
  round_trip (latin1, 4, "tEXt");

  g_free (cjk->prompt);
  cjk->prompt = g_strdup ("水墨山水画，远山, \"云雾\"\n一叶扁舟: 渔夫");
  g_free (cjk->negative_prompt);
  cjk->negative_prompt = g_strdup ("模糊, 低质量\n水印");
  cjk->schedule_type = g_strdup ("Karras");
  cjk->denoising_strength = 0.55;
  at_generation_params_add_extra (cjk, "Hires upscale", "2");
  at_generation_params_add_extra (cjk, "Lora hashes", "ink: 89ab, 纸: cdef");
  round_trip (cjk, 4, "iTXt");
}

static void
test_no_parameters (void)
{
  g_autofree char *path = tmp_path ("plain.png");
  g_autofree guint8 *pixels = test_pixels (8, 8, 4);
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  g_autoptr (AtGenerationParams) params = NULL;
  g_autofree guint8 *rgba = NULL;
  guint w, h;

  g_assert_true (at_png_write (path, pixels, 8, 8, 4, 32, NULL, &error));
  rgba = at_png_read (path, &w, &h, &text, &params, &error);
  g_assert_no_error (error);
  g_assert_null (text);
  g_assert_null (params);
  g_assert_cmpmem (rgba, 8 * 8 * 4, pixels, 8 * 8 * 4);
}

/* Other producers' PNGs: 16-bit grey, interlaced, written here with libpng directly,
 * come back as RGBA8 (grey replicated, the high byte kept, opaque alpha). */
static void
test_read_gray16_interlaced (void)
{
  g_autofree char *path = tmp_path ("gray16.png");
  const guint w = 13, h = 9;
  g_autofree guint16 *gray = g_new (guint16, w * h);
  g_autofree png_bytep *rows = g_new (png_bytep, h);
  g_autofree guint8 *rgba = NULL;
  g_autoptr (GError) error = NULL;
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  FILE *f = fopen (path, "wb");
  guint rw, rh;

  g_assert_nonnull (f);
  for (guint i = 0; i < w * h; i++)
    gray[i] = GUINT16_TO_BE ((guint16)(i * 509));
  for (guint y = 0; y < h; y++)
    rows[y] = (png_bytep)(gray + y * w);
  png_init_io (png, f);
  png_set_IHDR (png, info, w, h, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  png_write_image (png, rows);
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  fclose (f);

  rgba = at_png_read (path, &rw, &rh, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rw, ==, w);
  g_assert_cmpuint (rh, ==, h);
  for (guint i = 0; i < w * h; i++)
    {
      guint8 want = (guint8)((i * 509) >> 8);

      g_assert_cmpuint (rgba[i * 4], ==, want);
      g_assert_cmpuint (rgba[i * 4 + 1], ==, want);
      g_assert_cmpuint (rgba[i * 4 + 2], ==, want);
      g_assert_cmpuint (rgba[i * 4 + 3], ==, 0xff);
    }
}

static void
test_parse_a1111 (void)
{
  /* txt2img with hires fix, as A1111 1.10 writes it. */
  const char *hires
      = "masterpiece, best quality, 1girl, (red scarf:1.3), snowy street,\n"
        "night, city lights\n"
        "Negative prompt: (worst quality, low quality:1.4), EasyNegative\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, "
        "Size: 512x768, Model hash: 7f96a1a9ca, Model: anything-v5, Denoising strength: 0.45, "
        "Clip skip: 2, Hires upscale: 2, Hires steps: 15, Hires upscaler: R-ESRGAN 4x+ Anime6B, "
        "Lora hashes: \"scarf: 1a2b3c4d5e6f, snow_v2: 0f9e8d7c6b5a\", TI hashes: \"EasyNegative: "
        "c74b4e810b03\", Version: v1.10.1";
  /* Older A1111: the Karras schedule in the sampler's name, an empty value, "ENSD". */
  const char *old = "a cat\nSteps: 50, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, "
                    "Face restoration: , Size: 768x512, ENSD: 31337";
  /* Not an infotext: one line with fewer than three pairs is all prompt. */
  const char *plain = "portrait: studio light, 85mm";
  g_autoptr (AtGenerationParams) a = at_generation_params_parse (hires);
  g_autoptr (AtGenerationParams) b = at_generation_params_parse (old);
  g_autoptr (AtGenerationParams) c = at_generation_params_parse (plain);
  g_autofree char *again = NULL;
  g_autoptr (AtGenerationParams) a2 = NULL;

  g_assert_cmpstr (a->prompt, ==,
                   "masterpiece, best quality, 1girl, (red scarf:1.3), snowy street,\nnight, "
                   "city lights");
  g_assert_cmpstr (a->negative_prompt, ==, "(worst quality, low quality:1.4), EasyNegative");
  g_assert_cmpint (a->steps, ==, 28);
  g_assert_cmpstr (a->sampler, ==, "DPM++ 2M");
  g_assert_cmpstr (a->schedule_type, ==, "Karras");
  g_assert_cmpfloat (a->cfg_scale, ==, 6.5);
  g_assert_cmpint (a->seed, ==, G_GINT64_CONSTANT (3141592653));
  g_assert_cmpuint (a->width, ==, 512);
  g_assert_cmpuint (a->height, ==, 768);
  g_assert_cmpstr (a->model_hash, ==, "7f96a1a9ca");
  g_assert_cmpstr (a->model, ==, "anything-v5");
  g_assert_cmpfloat (a->denoising_strength, ==, 0.45);
  g_assert_cmpuint (a->extra->len, ==, 7);
  g_assert_cmpstr (at_generation_params_get_extra (a, "Clip skip"), ==, "2");
  g_assert_cmpstr (at_generation_params_get_extra (a, "Hires upscale"), ==, "2");
  g_assert_cmpstr (at_generation_params_get_extra (a, "Hires upscaler"), ==,
                   "R-ESRGAN 4x+ Anime6B");
  g_assert_cmpstr (at_generation_params_get_extra (a, "Lora hashes"), ==,
                   "scarf: 1a2b3c4d5e6f, snow_v2: 0f9e8d7c6b5a");
  g_assert_cmpstr (at_generation_params_get_extra (a, "TI hashes"), ==,
                   "EasyNegative: c74b4e810b03");
  g_assert_cmpstr (at_generation_params_get_extra (a, "Version"), ==, "v1.10.1");

  /* Writing it back and parsing again changes nothing. */
  again = at_generation_params_to_text (a);
  a2 = at_generation_params_parse (again);
  assert_params_equal (a2, a);

  g_assert_cmpstr (b->prompt, ==, "a cat");
  g_assert_cmpstr (b->negative_prompt, ==, "");
  g_assert_cmpstr (b->sampler, ==, "DPM++ 2M Karras");
  g_assert_cmpuint (b->width, ==, 768);
  g_assert_null (at_generation_params_get_extra (b, "Face restoration"));
  g_assert_cmpstr (at_generation_params_get_extra (b, "ENSD"), ==, "31337");

  g_assert_cmpstr (c->prompt, ==, plain);
  g_assert_cmpint (c->steps, ==, 0);
  g_assert_cmpuint (c->extra->len, ==, 0);
}

static void
test_parse_odd_values (void)
{
  /* A known key whose value does not parse stays as an extra pair; a quoted value with
   * an escaped quote and a \u escape is unquoted; an unterminated quote is kept raw. */
  g_autoptr (AtGenerationParams) p = at_generation_params_parse (
      "x\nSteps: many, Sampler: Euler, Seed: 5, Note: \"say \\\"hi\\\", \\u00e9t\\u00e9\", "
      "Broken: \"open, Size: 64x64");

  g_assert_cmpint (p->steps, ==, 0);
  g_assert_cmpstr (at_generation_params_get_extra (p, "Steps"), ==, "many");
  g_assert_cmpstr (at_generation_params_get_extra (p, "Note"), ==, "say \"hi\", été");
  g_assert_cmpstr (at_generation_params_get_extra (p, "Broken"), ==, "\"open");
  g_assert_cmpuint (p->width, ==, 64);
}

static void
assert_read_fails (const char *path, const char *what)
{
  g_autoptr (GError) error = NULL;
  guint w, h;
  g_autofree guint8 *pixels = at_png_read (path, &w, &h, NULL, NULL, &error);

  g_assert_null (pixels);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_nonnull (strstr (error->message, path));
  if (what)
    g_assert_nonnull (strstr (error->message, what));
}

static void
write_bytes (const char *path, const char *data, gsize len)
{
  g_assert_true (g_file_set_contents (path, data, len, NULL));
}

static void
test_malformed (void)
{
  g_autofree char *good = tmp_path ("good.png");
  g_autofree char *bad = tmp_path ("bad.png");
  g_autofree guint8 *pixels = test_pixels (40, 30, 4);
  g_autoptr (AtGenerationParams) params = sample_params ();
  g_autofree char *text = at_generation_params_to_text (params);
  g_autofree char *data = NULL;
  g_autoptr (GError) error = NULL;
  gsize len;
  gsize cuts[] = { 0, 4, 8, 20, 33, 60, 200, 0 };

  g_assert_true (at_png_write (good, pixels, 40, 30, 4, 160, text, &error));
  g_assert_true (g_file_get_contents (good, &data, &len, NULL));
  cuts[G_N_ELEMENTS (cuts) - 1] = len - 1;

  /* Truncated at the signature, inside IHDR, in the text chunk, in IDAT, before IEND. */
  for (guint i = 0; i < G_N_ELEMENTS (cuts); i++)
    {
      write_bytes (bad, data, cuts[i]);
      assert_read_fails (bad, NULL);
    }

  write_bytes (bad, "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
  assert_read_fails (bad, "not a PNG");

  /* A bad CRC on IHDR (bytes 29..32). */
  {
    g_autofree char *copy = g_memdup2 (data, len);

    copy[29] ^= 0x55;
    write_bytes (bad, copy, len);
    assert_read_fails (bad, NULL);
  }
  /* Garbage inside the compressed image data (the last chunk before IEND is IDAT). */
  {
    g_autofree char *copy = g_memdup2 (data, len);

    for (gsize i = len - 40; i < len - 20; i++)
      copy[i] ^= 0xa5;
    write_bytes (bad, copy, len);
    assert_read_fails (bad, NULL);
  }
  /* IHDR claiming 100000 x 100000 (with its CRC fixed up, so only the size is wrong). */
  {
    g_autofree char *copy = g_memdup2 (data, len);
    guint32 side = GUINT32_TO_BE (100000), crc;

    memcpy (copy + 16, &side, 4);
    memcpy (copy + 20, &side, 4);
    crc = GUINT32_TO_BE (crc32_of (copy + 12, 17));
    memcpy (copy + 29, &crc, 4);
    write_bytes (bad, copy, len);
    assert_read_fails (bad, "100000x100000");
  }

  {
    g_autofree char *missing = tmp_path ("missing.png");
    guint w, h;

    g_clear_error (&error);
    g_assert_null (at_png_read (missing, &w, &h, NULL, NULL, &error));
    g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  }
}

static void
test_write_errors (void)
{
  g_autofree guint8 *pixels = test_pixels (4, 4, 4);
  g_autofree char *path = tmp_path ("never.png");
  g_autofree char *nodir = g_build_filename (tmpdir, "no", "such", "dir.png", NULL);
  g_autoptr (GError) e1 = NULL;
  g_autoptr (GError) e2 = NULL;
  g_autoptr (GError) e3 = NULL;

  g_assert_false (at_png_write (path, pixels, 4, 4, 2, 8, NULL, &e1));
  g_assert_error (e1, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_assert_false (at_png_write (path, pixels, 4, 4, 4, 16, "bad \xff utf-8", &e2));
  g_assert_error (e2, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_false (at_png_write (nodir, pixels, 4, 4, 4, 16, NULL, &e3));
  g_assert_nonnull (e3);
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("atelier-png-XXXXXX", NULL);
  g_assert_nonnull (tmpdir);
  g_test_add_func ("/formats/png/infotext-format", test_infotext_format);
  g_test_add_func ("/formats/png/round-trip", test_round_trip);
  g_test_add_func ("/formats/png/no-parameters", test_no_parameters);
  g_test_add_func ("/formats/png/gray16-interlaced", test_read_gray16_interlaced);
  g_test_add_func ("/formats/png/parse-a1111", test_parse_a1111);
  g_test_add_func ("/formats/png/parse-odd-values", test_parse_odd_values);
  g_test_add_func ("/formats/png/malformed", test_malformed);
  g_test_add_func ("/formats/png/write-errors", test_write_errors);
  ret = g_test_run ();
  {
    g_autoptr (GFile) dir = g_file_new_for_path (tmpdir);
    g_autoptr (GFileEnumerator) e = g_file_enumerate_children (dir, G_FILE_ATTRIBUTE_STANDARD_NAME,
                                                               G_FILE_QUERY_INFO_NONE, NULL, NULL);
    GFileInfo *info;

    while (e && (info = g_file_enumerator_next_file (e, NULL, NULL)))
      {
        g_autofree char *p = g_build_filename (tmpdir, g_file_info_get_name (info), NULL);

        g_unlink (p);
        g_object_unref (info);
      }
    g_rmdir (tmpdir);
  }
  g_free (tmpdir);
  return ret;
}
