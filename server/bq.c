/* bq.c - the batch queue: dynamic batching of texts from many requests onto a pool of worker
 * threads, each with its own gru_ctx_t per model.
 *
 * DESIGN
 * The queue's state (the pending lists, the worker slots, the jobs' bookkeeping) is guarded by
 * one mutex, q->lock, held only for list operations, never while a batch computes. Each text
 * (item) of a job goes into the pending list of its (model, gates mode) pair - texts of one
 * batch share a model and a gates layout - in arrival order. The lists live in the model
 * (bq_model_t, which also holds one gru_ctx_t per worker); a model with pending texts is
 * linked in the queue's active list and unlinked when its last text leaves, so models come and
 * go while the queue runs (hot reload): their owner frees one after the done() of the last job
 * naming it, and nothing in the queue looks at it after that. The texts of one job may name
 * different models (a request routed by language): they then run in different batches, and the
 * job is done (or failed, or timed out) as a whole, as for texts of one model split across
 * batches.
 *
 * A batch is formed whenever a worker slot is free and something is pending (schedule()):
 * - the list whose oldest text is oldest is served first (FIFO across models);
 * - with max_delay_us > 0 a list that is neither full (max_batch texts, max_batch_tokens
 *   tokens) nor old enough waits on a timer; with 0, what is queued goes at once (as Triton's
 *   default) - under load, texts pile up while the workers are busy, so batches grow by
 *   themselves exactly when batching pays;
 * - when more is pending than fits, the oldest text is taken, then the texts whose lengths are
 *   closest to it among the next 4 * max_batch, so a batch holds similar lengths;
 * - while a short batch runs (<= 1024 tokens), another worker starts only with 4 texts (the
 *   matrix kernel's row block) pending: fewer wait for the running batch, as a batch of 1-3
 *   texts would stream all of W_hh per step for them alone.
 * schedule() runs wherever work appears or a slot frees, without a hop through the loop:
 *   - bq_submit (an HTTP thread) with max_delay_us == 0: the texts are listed and, if a slot
 *     is idle, handed to its worker at once (one semaphore post);
 *   - a worker that finished a batch: it completes the batch's jobs and takes the next batch
 *     itself, without sleeping, while texts are pending;
 *   - the loop thread: submissions when max_delay_us > 0 (pushed on a lock-free stack and taken
 *     on each uv_async wakeup, so that the delay timer sees them), the delay timer, bq_flush.
 * The libuv loop thus runs only the timers (delay, deadlines) and shutdown; a thread that is
 * not the loop thread asks it (uv_async_send) only when a timer must be armed.
 *
 * Workers are `workers` threads started by bq_new, one per slot. A slot owns its input and
 * output arrays (sized for max_batch at bq_new) and uses context ctx[slot] of each model, so a
 * ctx is never shared. The contexts' scratch memory is sized by the warm-up batch and grows
 * (gru_forward_batch allocates, on the worker) only when a batch is larger than any before it,
 * then stays.
 *
 * A job with a run callback (POST /v1/explain) has a list of its own per model; each of its
 * items is a batch alone, run through the callback instead of one forward pass (counted as
 * about N^2/2 tokens of running work), and never waits for a fuller batch.
 *
 * Deadlines: every text must start within timeout_ms of its job's submission; one loop timer
 * watches the oldest pending texts (armed by the loop, or at a worker's request when none is
 * armed). A job with a text past its deadline fails with -ETIMEDOUT: its other pending texts are
 * dropped (no work for a request that will get 504), and texts already in a running batch
 * finish first. done() is called when no item of the job is pending or running, exactly once,
 * outside the lock: on the worker that ran its last text, or on the loop thread (deadline,
 * cancel, a failure at submission after cancel).
 *
 * Shutdown: bq_cancel sets the CLOSED bit in the same atomic word that counts reserved texts,
 * so after it no reserve can succeed; pending texts fail with -ECANCELED; running batches
 * finish. bq_idle is true when nothing is reserved, being submitted or running; only then are
 * the handles closed, so no uv_async_send can hit a closed handle. bq_free stops the workers.
 *
 * Ownership of a job: submitter until bq_submit takes the lock (or pushes it on the stack);
 * the queue from then on (a worker reads the items' ids and writes their buffers while their
 * batch runs); the submitter again from done().
 */
#include "bq.h"
#include "srv_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BQ_CLOSED ((size_t)1 << (sizeof(size_t) * 8 - 1))
#define BQ_MODES 3 /* none, summary, full */
#define BQ_LISTS (BQ_MODES + 1) /* per model: one per gates mode, one for items with a run callback */
#define BQ_SCAN_FACTOR 4
#define BQ_SHARE_MIN 4 /* texts for a second concurrent batch (the matrix kernel's row block) */
#define BQ_SHARE_WAIT_TOKENS 1024 /* ... unless the running batches are longer than this */

#define BQ_ASSERT_LOOP_THREAD(q) SRV_ASSERT_THREAD((q)->loop_thread)

/* ------------------------------------------------------------------------------------------ */
/* Types */

typedef struct {
    bq_item_t *head, *tail;
    size_t count, tokens;
    bq_model_t *owner;
} bq_list_t;

struct bq_model {
    gru_model_t *model;  /* borrowed */
    gru_ctx_t **ctx;     /* (workers) one per worker slot */
    int workers;
    size_t id;
    /* Under the queue's lock. */
    bq_list_t pending[BQ_LISTS]; /* one per gates mode, one for items with a run callback */
    size_t n_pending;    /* texts in the lists */
    bq_model_t *_prev, *_next; /* in the queue's active list while n_pending > 0 */
};

/* A worker slot: its thread, contexts and the batch it runs. Fields other than the thread's
 * own are under q->lock; the batch's arrays belong to the worker between go and its finish. */
typedef struct {
    bq_queue_t *q;
    uv_thread_t thread;
    int started;         /* the thread exists (joined in bq_free) */
    uv_sem_t go;         /* posted when a batch is assigned, or to stop */
    int index;           /* the slot's number: each model's ctx[index] is its own */
    int in_use;
    bq_model_t *model;
    gru_gates_mode_t mode;
    bq_run_cb run;       /* NULL: one forward pass over the batch; else run(items[0]) alone */
    size_t n, tokens;
    bq_item_t **items;   /* (max_batch) */
    gru_input_t *in;     /* (max_batch) */
    gru_output_t *out;   /* (max_batch) */
    int rc;
    uint64_t t_start, t_end;
} bq_batch_t;

typedef struct {
    bq_item_t *item;
    size_t dist, order;
} bq_cand_t;

struct bq_queue {
    uv_loop_t *loop;
    uv_async_t async;
    uv_timer_t delay_timer, deadline_timer;
    uv_thread_t loop_thread;
    bq_options_t opt;
    bq_model_t *const *warm; /* bq_new's models to warm up, during bq_new only */
    size_t n_warm;
    int handles; /* initialized handles, for bq_close */

    /* Any thread. */
    _Atomic(bq_job_t *) submitted; /* a stack, newest first (max_delay_us > 0, or after cancel) */
    atomic_size_t reserved;        /* texts reserved and not yet running | BQ_CLOSED */
    atomic_int submitting;         /* bq_submit calls in progress */
    atomic_int busy_shared;        /* copy of busy for bq_stats */
    atomic_int stop;               /* bq_free: workers leave */
    uv_sem_t started;              /* each worker posts once, after its warm-up */
    atomic_int warm_rc;            /* the first warm-up failure, or 0 */

    /* Under lock. */
    uv_mutex_t lock;
    int lock_ok;
    bq_model_t *active;  /* the models with pending texts */
    bq_batch_t *batches; /* (workers) */
    int busy;
    size_t running_tokens; /* tokens of the running batches */
    bq_cand_t *cand;     /* (BQ_SCAN_FACTOR * max_batch) */
    int deadline_armed;  /* the deadline timer runs (loop thread arms it) */
    uint64_t delay_us;   /* opt.max_delay_us, 0 after bq_flush */
};

/* Jobs whose done() is due once the lock is released, linked through _next. */
typedef struct {
    bq_job_t *head, *tail;
} bq_done_list_t;

/* ------------------------------------------------------------------------------------------ */
/* Helpers (under lock unless said otherwise) */

static uint64_t ms_until(uint64_t t, uint64_t now) { return t <= now ? 0 : (t - now + 999999) / 1000000; }

static int on_loop(const bq_queue_t *q) {
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &q->loop_thread);
}

/* The pending list of a submitted item: its model and its job's gates mode, or its model's
 * list of items that run alone (a job with a run callback). */
static bq_list_t *list_of(const bq_item_t *it) {
    return &it->model->pending[it->_job->run ? BQ_MODES : (size_t)it->_job->gates];
}

static void list_push(bq_queue_t *q, bq_list_t *l, bq_item_t *it) {
    bq_model_t *m = l->owner;
    if (m->n_pending++ == 0) { /* link */
        m->_prev = NULL;
        m->_next = q->active;
        if (q->active) q->active->_prev = m;
        q->active = m;
    }
    it->_prev = l->tail;
    it->_next = NULL;
    if (l->tail) l->tail->_next = it;
    else l->head = it;
    l->tail = it;
    l->count++;
    l->tokens += it->len;
    it->_pending = 1;
}

static void list_remove(bq_queue_t *q, bq_list_t *l, bq_item_t *it) {
    bq_model_t *m = l->owner;
    if (--m->n_pending == 0) { /* unlink */
        if (m->_prev) m->_prev->_next = m->_next;
        else q->active = m->_next;
        if (m->_next) m->_next->_prev = m->_prev;
        m->_prev = m->_next = NULL;
    }
    if (it->_prev) it->_prev->_next = it->_next;
    else l->head = it->_next;
    if (it->_next) it->_next->_prev = it->_prev;
    else l->tail = it->_prev;
    l->count--;
    l->tokens -= it->len;
    it->_prev = it->_next = NULL;
    it->_pending = 0;
}

/* done() for every job of the list: without the lock. */
static void run_done(bq_done_list_t *d) {
    for (bq_job_t *job = d->head, *next; job; job = next) {
        next = job->_next;
        job->_next = NULL;
        job->done(job);
    }
    d->head = d->tail = NULL;
}

/* Queues done once nothing of job is pending or running. */
static void job_release(bq_job_t *job, size_t finished, bq_done_list_t *d) {
    SRV_ASSERT(job->_outstanding >= finished);
    job->_outstanding -= finished;
    if (job->_outstanding == 0) {
        job->t_end_ns = srv_now_ns();
        job->_next = NULL;
        if (d->tail) d->tail->_next = job;
        else d->head = job;
        d->tail = job;
    }
}

/* Fails job with status: drops its pending items; done follows when none is running. */
static void job_fail(bq_queue_t *q, bq_job_t *job, int status, bq_done_list_t *d) {
    if (!job->status) job->status = status;
    size_t dropped = 0;
    for (size_t i = 0; i < job->n_items; i++)
        if (job->items[i]._pending) {
            list_remove(q, list_of(&job->items[i]), &job->items[i]);
            dropped++;
        }
    if (dropped) {
        atomic_fetch_sub(&q->reserved, dropped);
        job_release(job, dropped, d);
    }
}

/* Lists the items of a job (taken from the submitter). */
static void job_list(bq_queue_t *q, bq_job_t *job) {
    for (size_t i = 0; i < job->n_items; i++) list_push(q, list_of(&job->items[i]), &job->items[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Timers (loop thread) */

static void on_deadline(uv_timer_t *t);

/* (Re)arms the deadline timer for the oldest pending text, or stops it. Loop thread, locked. */
static void arm_deadline(bq_queue_t *q) {
    uint64_t first = UINT64_MAX;
    for (bq_model_t *m = q->active; m; m = m->_next)
        for (int k = 0; k < BQ_LISTS; k++)
            if (m->pending[k].head && m->pending[k].head->_job->_deadline_ns < first)
                first = m->pending[k].head->_job->_deadline_ns;
    q->deadline_armed = first != UINT64_MAX;
    if (first == UINT64_MAX) uv_timer_stop(&q->deadline_timer);
    else uv_timer_start(&q->deadline_timer, on_deadline, ms_until(first, srv_now_ns()), 0);
}

static void on_deadline(uv_timer_t *t) {
    bq_queue_t *q = t->data;
    bq_done_list_t d = {NULL, NULL};
    uv_mutex_lock(&q->lock);
    uint64_t now = srv_now_ns();
    /* job_fail may unlink any model (a job's texts may name several): look again after each. */
    for (;;) {
        bq_job_t *late = NULL;
        for (bq_model_t *m = q->active; m && !late; m = m->_next)
            for (int k = 0; k < BQ_LISTS && !late; k++)
                if (m->pending[k].head && m->pending[k].head->_job->_deadline_ns <= now)
                    late = m->pending[k].head->_job;
        if (!late) break;
        job_fail(q, late, -ETIMEDOUT, &d);
    }
    arm_deadline(q);
    uv_mutex_unlock(&q->lock);
    run_done(&d);
}

/* ------------------------------------------------------------------------------------------ */
/* Batching */

static int cand_cmp(const void *a, const void *b) {
    const bq_cand_t *x = a, *y = b;
    if (x->dist != y->dist) return x->dist < y->dist ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Moves the texts of the next batch from list l into slot b. */
static void batch_fill(bq_queue_t *q, bq_list_t *l, bq_batch_t *b) {
    const size_t max_b = q->opt.max_batch, max_t = q->opt.max_batch_tokens;
    b->n = b->tokens = 0;
    if (b->run) {
        b->items[b->n++] = l->head; /* an item with its own run goes alone */
    } else if (l->count <= max_b && l->tokens <= max_t) {
        for (bq_item_t *it = l->head; it; it = it->_next) b->items[b->n++] = it;
    } else {
        /* The oldest text, then the closest lengths among the next ones. */
        size_t n = 0, L0 = l->head->len;
        for (bq_item_t *it = l->head; it && n < BQ_SCAN_FACTOR * max_b; it = it->_next, n++)
            q->cand[n] = (bq_cand_t){it, it->len > L0 ? it->len - L0 : L0 - it->len, n};
        qsort(q->cand + 1, n - 1, sizeof *q->cand, cand_cmp);
        size_t tokens = 0;
        for (size_t i = 0; i < n && b->n < max_b; i++) {
            bq_item_t *it = q->cand[i].item;
            if (b->n > 0 && tokens + it->len > max_t) continue;
            b->items[b->n++] = it;
            tokens += it->len;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        bq_item_t *it = b->items[i];
        list_remove(q, l, it);
        b->in[i] = (gru_input_t){it->ids, it->len};
        b->out[i] = (gru_output_t){it->probs, it->gates, it->trajectory};
        b->tokens += it->len;
    }
    if (b->run) b->tokens += b->tokens * b->tokens / 2; /* an explanation's work: ~N^2/2 tokens */
}

static void on_delay(uv_timer_t *t);

/* Assigns batches to free slots while something is pending. `self` is the calling worker's
 * slot (it takes its own next batch without a semaphore post) or NULL. Returns that slot when
 * it got a batch, else NULL. Sets *wake_loop when a timer must be armed by the loop thread. */
static bq_batch_t *schedule(bq_queue_t *q, bq_batch_t *self, int *wake_loop) {
    const int loop = on_loop(q);
    bq_batch_t *mine = NULL;
    while (q->busy < q->opt.workers) {
        bq_list_t *l = NULL;
        for (bq_model_t *m = q->active; m; m = m->_next)
            for (int k = 0; k < BQ_LISTS; k++)
                if (m->pending[k].head &&
                    (!l || m->pending[k].head->_job->t_submit_ns < l->head->_job->t_submit_ns))
                    l = &m->pending[k];
        if (!l) break;
        /* While a short batch runs, another worker starts only with a row block's worth of
         * texts: fewer wait for the running batch's worker, which takes them (with what
         * arrives meanwhile) as soon as it is done - batches of 1-3 would each stream all of
         * W_hh. Behind long batches nothing waits. */
        if (q->busy > 0 && l->count < BQ_SHARE_MIN && l->tokens < q->opt.max_batch_tokens &&
            q->running_tokens <= BQ_SHARE_WAIT_TOKENS)
            break;
        if (q->delay_us > 0 && !l->head->_job->run && l->count < q->opt.max_batch &&
            l->tokens < q->opt.max_batch_tokens) {
            uint64_t due = l->head->_job->t_submit_ns + q->delay_us * 1000u, now = srv_now_ns();
            if (now < due) {
                if (loop) uv_timer_start(&q->delay_timer, on_delay, ms_until(due, now), 0);
                else *wake_loop = 1;
                break;
            }
        }
        bq_batch_t *b = self && !self->in_use ? self : NULL;
        for (int i = 0; i < q->opt.workers && !b; i++)
            if (!q->batches[i].in_use) b = &q->batches[i];
        SRV_ASSERT(b);
        b->model = l->head->model;
        b->mode = l->head->_job->gates;
        b->run = l->head->_job->run;
        batch_fill(q, l, b);
        uint64_t now = srv_now_ns();
        for (size_t i = 0; q->opt.on_wait && i < b->n; i++)
            q->opt.on_wait(q->opt.observer_data, now - b->items[i]->_job->t_submit_ns);
        atomic_fetch_sub(&q->reserved, b->n);
        b->in_use = 1;
        q->busy++;
        q->running_tokens += b->tokens;
        atomic_store(&q->busy_shared, q->busy);
        if (b == self) mine = b;
        else uv_sem_post(&b->go);
    }
    int pending = q->active != NULL;
    if (loop) arm_deadline(q);
    else if (pending && !q->deadline_armed) *wake_loop = 1;
    return mine;
}

static void on_delay(uv_timer_t *t) {
    bq_queue_t *q = t->data;
    int wake = 0;
    uv_mutex_lock(&q->lock);
    schedule(q, NULL, &wake);
    uv_mutex_unlock(&q->lock);
}

/* A batch finished: its jobs' bookkeeping. Under lock. */
static void batch_finish(bq_queue_t *q, bq_batch_t *b, bq_done_list_t *d) {
    b->in_use = 0;
    q->busy--;
    q->running_tokens -= b->tokens;
    atomic_store(&q->busy_shared, q->busy);
    for (size_t i = 0; i < b->n; i++) {
        bq_job_t *job = b->items[i]->_job;
        if (!job->t_start_ns || b->t_start < job->t_start_ns) job->t_start_ns = b->t_start;
        if (b->n > job->batch_max) job->batch_max = b->n;
        if (b->rc < 0) job_fail(q, job, b->rc, d); /* its other texts are not worth running */
        job_release(job, 1, d);
    }
    b->n = 0;
}

/* The warm-up batch: up to 64 texts of 17-24 tokens (a typical full batch of short texts;
 * larger batches grow the scratch when they come), within the batch limits. */
static void warm_shape(size_t max_batch, size_t max_batch_tokens, size_t *B, size_t *T) {
    *B = max_batch < 64 ? max_batch : 64;
    *T = 24;
    while (*B > 1 && *B * *T > max_batch_tokens) *B /= 2;
    if (*T > max_batch_tokens) *T = max_batch_tokens;
}

/* Runs the warm-up batch through ctx (of model): ids (T) and in, out (B) are the caller's,
 * probs B * GRU_MAX_LABELS floats. Returns gru_forward_batch's result, or -ERANGE when a
 * probability is not a number in [0, 1]. */
static int warm_run(gru_ctx_t *ctx, const gru_model_t *model, int32_t *ids, size_t B, size_t T, gru_input_t *in,
                    gru_output_t *out, float *probs) {
    const gru_config_t *c = gru_model_config(model);
    for (size_t t = 0; t < T; t++) ids[t] = (int32_t)((2 + t * 7919) % (size_t)c->vocab_size);
    for (size_t i = 0; i < B; i++) {
        in[i] = (gru_input_t){ids, T > i % 8 ? T - i % 8 : 1};
        out[i] = (gru_output_t){probs + i * GRU_MAX_LABELS, NULL, NULL};
    }
    int rc = gru_forward_batch(ctx, in, out, B, GRU_GATES_NONE);
    for (size_t i = 0; rc == 0 && i < B; i++)
        for (int k = 0; k < c->num_labels; k++)
            if (!(probs[i * GRU_MAX_LABELS + k] >= 0 && probs[i * GRU_MAX_LABELS + k] <= 1)) rc = -ERANGE;
    return rc;
}

/* Warm-up: the warm-up batch through the slot's context of each model given to bq_new, on its
 * thread: the scratch memory of a common batch is allocated, OpenBLAS's per-thread buffers too,
 * and the weights are paged in. Returns 0 or a negative errno. */
static int warmup(bq_batch_t *b) {
    bq_queue_t *q = b->q;
    size_t B, T;
    warm_shape(q->opt.max_batch, q->opt.max_batch_tokens, &B, &T);
    int32_t *ids = calloc(T, sizeof *ids);
    float *probs = calloc(B * GRU_MAX_LABELS, sizeof *probs);
    int rc = ids && probs ? 0 : -ENOMEM;
    for (size_t m = 0; rc == 0 && m < q->n_warm; m++)
        rc = warm_run(q->warm[m]->ctx[b->index], q->warm[m]->model, ids, B, T, b->in, b->out, probs);
    free(ids);
    free(probs);
    return rc;
}

/* A worker thread: warm up, then run the batches its slot is given. */
static void worker_main(void *arg) {
    bq_batch_t *b = arg;
    bq_queue_t *q = b->q;
    if (q->opt.warmup) {
        int rc = warmup(b), zero = 0;
        if (rc < 0) atomic_compare_exchange_strong(&q->warm_rc, &zero, rc);
    }
    uv_sem_post(&q->started);
    uv_sem_wait(&b->go);
    while (!atomic_load(&q->stop)) {
        b->t_start = srv_now_ns();
        if (b->run) b->rc = b->run(b->model->ctx[b->index], b->items[0]);
        else b->rc = gru_forward_batch(b->model->ctx[b->index], b->in, b->out, b->n, b->mode);
        b->t_end = srv_now_ns();
        bq_done_list_t d = {NULL, NULL};
        int wake = 0;
        uv_mutex_lock(&q->lock);
        if (q->opt.on_batch && !b->run)
            q->opt.on_batch(q->opt.observer_data, b->model->id, b->n, b->tokens, b->t_end - b->t_start);
        batch_finish(q, b, &d);
        bq_batch_t *next = schedule(q, b, &wake);
        uv_mutex_unlock(&q->lock);
        if (wake) uv_async_send(&q->async);
        run_done(&d);
        if (!next) uv_sem_wait(&b->go);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Submission */

/* Loop thread: takes the pushed jobs (oldest first) into the lists. Under lock. */
static void take_submitted(bq_queue_t *q, bq_done_list_t *d) {
    bq_job_t *stack = atomic_exchange(&q->submitted, NULL), *fifo = NULL;
    while (stack) { /* newest first → oldest first */
        bq_job_t *next = stack->_next;
        stack->_next = fifo;
        fifo = stack;
        stack = next;
    }
    int canceled = (atomic_load(&q->reserved) & BQ_CLOSED) != 0;
    while (fifo) {
        bq_job_t *job = fifo;
        fifo = job->_next;
        job->_next = NULL;
        job_list(q, job);
        if (canceled) job_fail(q, job, -ECANCELED, d);
    }
}

static void on_async(uv_async_t *h) {
    bq_queue_t *q = h->data;
    BQ_ASSERT_LOOP_THREAD(q);
    bq_done_list_t d = {NULL, NULL};
    int wake = 0;
    uv_mutex_lock(&q->lock);
    take_submitted(q, &d);
    schedule(q, NULL, &wake);
    uv_mutex_unlock(&q->lock);
    run_done(&d);
}

int bq_reserve(bq_queue_t *q, size_t n) {
    size_t cur = atomic_load(&q->reserved);
    do {
        if (cur & BQ_CLOSED) return -ECANCELED;
        if (n > q->opt.max_queue || cur + n > q->opt.max_queue) return -EAGAIN;
    } while (!atomic_compare_exchange_weak(&q->reserved, &cur, cur + n));
    return 0;
}

void bq_unreserve(bq_queue_t *q, size_t n) { atomic_fetch_sub(&q->reserved, n); }

void bq_submit(bq_queue_t *q, bq_job_t *job) {
    SRV_ASSERT(job->n_items > 0 && (unsigned)job->gates < BQ_MODES && job->done);
    for (size_t i = 0; i < job->n_items; i++)
        SRV_ASSERT(job->items[i].model && job->items[i].model->workers >= q->opt.workers);
    job->status = 0;
    job->t_submit_ns = srv_now_ns();
    job->t_start_ns = job->t_end_ns = 0;
    job->batch_max = 0;
    job->_outstanding = job->n_items;
    job->_deadline_ns = job->t_submit_ns + q->opt.timeout_ms * 1000000u;
    for (size_t i = 0; i < job->n_items; i++) {
        job->items[i]._job = job;
        job->items[i]._pending = 0;
    }
    atomic_fetch_add(&q->submitting, 1);
    int wake = 0, direct = 0;
    uv_mutex_lock(&q->lock);
    /* Straight to the lists (and an idle worker) unless the loop must see it first: a batching
     * delay needs its timer; after bq_cancel the job fails on the loop thread, not in here. */
    if (q->delay_us == 0 && !(atomic_load(&q->reserved) & BQ_CLOSED)) {
        direct = 1;
        job_list(q, job);
        schedule(q, NULL, &wake);
    }
    uv_mutex_unlock(&q->lock);
    if (!direct) {
        bq_job_t *head = atomic_load(&q->submitted);
        do job->_next = head;
        while (!atomic_compare_exchange_weak(&q->submitted, &head, job));
        wake = 1;
    }
    if (wake) uv_async_send(&q->async);
    atomic_fetch_sub(&q->submitting, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Models */

int bq_model_new(bq_model_t **out, gru_model_t *model, int workers, size_t id) {
    *out = NULL;
    if (!model || workers < 1) return -EINVAL;
    bq_model_t *m = calloc(1, sizeof *m);
    if (!m || !(m->ctx = calloc((size_t)workers, sizeof *m->ctx))) {
        free(m);
        return -ENOMEM;
    }
    m->model = model;
    m->workers = workers;
    m->id = id;
    for (int k = 0; k < BQ_LISTS; k++) m->pending[k].owner = m;
    for (int w = 0; w < workers; w++) {
        int rc = gru_ctx_new(&m->ctx[w], model);
        if (rc < 0) {
            bq_model_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

int bq_model_warm(bq_model_t *m, size_t max_batch, size_t max_batch_tokens) {
    size_t B, T;
    warm_shape(max_batch, max_batch_tokens, &B, &T);
    int32_t *ids = calloc(T, sizeof *ids);
    float *probs = calloc(B * GRU_MAX_LABELS, sizeof *probs);
    gru_input_t *in = calloc(B, sizeof *in);
    gru_output_t *out = calloc(B, sizeof *out);
    int rc = ids && probs && in && out ? 0 : -ENOMEM;
    for (int w = 0; rc == 0 && w < m->workers; w++) rc = warm_run(m->ctx[w], m->model, ids, B, T, in, out, probs);
    free(ids);
    free(probs);
    free(in);
    free(out);
    return rc;
}

void bq_model_free(bq_model_t *m) {
    if (!m) return;
    SRV_ASSERT(m->n_pending == 0);
    for (int w = 0; m->ctx && w < m->workers; w++) gru_ctx_free(m->ctx[w]);
    free(m->ctx);
    free(m);
}

gru_model_t *bq_model_engine(const bq_model_t *m) { return m->model; }

/* ------------------------------------------------------------------------------------------ */
/* Lifetime */

void bq_cancel(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    bq_done_list_t d = {NULL, NULL};
    uv_mutex_lock(&q->lock);
    atomic_fetch_or(&q->reserved, BQ_CLOSED);
    take_submitted(q, &d); /* what was pushed fails at once */
    while (q->active) { /* each pass empties the first model's lists, which unlinks it */
        bq_model_t *m = q->active;
        for (int k = 0; k < BQ_LISTS; k++)
            while (m->pending[k].head) job_fail(q, m->pending[k].head->_job, -ECANCELED, &d);
    }
    arm_deadline(q);
    uv_mutex_unlock(&q->lock);
    run_done(&d);
}

void bq_flush(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    int wake = 0;
    uv_mutex_lock(&q->lock);
    q->delay_us = 0;
    uv_timer_stop(&q->delay_timer);
    schedule(q, NULL, &wake);
    uv_mutex_unlock(&q->lock);
}

int bq_idle(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    uv_mutex_lock(&q->lock);
    int idle = (atomic_load(&q->reserved) & ~BQ_CLOSED) == 0 && atomic_load(&q->submitting) == 0 &&
               atomic_load(&q->submitted) == NULL && q->busy == 0;
    uv_mutex_unlock(&q->lock);
    return idle;
}

void bq_close(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    atomic_fetch_or(&q->reserved, BQ_CLOSED);
    if (q->handles > 0) uv_close((uv_handle_t *)&q->async, NULL);
    if (q->handles > 1) uv_close((uv_handle_t *)&q->delay_timer, NULL);
    if (q->handles > 2) uv_close((uv_handle_t *)&q->deadline_timer, NULL);
    q->handles = 0;
}

void bq_stats(bq_queue_t *q, bq_stats_t *out) {
    out->depth = atomic_load(&q->reserved) & ~BQ_CLOSED;
    out->busy = atomic_load(&q->busy_shared);
    out->workers = q->opt.workers;
}

/* Stops and joins the workers that were started (they wait for a batch: none is running). */
static void workers_stop(bq_queue_t *q) {
    atomic_store(&q->stop, 1);
    for (int i = 0; q->batches && i < q->opt.workers; i++)
        if (q->batches[i].started) uv_sem_post(&q->batches[i].go);
    for (int i = 0; q->batches && i < q->opt.workers; i++)
        if (q->batches[i].started) {
            uv_thread_join(&q->batches[i].thread);
            uv_sem_destroy(&q->batches[i].go);
            q->batches[i].started = 0;
        }
}

void bq_free(bq_queue_t *q) {
    if (!q) return;
    workers_stop(q);
    for (int i = 0; q->batches && i < q->opt.workers; i++) {
        bq_batch_t *b = &q->batches[i];
        free(b->items);
        free(b->in);
        free(b->out);
    }
    if (q->lock_ok) {
        uv_mutex_destroy(&q->lock);
        uv_sem_destroy(&q->started);
    }
    free(q->batches);
    free(q->cand);
    free(q);
}

int bq_new(bq_queue_t **out, uv_loop_t *loop, bq_model_t *const *warm, size_t n_warm, const bq_options_t *opt) {
    *out = NULL;
    if (!loop || (n_warm && !warm) || !opt || opt->workers < 1 || opt->max_batch < 1 || opt->max_batch_tokens < 1 ||
        opt->max_queue < 1)
        return -EINVAL;
    for (size_t m = 0; m < n_warm; m++)
        if (!warm[m] || warm[m]->workers < opt->workers) return -EINVAL;
    bq_queue_t *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    q->loop = loop;
    q->opt = *opt;
    q->delay_us = opt->max_delay_us;
    q->warm = warm;
    q->n_warm = n_warm;
    q->loop_thread = uv_thread_self();
    atomic_init(&q->submitted, NULL);
    atomic_init(&q->reserved, 0);
    atomic_init(&q->submitting, 0);
    atomic_init(&q->busy_shared, 0);
    atomic_init(&q->stop, 0);
    atomic_init(&q->warm_rc, 0);
    int rc = -ENOMEM;
    if (uv_mutex_init(&q->lock) < 0) goto fail;
    if (uv_sem_init(&q->started, 0) < 0) {
        uv_mutex_destroy(&q->lock);
        goto fail;
    }
    q->lock_ok = 1;
    q->batches = calloc((size_t)opt->workers, sizeof *q->batches);
    q->cand = calloc(BQ_SCAN_FACTOR * opt->max_batch, sizeof *q->cand);
    if (!q->batches || !q->cand) goto fail;
    for (int i = 0; i < opt->workers; i++) {
        bq_batch_t *b = &q->batches[i];
        b->q = q;
        b->index = i;
        b->items = calloc(opt->max_batch, sizeof *b->items);
        b->in = calloc(opt->max_batch, sizeof *b->in);
        b->out = calloc(opt->max_batch, sizeof *b->out);
        if (!b->items || !b->in || !b->out) goto fail;
    }
    if ((rc = uv_async_init(loop, &q->async, on_async)) < 0) goto fail;
    q->async.data = q;
    q->handles = 1;
    uv_timer_init(loop, &q->delay_timer);
    q->delay_timer.data = q;
    q->handles = 2;
    uv_timer_init(loop, &q->deadline_timer);
    q->deadline_timer.data = q;
    q->handles = 3;
    for (int i = 0; i < opt->workers; i++) {
        bq_batch_t *b = &q->batches[i];
        if ((rc = uv_sem_init(&b->go, 0)) < 0) goto fail;
        if ((rc = uv_thread_create(&b->thread, worker_main, b)) < 0) {
            uv_sem_destroy(&b->go);
            goto fail;
        }
        b->started = 1;
    }
    for (int i = 0; i < opt->workers; i++) uv_sem_wait(&q->started);
    q->warm = NULL; /* the caller's array: borrowed for the warm-up only */
    q->n_warm = 0;
    if ((rc = atomic_load(&q->warm_rc)) < 0) goto fail;
    *out = q;
    return 0;
fail:
    if (q->handles) { /* cannot happen after the timers: they do not fail on Linux */
        bq_close(q);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    workers_stop(q);
    bq_free(q);
    return rc < 0 ? rc : -ENOMEM;
}
