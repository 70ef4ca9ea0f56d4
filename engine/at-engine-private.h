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

/* Reports progress (when progress is not NULL) from a job, through at_engine_job_notify. */
void at_engine_job_progress (GTask *task, AtLoadProgress progress, gpointer progress_data,
                             double fraction);

/* Refuses, before anything is uploaded, work needing more GPU memory than is free:
 * AT_ERROR_OUT_OF_MEMORY "WHAT needs N of GPU memory, M free". */
gboolean at_gpu_check_free_memory (AtGpu *gpu, const char *what, guint64 needed,
                                   GError **error);

G_END_DECLS
