/* AtEngine: jobs run in order on one worker thread; results and progress arrive on the
 * caller's main context; cancelled jobs end with G_IO_ERROR_CANCELLED. */
#include "at-engine-private.h"
#include "at-test.h"

typedef struct {
  GThread *main_thread;
  GArray *ran;        /* job numbers in the order the worker ran them */
  GArray *finished;   /* job numbers in the order results arrived */
  GThread *worker;
  guint progress_calls;
  guint pending;
  GMainLoop *loop;
} Fixture;

static Fixture fixture;

static gboolean
on_progress (gpointer data)
{
  g_assert_true (g_thread_self () == fixture.main_thread);
  fixture.progress_calls++;
  return G_SOURCE_REMOVE;
}

static void
numbered_job (AtEngine *engine, GTask *task, gpointer task_data, GCancellable *cancellable)
{
  int number = GPOINTER_TO_INT (task_data);

  g_assert_true (g_thread_self () != fixture.main_thread);
  if (fixture.worker == NULL)
    fixture.worker = g_thread_self ();
  g_assert_true (g_thread_self () == fixture.worker);
  g_array_append_val (fixture.ran, number);
  at_engine_job_notify (task, on_progress, NULL, NULL);
  g_usleep (1000);
  g_task_return_int (task, number);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  gssize number = g_task_propagate_int (G_TASK (result), &error);

  g_assert_true (g_thread_self () == fixture.main_thread);
  if (GPOINTER_TO_INT (user_data) == 3)
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      number = -1;
    }
  else
    g_assert_no_error (error);
  g_array_append_val (fixture.finished, number);
  if (--fixture.pending == 0)
    g_main_loop_quit (fixture.loop);
}

static void
test_job_order (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtEngine) engine = at_engine_new (NULL, &error);
  g_autoptr (GCancellable) cancelled = g_cancellable_new ();

  g_assert_no_error (error);
  fixture.main_thread = g_thread_self ();
  fixture.ran = g_array_new (FALSE, FALSE, sizeof (int));
  fixture.finished = g_array_new (FALSE, FALSE, sizeof (int));
  fixture.loop = g_main_loop_new (NULL, FALSE);
  g_cancellable_cancel (cancelled);

  for (int i = 0; i < 8; i++)
    {
      g_autoptr (GTask) task = g_task_new (engine, i == 3 ? cancelled : NULL, on_done,
                                           GINT_TO_POINTER (i));
      g_task_set_task_data (task, GINT_TO_POINTER (i), NULL);
      at_engine_queue_job (engine, task, numbered_job);
      fixture.pending++;
    }
  g_main_loop_run (fixture.loop);

  /* Job 3 was cancelled before it ran: the worker skipped it. */
  g_assert_cmpuint (fixture.ran->len, ==, 7);
  for (guint i = 0; i < fixture.ran->len; i++)
    g_assert_cmpint (g_array_index (fixture.ran, int, i), ==, (int) (i < 3 ? i : i + 1));
  g_assert_cmpuint (fixture.finished->len, ==, 8);
  while (fixture.progress_calls < 7)
    g_main_context_iteration (NULL, TRUE);

  g_array_unref (fixture.ran);
  g_array_unref (fixture.finished);
  g_main_loop_unref (fixture.loop);
}

static void
test_device_facts (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtEngine) engine = at_engine_new (NULL, &error);
  guint64 total = 0;

  g_assert_no_error (error);
  g_assert_nonnull (at_engine_get_device_name (engine));
  at_engine_get_memory_used (engine, &total);
  g_assert_cmpuint (total, >, 0);
  /* Tests run on lavapipe unless ATELIER_DEVICE picks a GPU. */
  if (g_getenv ("ATELIER_DEVICE") == NULL && strstr (at_engine_get_device_name (engine), "llvmpipe"))
    g_assert_true (at_engine_is_software_device (engine));
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/engine/job-order", test_job_order);
  g_test_add_func ("/engine/device-facts", test_device_facts);
  return at_test_run ();
}
