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

G_END_DECLS
