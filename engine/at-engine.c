#include "at-engine-private.h"

#include "at-error.h"

struct _AtEngine {
  GObject parent_instance;
  AtGpu *gpu;
  GThreadPool *worker; /* one thread: jobs run in order */
};

G_DEFINE_FINAL_TYPE (AtEngine, at_engine, G_TYPE_OBJECT)

typedef struct {
  AtEngine *engine;
  GTask *task;
  AtJobFunc func;
} Job;

static void
run_job (gpointer data, gpointer user_data)
{
  Job *job = data;

  if (!g_task_return_error_if_cancelled (job->task))
    job->func (job->engine, job->task, g_task_get_task_data (job->task),
               g_task_get_cancellable (job->task));
  g_object_unref (job->task);
  g_object_unref (job->engine);
  g_free (job);
}

static void
at_engine_finalize (GObject *object)
{
  AtEngine *engine = AT_ENGINE (object);

  /* Queued jobs hold a reference to the engine, so none is left when this runs. */
  if (engine->worker)
    g_thread_pool_free (engine->worker, FALSE, TRUE);
  g_clear_pointer (&engine->gpu, at_gpu_free);
  G_OBJECT_CLASS (at_engine_parent_class)->finalize (object);
}

static void
at_engine_class_init (AtEngineClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = at_engine_finalize;
}

static void
at_engine_init (AtEngine *engine)
{
}

AtEngine *
at_engine_new (const char *device_selector, GError **error)
{
  g_autoptr (AtEngine) engine = g_object_new (AT_TYPE_ENGINE, NULL);

  engine->gpu = at_gpu_new (device_selector, error);
  if (engine->gpu == NULL)
    return NULL;
  engine->worker = g_thread_pool_new (run_job, NULL, 1, TRUE, error);
  if (engine->worker == NULL)
    return NULL;
  return g_steal_pointer (&engine);
}

AtGpu *
at_engine_get_gpu (AtEngine *engine)
{
  g_return_val_if_fail (AT_IS_ENGINE (engine), NULL);
  return engine->gpu;
}

const char *
at_engine_get_device_name (AtEngine *engine)
{
  g_return_val_if_fail (AT_IS_ENGINE (engine), NULL);
  return at_gpu_get_info (engine->gpu)->name;
}

gboolean
at_engine_is_software_device (AtEngine *engine)
{
  g_return_val_if_fail (AT_IS_ENGINE (engine), FALSE);
  return at_gpu_get_info (engine->gpu)->type == VK_PHYSICAL_DEVICE_TYPE_CPU;
}

guint64
at_engine_get_memory_used (AtEngine *engine, guint64 *total)
{
  g_return_val_if_fail (AT_IS_ENGINE (engine), 0);
  if (total)
    *total = at_gpu_get_info (engine->gpu)->device_local_bytes;
  return at_gpu_get_allocated_bytes (engine->gpu, NULL);
}

void
at_engine_queue_job (AtEngine *engine, GTask *task, AtJobFunc func)
{
  Job *job = g_new0 (Job, 1);

  g_return_if_fail (AT_IS_ENGINE (engine));
  job->engine = g_object_ref (engine);
  job->task = g_object_ref (task);
  job->func = func;
  g_thread_pool_push (engine->worker, job, NULL);
}

void
at_engine_job_notify (GTask *task, GSourceFunc func, gpointer data, GDestroyNotify destroy)
{
  /* Not g_main_context_invoke(): it runs func right here whenever this thread can
   * acquire the context, i.e. whenever the UI thread is not iterating it. */
  g_autoptr (GSource) source = g_idle_source_new ();

  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, func, data, destroy);
  g_source_set_static_name (source, "[atelier] job progress");
  g_source_attach (source, g_task_get_context (task));
}

typedef struct
{
  AtLoadProgress progress;
  gpointer data;
  double fraction;
} ProgressNote;

static gboolean
deliver_progress (gpointer user_data)
{
  ProgressNote *note = user_data;

  note->progress (note->fraction, note->data);
  return G_SOURCE_REMOVE;
}

void
at_engine_job_progress (GTask *task, AtLoadProgress progress, gpointer progress_data,
                        double fraction)
{
  ProgressNote *note;

  if (progress == NULL)
    return;
  note = g_new (ProgressNote, 1);
  *note = (ProgressNote){ progress, progress_data, fraction };
  at_engine_job_notify (task, deliver_progress, note, g_free);
}

gboolean
at_gpu_check_free_memory (AtGpu *gpu, const char *what, guint64 needed, GError **error)
{
  const guint64 total = at_gpu_get_info (gpu)->device_local_bytes;
  const guint64 used = at_gpu_get_allocated_bytes (gpu, NULL);
  const guint64 free_bytes = total > used ? total - used : 0;
  g_autofree char *needed_text = NULL, *free_text = NULL;

  if (needed <= free_bytes)
    return TRUE;
  needed_text = g_format_size_full (needed, G_FORMAT_SIZE_IEC_UNITS);
  free_text = g_format_size_full (free_bytes, G_FORMAT_SIZE_IEC_UNITS);
  g_set_error (error, AT_ERROR, AT_ERROR_OUT_OF_MEMORY, "%s needs %s of GPU memory, %s free",
               what, needed_text, free_text);
  return FALSE;
}

typedef struct
{
  AtLoadData data;
  AtLoadFunc load;
} LoadJob;

static void
load_job_free (LoadJob *job)
{
  g_free (job->data.path);
  g_free (job);
}

static void
run_load_job (AtEngine *engine, GTask *task, gpointer task_data, GCancellable *cancellable)
{
  LoadJob *job = task_data;
  GError *error = NULL;
  GObject *model = job->load (engine, &job->data, cancellable, &error);

  if (model == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, model, g_object_unref);
}

void
at_engine_queue_load (AtEngine *engine, const char *path, gint64 n_ctx, AtLoadFunc load,
                      gpointer source_tag, GCancellable *cancellable, AtLoadProgress progress,
                      gpointer progress_data, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (engine, cancellable, callback, user_data);
  LoadJob *job = g_new0 (LoadJob, 1);

  job->data.path = g_strdup (path);
  job->data.n_ctx = n_ctx;
  job->data.progress = progress;
  job->data.progress_data = progress_data;
  job->data.task = task;
  job->load = load;
  g_task_set_source_tag (task, source_tag);
  g_task_set_task_data (task, job, (GDestroyNotify)load_job_free);
  at_engine_queue_job (engine, task, run_load_job);
}

gpointer
at_engine_load_finish (GAsyncResult *result, gpointer source_tag, GError **error)
{
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
at_load_data_progress (AtLoadData *data, double fraction)
{
  at_engine_job_progress (data->task, data->progress, data->progress_data, fraction);
}
