/* at-test.h: shared helpers for the engine's GLib test programs.
 *
 * Each program gets one GPU with the Khronos validation layer on (a validation error
 * is a g_critical, which fails the test), and a seeded random generator whose seed is
 * printed; ATELIER_TEST_SEED=N replays a run.
 */
#pragma once

#include <glib.h>

#include <string.h>

#include "at-error.h"
#include "gpu/at-gpu.h"
#include "ops/at-tensor.h"

G_BEGIN_DECLS

void at_test_init (int *argc, char ***argv);
/* Runs the tests, then closes the GPU and checks that no memory was left allocated. */
int at_test_run (void);

AtGpu *at_test_gpu (void);
guint32 at_test_seed (void);
GRand *at_test_rand (void);

/* n floats uniform in [lo, hi); free with g_free. */
float *at_test_random_floats (gsize n, float lo, float hi);

/* A tensor in its own device buffer; free with at_test_tensor_free. */
typedef struct {
  AtTensor t;
  AtGpuBuffer *buffer;
} AtTestTensor;

AtTestTensor *at_test_tensor_new (AtType type, gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3);
void at_test_tensor_free (AtTestTensor *tensor);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtTestTensor, at_test_tensor_free)

/* Converts values (contiguous, at_tensor_n_elements) to the tensor's type with the
 * reference quantizer and uploads them. */
void at_test_tensor_upload (AtTestTensor *tensor, const float *values);
/* The tensor's raw bytes uploaded as they are. */
void at_test_tensor_upload_raw (AtTestTensor *tensor, const void *bytes, gsize size);
/* Downloads and converts to floats; free with g_free. */
float *at_test_tensor_download (AtTestTensor *tensor);
/* Fills with NaN bit patterns so that any element the op does not write shows. */
void at_test_tensor_poison (AtTestTensor *tensor);

/* Runs the batch and fails the test on error. */
void at_test_run_batch (AtBatch *batch);

/* Relative L2 error ||got - want|| / ||want||; NaN if got holds a NaN or Inf. */
double at_test_rel_l2 (const float *got, const float *want, gsize n);
/* Fails unless every element is finite and the relative L2 error is within tolerance;
 * what names the case in the message. */
void at_test_assert_close (const char *what, const float *got, const float *want, gsize n,
                           double tolerance);

G_END_DECLS
