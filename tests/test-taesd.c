/* The TAESD decoder on tiny random-weight files with the real module names: GPU against
 * the CPU reference at the real width and a narrow one, latents of several sizes, and
 * files that are not TAESD decoders. */
#include <glib/gstdio.h>
#include <math.h>

#include "at-error.h"
#include "at-test.h"
#include "formats/at-safetensors-writer.h"
#include "image/at-taesd.h"
#include "ref/at-ref-taesd.h"
#include "ref/at-ref.h"

static char *tmp_dir;

static void
add (AtSafetensorsWriter *writer, const char *name, AtType type, guint n_dims, const gint64 *ne,
     double center, double scale)
{
  g_autoptr (GError) error = NULL;
  gint64 n = 1;

  for (guint i = 0; i < n_dims; i++)
    n *= ne[i];
  g_autofree float *values
      = at_test_random_floats (n, (float)(center - scale), (float)(center + scale));
  guint8 *data = g_malloc (at_type_row_size (type, n));
  at_ref_quantize_row (type, values, data, n);
  g_autoptr (GBytes) bytes = g_bytes_new_take (data, at_type_row_size (type, n));
  g_assert_true (at_safetensors_writer_add_tensor (writer, name, type, n_dims, ne, bytes, &error));
  g_assert_no_error (error);
}

/* A 3x3 conv c_in -> c_out of module name (+ suffix), weights scaled so that activations
 * keep their size through ReLUs and residual sums; bias_center < 0: no bias. */
static void
add_conv (AtSafetensorsWriter *writer, const char *skip, int module, const char *suffix,
          gint64 c_in, gint64 c_out, AtType type, double gain, double bias_center)
{
  g_autofree char *weight = g_strdup_printf ("%d%s.weight", module, suffix);
  g_autofree char *bias = g_strdup_printf ("%d%s.bias", module, suffix);
  const gint64 w_ne[4] = { 3, 3, c_in, c_out };

  if (g_strcmp0 (skip, weight) != 0)
    add (writer, weight, type, 4, w_ne, 0.0, gain / sqrt (3.0 * c_in));
  if (bias_center >= 0 && g_strcmp0 (skip, bias) != 0)
    add (writer, bias, AT_TYPE_F32, 1, &c_out, bias_center, 0.1);
}

/* A TAESD decoder of the given width in module numbering, without tensor `skip`. */
static char *
write_taesd (gint64 width, AtType type, const char *skip)
{
  g_autoptr (AtSafetensorsWriter) writer = at_safetensors_writer_new ();
  g_autoptr (GError) error = NULL;
  char *path = g_build_filename (tmp_dir, "taesd_decoder.safetensors", NULL);
  int module = 3;

  add_conv (writer, skip, 1, "", 4, width, type, 1.0, 0.0);
  for (int stage = 0; stage < 4; stage++)
    {
      for (int i = 0; i < at_taesd_blocks_per_stage[stage]; i++, module++)
        for (int c = 0; c < 3; c++)
          {
            g_autofree char *suffix = g_strdup_printf (".conv.%d", 2 * c);

            add_conv (writer, skip, module, suffix, width, width, type, 1.0, 0.0);
          }
      if (stage < 3)
        {
          add_conv (writer, skip, module + 1, "", width, width, type, 1.0, -1);
          module += 2;
        }
    }
  /* Small and centred on mid-grey so that most of the image is inside [0, 1], not
   * clamped. */
  add_conv (writer, skip, module, "", width, 3, type, 0.1, 0.5);
  g_assert_true (at_safetensors_writer_write (writer, path, &error));
  g_assert_no_error (error);
  return path;
}

static void
check_decode (AtTaesd *taesd, const AtTaesdFile *file, gint64 w, gint64 h)
{
  const gint64 n = 64 * w * h * 3;
  g_autofree float *latent = at_test_random_floats (w * h * 4, -4, 4);
  g_autofree float *got = g_new (float, n), *want = g_new (float, n);
  g_autoptr (GError) error = NULL;
  g_autofree char *what = g_strdup_printf ("taesd width %" G_GINT64_FORMAT
                                           " latent %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                                           file->width, w, h);
  gint64 inside = 0;

  g_assert_true (at_taesd_decode (taesd, latent, w, h, got, &error));
  g_assert_no_error (error);
  at_ref_taesd_decode (file, latent, w, h, want);
  for (gint64 i = 0; i < n; i++)
    inside += want[i] > 0 && want[i] < 1;
  /* Most values must be unclamped for the comparison to say anything. */
  g_assert_cmpint (inside, >, n / 2);
  /* Fourteen convs of up to 9 * 64 products accumulated in F32 against double, the
   * weights the same on both sides. */
  at_test_assert_close (what, got, want, n, 1e-5);
}

static void
test_decode (gint64 width, AtType type, const gint64 (*sizes)[2], guint n_sizes)
{
  g_autofree char *path = write_taesd (width, type, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_open (path, &error);
  g_autoptr (AtTaesd) taesd = NULL;
  AtTaesdFile file;

  g_assert_no_error (error);
  g_assert_true (at_taesd_file_init (&file, st, &error));
  g_assert_cmpint (file.width, ==, width);
  taesd = at_taesd_new (at_test_gpu (), path, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < n_sizes; i++)
    check_decode (taesd, &file, sizes[i][0], sizes[i][1]);
  g_unlink (path);
}

/* The real width of 64, F16 as the published file; a second size reallocates. */
static void
test_decode_real_width (void)
{
  static const gint64 sizes[][2] = { { 3, 2 }, { 2, 3 } };

  test_decode (64, AT_TYPE_F16, sizes, G_N_ELEMENTS (sizes));
}

/* A narrow width read from the shapes, F32 weights, an 8x8 latent and an odd one. */
static void
test_decode_narrow (void)
{
  static const gint64 sizes[][2] = { { 8, 8 }, { 5, 7 }, { 8, 8 } };

  test_decode (16, AT_TYPE_F32, sizes, G_N_ELEMENTS (sizes));
}

static void
assert_new_fails (const char *path, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtTaesd) taesd = at_taesd_new (at_test_gpu (), path, &error);

  g_assert_null (taesd);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_cmpstr (error->message, ==, message);
}

static void
test_bad_files (void)
{
  g_autofree char *path = NULL;
  g_autoptr (AtSafetensorsWriter) writer = at_safetensors_writer_new ();
  g_autoptr (GError) error = NULL;
  const gint64 ne[2] = { 4, 4 };

  path = write_taesd (8, AT_TYPE_F32, "1.weight");
  assert_new_fails (path, "taesd_decoder.safetensors: not a TAESD decoder ('1.weight' should "
                          "be a 3x3 conv from 4 latent channels)");
  g_free (path);
  path = write_taesd (8, AT_TYPE_F32, "18.conv.4.bias");
  assert_new_fails (path, "taesd_decoder.safetensors: tensor '18.conv.4.bias' is missing");
  g_free (path);

  /* The encoder's first conv takes RGB: refused at its first tensor. */
  add (writer, "1.weight", AT_TYPE_F32, 2, ne, 0, 1);
  add (writer, "0.weight", AT_TYPE_F32, 4, (const gint64[]){ 3, 3, 3, 8 }, 0, 1);
  path = g_build_filename (tmp_dir, "taesd_decoder.safetensors", NULL);
  g_assert_true (at_safetensors_writer_write (writer, path, &error));
  assert_new_fails (path, "taesd_decoder.safetensors: not a TAESD decoder ('1.weight' should "
                          "be a 3x3 conv from 4 latent channels)");
  g_unlink (path);
  g_clear_error (&error);
  g_assert_null (at_taesd_new (at_test_gpu (), "/nonexistent/taesd_decoder.safetensors", &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_true (g_str_has_prefix (error->message, "taesd_decoder.safetensors: "));
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  at_test_init (&argc, &argv);
  tmp_dir = g_dir_make_tmp ("test-taesd-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/taesd/decode-real-width", test_decode_real_width);
  g_test_add_func ("/taesd/decode-narrow", test_decode_narrow);
  g_test_add_func ("/taesd/bad-files", test_bad_files);
  status = at_test_run ();
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return status;
}
