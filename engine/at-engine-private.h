/* at-engine-private.h: what models and other engine parts use of AtEngine. */
#pragma once

#include "at-engine.h"
#include "gpu/at-gpu.h"

G_BEGIN_DECLS

AtGpu *at_engine_get_gpu (AtEngine *engine);

/* A job runs on the engine's worker thread, one at a time in queue order (one GPU
 * queue). It must return a result on task (g_task_return_*), which GTask delivers on
 * the main context that created the task. */
typedef void (*AtJobFunc) (AtEngine *engine, GTask *task, gpointer task_data,
                           GCancellable *cancellable);

void at_engine_queue_job (AtEngine *engine, GTask *task, AtJobFunc func);

/* Calls func (data) on the main context of task, from a job; for progress reports. */
void at_engine_job_notify (GTask *task, GSourceFunc func, gpointer data,
                           GDestroyNotify destroy);

/* A model file being loaded by a job. */
typedef struct
{
  char *path;
  gint64 n_ctx; /* language models: context positions (<= 0: the model's) */
  AtLoadProgress progress;
  gpointer progress_data;
  GTask *task; /* not a reference: the job holds one while it runs */
} AtLoadData;

/* Opens a model on the worker: returns a new object, or NULL with error set. */
typedef GObject *(*AtLoadFunc) (AtEngine *engine, AtLoadData *data, GCancellable *cancellable,
                                GError **error);

/* Queues load (path, ...) as a job on engine; its result comes back through
 * at_engine_load_finish with the same source_tag. */
void at_engine_queue_load (AtEngine *engine, const char *path, gint64 n_ctx, AtLoadFunc load,
                           gpointer source_tag, GCancellable *cancellable,
                           AtLoadProgress progress, gpointer progress_data,
                           GAsyncReadyCallback callback, gpointer user_data);
gpointer at_engine_load_finish (GAsyncResult *result, gpointer source_tag, GError **error);
/* Reports a loading job's progress (fraction 0 to 1). */
void at_load_data_progress (AtLoadData *data, double fraction);

/* Reports progress (when progress is not NULL) from a job, through at_engine_job_notify. */
void at_engine_job_progress (GTask *task, AtLoadProgress progress, gpointer progress_data,
                             double fraction);

/* Refuses, before anything is uploaded, work needing more GPU memory than is free:
 * AT_ERROR_OUT_OF_MEMORY "WHAT needs N of GPU memory, M free". */
gboolean at_gpu_check_free_memory (AtGpu *gpu, const char *what, guint64 needed,
                                   GError **error);

G_END_DECLS
