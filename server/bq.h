/* bq.h - the batch queue: texts from many requests, batched and run on a pool of worker
 * threads, each with its own gru_ctx_t per model; timers and shutdown on a libuv loop.
 *
 * A job is one request: n items (texts), each with its model, its token ids and the result
 * buffers the request lends to the queue (sized for that item's model). The submitter first
 * reserves room for the job's items (bq_reserve, which is where back-pressure happens), then
 * hands the job over (bq_submit).
 * From then on the queue owns the job until it calls job->done exactly once, with job->status
 * set: on the worker thread that ran its last text, or on the loop thread (deadline, cancel).
 * Between those two points the submitter must not touch the job, its items or their buffers.
 *
 * Threads: bq_reserve, bq_unreserve, bq_submit and bq_stats may be called from any thread.
 * bq_new, bq_cancel, bq_flush, bq_idle, bq_close run on the loop thread. The observers run
 * under the queue's lock, on a worker or the loop thread: they must be quick and must not call
 * bq_ functions. Workers run gru_forward_batch() on a batch's own arrays and the lent result
 * buffers, then complete its jobs and take the next batch themselves.
 *
 * Models: each text (item) names a bq_model_t, a model with one gru_ctx_t per worker. The owner creates
 * it (bq_model_new, any thread, off the serving path: a reload thread may build and warm one
 * while the queue serves others) and keeps it alive while any job with a text that names it
 * is queued or running, i.e. until that job's done has been called; then it may free it (bq_model_free). The
 * queue keeps no list of models: any number may come and go while it runs.
 *
 * Usage:
 *     bq_model_t *m; bq_model_new(&m, model, opts.workers, 0);
 *     bq_queue_t *q; bq_new(&q, loop, &m, 1, &opts);               // before uv_run
 *     // any thread:
 *     if (bq_reserve(q, job->n_items) == 0) { ...; bq_submit(q, job); }  // done(job) follows
 *     // loop thread, at shutdown:
 *     bq_cancel(q); ... when bq_idle(q): bq_close(q); uv_run finishes; bq_free(q);
 */
#ifndef BQ_H
#define BQ_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "gru.h"

/* ---- types ---- */

typedef struct bq_queue bq_queue_t; /* opaque */
typedef struct bq_model bq_model_t; /* opaque: a model and its worker contexts */
typedef struct bq_job bq_job_t;
typedef void (*bq_done_cb)(bq_job_t *job);
struct bq_item;
/* Runs one item alone on a worker with that worker's context for the job's model (for work
 * that is several forward passes of its own, such as an explanation). Returns 0 or a negative
 * errno (the job then fails with it). Worker thread, outside the queue's lock: may touch only
 * the item and what its data points to. */
typedef int (*bq_run_cb)(gru_ctx_t *ctx, struct bq_item *item);

/* One text of a job. Public: set by the submitter. Private: the rest. */
typedef struct bq_item {
    bq_model_t *model;  /* borrowed: must outlive the job (until done is called); the texts of
                           one job may go to different models (a request routed by language) */
    const int32_t *ids; /* (len) token ids, borrowed until done */
    size_t len;         /* >= 1 */
    float *probs;       /* (C) written by a worker */
    float *gates;       /* gru_gates_floats(cfg, job->gates, len) floats, or NULL */
    float *trajectory;  /* (len, C) or NULL */
    void *data;         /* for the job's run callback, if it has one */
    /* private */
    bq_job_t *_job;
    struct bq_item *_prev, *_next; /* in a pending list */
    int _pending;                  /* 1 while in a pending list */
} bq_item_t;

struct bq_job {
    /* public: set by the submitter before bq_submit */
    gru_gates_mode_t gates;  /* for all its items */
    bq_item_t *items;        /* (n_items) */
    size_t n_items;
    bq_done_cb done;         /* called once, on a worker or the loop thread */
    bq_run_cb run;           /* NULL: its items are texts, batched with others'; else each item
                                runs alone through run() (not counted by on_batch) */
    void *data;              /* for the submitter */
    /* public, read-only in done */
    int status;              /* 0; -ETIMEDOUT (deadline passed in the queue); -ECANCELED
                                (shutdown); -ENOMEM or -EINVAL (the engine failed) */
    uint64_t t_submit_ns;    /* bq_submit (monotonic clock) */
    uint64_t t_start_ns;     /* first item's batch started computing (0: never) */
    uint64_t t_end_ns;       /* done */
    size_t batch_max;        /* texts in the largest batch an item ran in */
    /* private */
    bq_job_t *_next;
    size_t _outstanding;     /* items not yet finished */
    uint64_t _deadline_ns;
};

/* Queue settings. */
typedef struct {
    int workers;             /* worker threads (concurrent batches), one gru_ctx_t per model each */
    size_t max_batch;        /* texts per batch */
    size_t max_batch_tokens; /* tokens per batch (a longer single text still runs alone) */
    uint64_t max_delay_us;   /* 0: dispatch what is queued as soon as a worker is free */
    size_t max_queue;        /* texts reserved and not yet running; beyond it -EAGAIN */
    uint64_t timeout_ms;     /* deadline of a text in the queue */
    int warmup;              /* bq_new runs one batch on each worker's context of the models given */
    /* Observers (may be NULL; under the queue's lock, see above): one call per batch, one per
     * text that waited. model_id: the id given to bq_model_new (e.g. a metrics slot). */
    void (*on_batch)(void *data, size_t model_id, size_t texts, size_t tokens, uint64_t compute_ns);
    void (*on_wait)(void *data, uint64_t wait_ns);
    void *observer_data;
} bq_options_t;

/* Counters for /metrics (a snapshot; any thread). */
typedef struct {
    size_t depth;   /* texts reserved and not yet running */
    int busy;       /* batches running */
    int workers;
} bq_stats_t;

/* ---- prototypes ---- */

/* A queue's view of model (borrowed: it must outlive the result): one scratch context for each
 * of workers workers (workers >= the queue's opt.workers); id is passed to on_batch. Any thread.
 * Returns 0 and a new bq_model_t in *out, -EINVAL or -ENOMEM. */
int bq_model_new(bq_model_t **out, gru_model_t *model, int workers, size_t id);
/* Runs bq_new's warm-up batch (up to 64 texts of 17-24 tokens, within max_batch and
 * max_batch_tokens) through each of m's contexts on the calling thread, before m is used by a
 * queue: the contexts' scratch memory is allocated and the weights are paged in. Returns 0,
 * -ENOMEM, or -ERANGE when the model answers with probabilities outside [0, 1] (NaN). */
int bq_model_warm(bq_model_t *m, size_t max_batch, size_t max_batch_tokens);
/* Frees m's contexts (not the model). No job naming m may be queued or running any more (the
 * done of the last one has been called). NULL ok. */
void bq_model_free(bq_model_t *m);
gru_model_t *bq_model_engine(const bq_model_t *m); /* borrowed */

/* Creates the queue on loop (its handles are initialized here; call before uv_run, on the
 * thread that will run the loop) and starts its workers (after their warm-up: with
 * opt->warmup, each runs one batch through its context of each of the n_warm models in warm,
 * borrowed for the call). Returns 0 or -ENOMEM / -EINVAL (or the warm-up's failure), with
 * nothing left allocated. */
int bq_new(bq_queue_t **out, uv_loop_t *loop, bq_model_t *const *warm, size_t n_warm, const bq_options_t *opt);
/* Stops the workers and frees the queue, after bq_close and after the loop has run the close
 * callbacks. NULL is ok. */
void bq_free(bq_queue_t *q);

/* Reserves room for n texts. Returns 0, -EAGAIN when the queue is full, or -ECANCELED after
 * bq_cancel. Any thread. Each successful reserve must be followed by bq_submit of a job of n
 * items or by bq_unreserve(q, n). */
int bq_reserve(bq_queue_t *q, size_t n);
void bq_unreserve(bq_queue_t *q, size_t n);

/* Hands job over (its n_items were reserved). Never fails: job->done(job) is called exactly
 * once, later, on a worker or the loop thread, never inside bq_submit itself (it may run
 * before bq_submit returns: do everything that must precede done, such as
 * MHD_suspend_connection, before bq_submit). Any thread. */
void bq_submit(bq_queue_t *q, bq_job_t *job);

/* Loop thread: refuse new reservations; fail every queued text (its job gets -ECANCELED);
 * let running batches finish. */
void bq_cancel(bq_queue_t *q);
/* Loop thread: stop waiting for fuller batches (max_delay_us becomes 0); used when draining. */
void bq_flush(bq_queue_t *q);
/* Loop thread: 1 when nothing is reserved, queued or running. */
int bq_idle(bq_queue_t *q);
/* Loop thread: closes the queue's handles (after bq_idle). */
void bq_close(bq_queue_t *q);

void bq_stats(bq_queue_t *q, bq_stats_t *out); /* any thread */

#endif /* BQ_H */
