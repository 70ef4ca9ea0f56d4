/* Safetensors reader and writer: round trip, and every kind of malformed file ending in a
 * clean GError that names the problem. */
#include <glib/gstdio.h>
#include <string.h>

#include "at-error.h"
#include "formats/at-safetensors-writer.h"
#include "formats/at-safetensors.h"

static GBytes *
ramp_bytes (gsize size)
{
  guint8 *data = g_malloc (size);
  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (i * 7 + 3);
  return g_bytes_new_take (data, size);
}

/* A small file with three tensors of the supported types, a scalar and metadata. */
static char *
write_valid_file (void)
{
  g_autoptr (AtSafetensorsWriter) writer = at_safetensors_writer_new ();
  g_autoptr (GError) error = NULL;
  const gint64 ne_a[] = { 5, 3 }, ne_b[] = { 7 }, ne_c[] = { 2, 1, 3, 2 };
  g_autoptr (GBytes) a = ramp_bytes (5 * 3 * 4);
  g_autoptr (GBytes) b = ramp_bytes (7 * 2);
  g_autoptr (GBytes) c = ramp_bytes (12 * 2);
  g_autoptr (GBytes) s = ramp_bytes (4);

  at_safetensors_writer_set_metadata (writer, "format", "pt");
  at_safetensors_writer_set_metadata (writer, "ss_network_dim", "4");
  g_assert_true (at_safetensors_writer_add_tensor (writer, "model.a.weight", AT_TYPE_F32, 2, ne_a,
                                                   a, &error));
  g_assert_true (at_safetensors_writer_add_tensor (writer, "b", AT_TYPE_F16, 1, ne_b, b, &error));
  g_assert_true (at_safetensors_writer_add_tensor (writer, "c", AT_TYPE_BF16, 4, ne_c, c, &error));
  g_assert_true (at_safetensors_writer_add_tensor (writer, "scale", AT_TYPE_F32, 0, NULL, s,
                                                   &error));
  g_assert_no_error (error);

  char *path = g_build_filename (g_get_tmp_dir (), "at-test-XXXXXX.safetensors", NULL);
  int fd = g_mkstemp (path);
  g_assert_cmpint (fd, >=, 0);
  g_close (fd, NULL);
  g_assert_true (at_safetensors_writer_write (writer, path, &error));
  g_assert_no_error (error);
  return path;
}

static void
check_tensor (AtSafetensors *st, const char *name, AtType type, guint n_dims, const gint64 *ne)
{
  const AtSafetensorsTensor *t = at_safetensors_lookup (st, name);
  g_assert_nonnull (t);
  g_assert_cmpstr (t->name, ==, name);
  g_assert_true (t->supported);
  g_assert_cmpint (t->type, ==, type);
  g_assert_cmpuint (t->n_dims, ==, n_dims);
  gint64 n = 1;
  for (guint i = 0; i < n_dims; i++)
    {
      g_assert_cmpint (t->ne[i], ==, ne[i]);
      n *= ne[i];
    }
  g_assert_cmpint (t->n_elements, ==, n);
  g_assert_cmpuint (t->size, ==, at_type_row_size (type, n));
  g_autoptr (GBytes) expected = ramp_bytes (t->size);
  g_assert_cmpmem (t->data, t->size, g_bytes_get_data (expected, NULL), t->size);
}

static void
test_round_trip (void)
{
  g_autofree char *path = write_valid_file ();
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_open (path, &error);
  g_assert_no_error (error);

  const gint64 ne_a[] = { 5, 3 }, ne_b[] = { 7 }, ne_c[] = { 2, 1, 3, 2 };
  check_tensor (st, "model.a.weight", AT_TYPE_F32, 2, ne_a);
  check_tensor (st, "b", AT_TYPE_F16, 1, ne_b);
  check_tensor (st, "c", AT_TYPE_BF16, 4, ne_c);
  check_tensor (st, "scale", AT_TYPE_F32, 0, NULL);
  g_assert_null (at_safetensors_lookup (st, "missing"));

  const char *sorted[] = { "b", "c", "model.a.weight", "scale" };
  g_assert_cmpuint (at_safetensors_get_n_tensors (st), ==, G_N_ELEMENTS (sorted));
  for (guint i = 0; i < G_N_ELEMENTS (sorted); i++)
    g_assert_cmpstr (at_safetensors_get_tensor (st, i)->name, ==, sorted[i]);

  g_assert_cmpstr (at_safetensors_get_metadata (st, "format"), ==, "pt");
  g_assert_cmpstr (at_safetensors_get_metadata (st, "ss_network_dim"), ==, "4");
  g_assert_null (at_safetensors_get_metadata (st, "nothing"));
  const char *const *keys = at_safetensors_get_metadata_keys (st);
  g_assert_cmpstrv (keys, ((const char *[]) { "format", "ss_network_dim", NULL }));

  /* The data section starts 8-byte aligned, as the writer pads the header. */
  g_assert_cmpuint (at_safetensors_lookup (st, "model.a.weight")->offset % 8, ==, 0);
  g_unlink (path);
}

static void
test_writer_refuses (void)
{
  g_autoptr (AtSafetensorsWriter) writer = at_safetensors_writer_new ();
  g_autoptr (GBytes) data = ramp_bytes (8);
  const gint64 ne[] = { 2 };
  GError *error = NULL;

  g_assert_false (at_safetensors_writer_add_tensor (writer, "q", AT_TYPE_Q8_0, 1, ne, data,
                                                    &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (at_safetensors_writer_add_tensor (writer, "x", AT_TYPE_F16, 1, ne, data,
                                                    &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (at_safetensors_writer_add_tensor (writer, "x", AT_TYPE_F32, 1, ne, data, &error));
  g_assert_false (at_safetensors_writer_add_tensor (writer, "x", AT_TYPE_F32, 1, ne, data,
                                                    &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* A write that cannot finish leaves no file behind. */
  g_autofree char *dir = g_dir_make_tmp ("at-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "missing", "x.safetensors", NULL);
  g_assert_false (at_safetensors_writer_write (writer, path, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_rmdir (dir);
}

static void
assert_invalid (GBytes *bytes, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_new_from_bytes (bytes, "model.safetensors",
                                                                &error);
  g_assert_null (st);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_true (g_str_has_prefix (error->message, "model.safetensors: "));
  if (fragment != NULL && strstr (error->message, fragment) == NULL)
    g_error ("expected '%s' in: %s", fragment, error->message);
}

static void
test_truncated (void)
{
  g_autofree char *path = write_valid_file ();
  g_autofree char *contents = NULL;
  gsize length;
  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  g_unlink (path);

  /* Every proper prefix is missing header or data bytes. */
  for (gsize n = 0; n < length; n++)
    {
      g_autoptr (GBytes) prefix = g_bytes_new (contents, n);
      assert_invalid (prefix, NULL);
    }
  g_autoptr (GBytes) whole = g_bytes_new (contents, length);
  g_autoptr (AtSafetensors) st = at_safetensors_new_from_bytes (whole, "whole", NULL);
  g_assert_nonnull (st);
}

/* A file of header length declared, then header_size bytes of header, then data_size bytes
 * of data. */
static GBytes *
make_file_with_length (guint64 declared, const char *header, gsize header_size, gsize data_size)
{
  GByteArray *file = g_byte_array_new ();
  for (int i = 0; i < 8; i++)
    {
      guint8 b = (guint8) (declared >> (8 * i));
      g_byte_array_append (file, &b, 1);
    }
  g_byte_array_append (file, (const guint8 *) header, header_size);
  for (gsize i = 0; i < data_size; i++)
    {
      guint8 b = (guint8) i;
      g_byte_array_append (file, &b, 1);
    }
  return g_byte_array_free_to_bytes (file);
}

static GBytes *
make_file (const char *header, gsize data_size)
{
  return make_file_with_length (strlen (header), header, strlen (header), data_size);
}

static void
assert_header_invalid (const char *header, gsize data_size, const char *fragment)
{
  g_autoptr (GBytes) bytes = make_file (header, data_size);
  assert_invalid (bytes, fragment);
}

static void
test_bad_header_length (void)
{
  g_autoptr (GBytes) tiny = g_bytes_new ("\2\0\0", 3);
  assert_invalid (tiny, "too short");
  g_autoptr (GBytes) huge = make_file_with_length (G_GUINT64_CONSTANT (1) << 63, "{}", 2, 0);
  assert_invalid (huge, "over the limit");
  g_autoptr (GBytes) big = make_file_with_length (200u * 1000 * 1000, "{}", 2, 0);
  assert_invalid (big, "over the limit");
  g_autoptr (GBytes) past = make_file_with_length (3, "{}", 2, 0);
  assert_invalid (past, "header length 3 is past the end of the file");
}

static void
test_bad_json (void)
{
  assert_header_invalid ("", 0, "not a JSON object");
  assert_header_invalid ("{\"a\": ", 0, "not valid JSON");
  assert_header_invalid ("{\"a\": {\"dtype\": \"F32\",}}", 0, "not valid JSON");
  assert_header_invalid ("[1, 2]", 0, "not a JSON object");
  assert_header_invalid ("\"text\"", 0, "not a JSON object");

  g_autoptr (GBytes) nul = make_file_with_length (4, "{}\0 ", 4, 0);
  assert_invalid (nul, "not valid JSON");

  g_autoptr (GString) deep = g_string_new ("{\"a\": ");
  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  assert_header_invalid (deep->str, 0, "nests deeper");
}

static void
test_bad_fields (void)
{
  assert_header_invalid ("{\"t\": 3}", 0, "tensor 't' is not an object");
  assert_header_invalid ("{\"t\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                         "tensor 't' has no dtype string");
  assert_header_invalid ("{\"t\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                         "no dtype string");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": \"1\", \"data_offsets\": [0, 4]}}",
                         4, "no shape array");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}",
                         4, "shape that is not a list of sizes");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
                         4, "shape that is not a list of sizes");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [[1]], \"data_offsets\": [0, 4]}}",
                         4, "shape that is not a list of sizes");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {}}}", 4,
                         "no data_offsets array");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4]}}", 4,
                         "data_offsets that are not two offsets");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}",
                         8, "not two offsets");
  assert_header_invalid (
    "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", \"4\"]}}", 4,
    "not two offsets");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, -4]}}",
                         4, "not two offsets");
  assert_header_invalid ("{\"__metadata__\": [\"a\"]}", 0, "'__metadata__' is not an object");
  assert_header_invalid ("{\"__metadata__\": {\"epochs\": 3}}", 0,
                         "metadata 'epochs' is not a string");
}

static void
test_bad_offsets (void)
{
  assert_header_invalid (
    "{\"model.diffusion_model.out.2.weight\": {\"dtype\": \"F16\", \"shape\": [2, 4], "
    "\"data_offsets\": [0, 16]}}",
    15, "model.safetensors: tensor 'model.diffusion_model.out.2.weight' ends past the end of "
        "the file");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
                         "[18446744073709551615, 4]}}",
                         4, "not two offsets");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}",
                         8, "ends before it begins");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": "
                         "[0, 12]}}",
                         16, "tensor 't' has 12 bytes of data, but shape [2, 2] of F32 needs 16");
  assert_header_invalid ("{\"t\": {\"dtype\": \"I64\", \"shape\": [3], \"data_offsets\": [0, 12]}}",
                         24, "shape [3] of I64 needs 24");
  assert_header_invalid ("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                         " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                         12, "tensors 'a' and 'b' overlap");
  assert_header_invalid ("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                         " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                         16, "tensors 'a' and 'b' overlap");
  assert_header_invalid (
    "{\"t\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], "
    "\"data_offsets\": [0, 0]}}",
    0, "tensor 't' has a shape [4294967296, 4294967296, 16] too large");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904], "
                         "\"data_offsets\": [0, 0]}}",
                         0, "too large");
  assert_header_invalid ("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                         " \"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                         8, "header names 't' twice");
}

static void
test_unsupported_dtypes (void)
{
  g_autoptr (GBytes) bytes = make_file (
    "{\"fp8\": {\"dtype\": \"F8_E4M3\", \"shape\": [2, 3], \"data_offsets\": [0, 6]},"
    " \"f4\": {\"dtype\": \"F4\", \"shape\": [4], \"data_offsets\": [6, 8]},"
    " \"ids\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [8, 16]},"
    " \"empty\": {\"dtype\": \"F16\", \"shape\": [0, 5], \"data_offsets\": [3, 3]}}     ",
    16);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_new_from_bytes (bytes, "model.safetensors",
                                                                &error);
  g_assert_no_error (error);
  g_assert_cmpuint (at_safetensors_get_n_tensors (st), ==, 4);

  const AtSafetensorsTensor *fp8 = at_safetensors_lookup (st, "fp8");
  g_assert_false (fp8->supported);
  g_assert_cmpstr (fp8->dtype, ==, "F8_E4M3");
  g_assert_cmpint (fp8->ne[0], ==, 3);
  g_assert_cmpint (fp8->ne[1], ==, 2);
  g_assert_false (at_safetensors_tensor_check_supported (st, fp8, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_cmpstr (error->message, ==,
                   "model.safetensors: tensor 'fp8' has dtype F8_E4M3, not supported");
  g_clear_error (&error);

  g_assert_false (at_safetensors_lookup (st, "f4")->supported);
  g_assert_false (at_safetensors_lookup (st, "ids")->supported);
  const AtSafetensorsTensor *empty = at_safetensors_lookup (st, "empty");
  g_assert_true (at_safetensors_tensor_check_supported (st, empty, &error));
  g_assert_cmpint (empty->n_elements, ==, 0);
  g_assert_cmpuint (empty->size, ==, 0);

  g_autoptr (GBytes) none = make_file ("{}", 0);
  g_autoptr (AtSafetensors) no_tensors = at_safetensors_new_from_bytes (none, "x", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (at_safetensors_get_n_tensors (no_tensors), ==, 0);
  g_assert_null (at_safetensors_get_metadata_keys (no_tensors)[0]);
}

static void
test_missing_file (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_open ("/nonexistent/model.safetensors", &error);
  g_assert_null (st);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_true (g_str_has_prefix (error->message, "model.safetensors: "));
}

/* Inputs the fuzzer found (or that would have crashed the JSON parser) stay as cases. */
static void
test_crashers (void)
{
  g_autofree char *dir_path = g_test_build_filename (G_TEST_DIST, "data", "safetensors-crashers",
                                                     NULL);
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  g_assert_nonnull (dir);
  guint n = 0;
  for (const char *name; (name = g_dir_read_name (dir)) != NULL; n++)
    {
      g_autofree char *path = g_build_filename (dir_path, name, NULL);
      g_autoptr (GError) error = NULL;
      g_autoptr (AtSafetensors) st = at_safetensors_open (path, &error);
      g_assert_null (st);
      g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
    }
  g_assert_cmpuint (n, >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/formats/safetensors/round-trip", test_round_trip);
  g_test_add_func ("/formats/safetensors/writer-refuses", test_writer_refuses);
  g_test_add_func ("/formats/safetensors/truncated", test_truncated);
  g_test_add_func ("/formats/safetensors/bad-header-length", test_bad_header_length);
  g_test_add_func ("/formats/safetensors/bad-json", test_bad_json);
  g_test_add_func ("/formats/safetensors/bad-fields", test_bad_fields);
  g_test_add_func ("/formats/safetensors/bad-offsets", test_bad_offsets);
  g_test_add_func ("/formats/safetensors/unsupported-dtypes", test_unsupported_dtypes);
  g_test_add_func ("/formats/safetensors/missing-file", test_missing_file);
  g_test_add_func ("/formats/safetensors/crashers", test_crashers);
  return g_test_run ();
}
