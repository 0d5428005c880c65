/* bq.c - the batch queue: dynamic batching of texts from many requests on a libuv loop.
 *
 * DESIGN
 * Submitters (the HTTP threads) push jobs onto a lock-free stack and wake the loop with
 * uv_async_send; several sends may give one callback, so the callback takes the whole stack.
 * On the loop thread each text (item) of a job goes into the pending list of its (model, gates
 * mode) pair - texts of one batch share a model and a gates layout - in arrival order.
 *
 * A batch is formed whenever a worker slot is free and something is pending (schedule()):
 * - the list whose oldest text is oldest is served first (FIFO across models);
 * - with max_delay_us > 0 a list that is neither full (max_batch texts, max_batch_tokens
 *   tokens) nor old enough waits on a timer; with 0, what is queued goes at once (as Triton's
 *   default) - under load, texts pile up while the workers are busy, so batches grow by
 *   themselves exactly when batching pays;
 * - when more is pending than fits, the oldest text is taken, then the texts whose lengths are
 *   closest to it among the next 4 * max_batch, so a batch holds similar lengths.
 * Batches run with uv_queue_work on the libuv pool (UV_THREADPOOL_SIZE = workers). There are
 * exactly `workers` batch slots, each with its own gru_ctx_t per model and its own input and
 * output arrays, so a ctx is never shared. A slot's arrays are sized for max_batch at bq_new;
 * its ctx's scratch memory is sized by the warm-up batch and grows (gru_forward_batch
 * allocates, on the worker) only when a batch is larger than any before it, then stays.
 *
 * Deadlines: every text must start within timeout_ms of its job's submission; one timer per
 * queue watches the oldest pending texts. A job with a text past its deadline fails with
 * -ETIMEDOUT: its other pending texts are dropped (no work for a request that will get 504),
 * and texts already in a running batch finish first. done() is called when no item of the job
 * is pending or running, exactly once.
 *
 * Shutdown: bq_cancel sets the CLOSED bit in the same atomic word that counts reserved texts,
 * so after it no reserve can succeed; pending texts fail with -ECANCELED; running batches
 * finish. bq_idle is true when nothing is reserved, being submitted or running; only then are
 * the handles closed, so no uv_async_send can hit a closed handle.
 *
 * Ownership of a job: submitter until bq_submit's push; loop thread from the async callback
 * on; a worker reads the items' ids and writes their buffers between uv_queue_work and the
 * after-work callback (the job itself is not touched there); the submitter again from done().
 */
#include "bq.h"
#include "srv_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BQ_CLOSED ((size_t)1 << (sizeof(size_t) * 8 - 1))
#define BQ_MODES 3 /* none, summary, full */
#define BQ_SCAN_FACTOR 4

#define BQ_ASSERT_LOOP_THREAD(q) SRV_ASSERT_THREAD((q)->loop_thread)

/* ------------------------------------------------------------------------------------------ */
/* Types */

typedef struct {
    bq_item_t *head, *tail;
    size_t count, tokens;
} bq_list_t;

typedef struct {
    uv_work_t work;      /* work.data = this */
    bq_queue_t *q;
    gru_ctx_t **ctx;     /* (n_models) this slot's contexts */
    int in_use;
    size_t model;
    gru_gates_mode_t mode;
    size_t n, tokens;
    bq_item_t **items;   /* (max_batch) */
    gru_input_t *in;     /* (max_batch) */
    gru_output_t *out;   /* (max_batch) */
    int rc;
    uint64_t t_start, t_end;
    void *warm;          /* bq_new's warm-up state while it runs */
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
    gru_model_t *const *models;
    size_t n_models;
    int handles; /* initialized handles, for bq_close */

    /* Any thread. */
    _Atomic(bq_job_t *) submitted; /* a stack, newest first */
    atomic_size_t reserved;        /* texts reserved and not yet running | BQ_CLOSED */
    atomic_int submitting;         /* bq_submit calls between push and uv_async_send's return */
    atomic_int busy_shared;        /* copy of busy for bq_stats */

    /* Loop thread only. */
    bq_list_t *pending; /* (n_models * BQ_MODES) */
    bq_batch_t *batches; /* (workers) */
    int busy;
    bq_cand_t *cand;    /* (BQ_SCAN_FACTOR * max_batch) */
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static uint64_t ms_until(uint64_t t, uint64_t now) { return t <= now ? 0 : (t - now + 999999) / 1000000; }

static bq_list_t *list_of(bq_queue_t *q, const bq_job_t *job) {
    return &q->pending[job->model * BQ_MODES + (size_t)job->gates];
}

static void list_push(bq_list_t *l, bq_item_t *it) {
    it->_prev = l->tail;
    it->_next = NULL;
    if (l->tail) l->tail->_next = it;
    else l->head = it;
    l->tail = it;
    l->count++;
    l->tokens += it->len;
    it->_pending = 1;
}

static void list_remove(bq_list_t *l, bq_item_t *it) {
    if (it->_prev) it->_prev->_next = it->_next;
    else l->head = it->_next;
    if (it->_next) it->_next->_prev = it->_prev;
    else l->tail = it->_prev;
    l->count--;
    l->tokens -= it->len;
    it->_prev = it->_next = NULL;
    it->_pending = 0;
}

static void schedule(bq_queue_t *q);

/* Calls done once nothing of job is pending or running. */
static void job_release(bq_queue_t *q, bq_job_t *job, size_t finished) {
    SRV_ASSERT(job->_outstanding >= finished);
    job->_outstanding -= finished;
    if (job->_outstanding == 0) {
        job->t_end_ns = srv_now_ns();
        job->done(job);
    }
}

/* Fails job with status: drops its pending items; done follows when none is running. */
static void job_fail(bq_queue_t *q, bq_job_t *job, int status) {
    if (!job->status) job->status = status;
    bq_list_t *l = list_of(q, job);
    size_t dropped = 0;
    for (size_t i = 0; i < job->n_items; i++)
        if (job->items[i]._pending) {
            list_remove(l, &job->items[i]);
            dropped++;
        }
    if (dropped) {
        atomic_fetch_sub(&q->reserved, dropped);
        job_release(q, job, dropped);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Timers */

static void on_deadline(uv_timer_t *t);

/* (Re)arms the deadline timer for the oldest pending text, or stops it. */
static void arm_deadline(bq_queue_t *q) {
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < q->n_models * BQ_MODES; i++)
        if (q->pending[i].head && q->pending[i].head->_job->_deadline_ns < first)
            first = q->pending[i].head->_job->_deadline_ns;
    if (first == UINT64_MAX) uv_timer_stop(&q->deadline_timer);
    else uv_timer_start(&q->deadline_timer, on_deadline, ms_until(first, srv_now_ns()), 0);
}

static void on_deadline(uv_timer_t *t) {
    bq_queue_t *q = t->data;
    uint64_t now = srv_now_ns();
    for (size_t i = 0; i < q->n_models * BQ_MODES; i++)
        while (q->pending[i].head && q->pending[i].head->_job->_deadline_ns <= now)
            job_fail(q, q->pending[i].head->_job, -ETIMEDOUT);
    arm_deadline(q);
}

static void on_delay(uv_timer_t *t) { schedule(t->data); }

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
    if (l->count <= max_b && l->tokens <= max_t) {
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
        list_remove(l, it);
        b->in[i] = (gru_input_t){it->ids, it->len};
        b->out[i] = (gru_output_t){it->probs, it->gates, it->trajectory};
        b->tokens += it->len;
    }
}

static void work_cb(uv_work_t *w) {
    bq_batch_t *b = w->data;
    b->t_start = srv_now_ns();
    b->rc = gru_forward_batch(b->ctx[b->model], b->in, b->out, b->n, b->mode);
    b->t_end = srv_now_ns();
}

static void after_work_cb(uv_work_t *w, int status) {
    bq_batch_t *b = w->data;
    bq_queue_t *q = b->q;
    BQ_ASSERT_LOOP_THREAD(q);
    int rc = status < 0 ? -ECANCELED : b->rc;
    if (q->opt.on_batch)
        q->opt.on_batch(q->opt.observer_data, b->model, b->n, b->tokens, b->t_end - b->t_start);
    /* Release the slot first: a done() callback may not see it busy. */
    b->in_use = 0;
    q->busy--;
    atomic_store(&q->busy_shared, q->busy);
    for (size_t i = 0; i < b->n; i++) {
        bq_job_t *job = b->items[i]->_job;
        if (!job->t_start_ns || b->t_start < job->t_start_ns) job->t_start_ns = b->t_start;
        if (b->n > job->batch_max) job->batch_max = b->n;
        if (rc < 0 && !job->status) job->status = rc;
        if (rc < 0) job_fail(q, job, rc); /* its other texts are not worth running */
        job_release(q, job, 1);
    }
    schedule(q);
}

/* Starts batches while a slot is free and something is pending. */
static void schedule(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    while (q->busy < q->opt.workers) {
        bq_list_t *l = NULL;
        for (size_t i = 0; i < q->n_models * BQ_MODES; i++)
            if (q->pending[i].head &&
                (!l || q->pending[i].head->_job->t_submit_ns < l->head->_job->t_submit_ns))
                l = &q->pending[i];
        if (!l) break;
        if (q->opt.max_delay_us && l->count < q->opt.max_batch && l->tokens < q->opt.max_batch_tokens) {
            uint64_t due = l->head->_job->t_submit_ns + q->opt.max_delay_us * 1000u, now = srv_now_ns();
            if (now < due) {
                uv_timer_start(&q->delay_timer, on_delay, ms_until(due, now), 0);
                break;
            }
        }
        bq_batch_t *b = NULL;
        for (int i = 0; i < q->opt.workers && !b; i++)
            if (!q->batches[i].in_use) b = &q->batches[i];
        SRV_ASSERT(b);
        b->model = l->head->_job->model;
        b->mode = l->head->_job->gates;
        batch_fill(q, l, b);
        uint64_t now = srv_now_ns();
        for (size_t i = 0; q->opt.on_wait && i < b->n; i++)
            q->opt.on_wait(q->opt.observer_data, now - b->items[i]->_job->t_submit_ns);
        atomic_fetch_sub(&q->reserved, b->n);
        b->in_use = 1;
        q->busy++;
        atomic_store(&q->busy_shared, q->busy);
        int rc = uv_queue_work(q->loop, &b->work, work_cb, after_work_cb);
        SRV_ASSERT(rc == 0); /* only fails for a NULL callback */
    }
    arm_deadline(q);
}

/* ------------------------------------------------------------------------------------------ */
/* Submission */

static void on_async(uv_async_t *h) {
    bq_queue_t *q = h->data;
    BQ_ASSERT_LOOP_THREAD(q);
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
        bq_list_t *l = list_of(q, job);
        for (size_t i = 0; i < job->n_items; i++) list_push(l, &job->items[i]);
        if (canceled) job_fail(q, job, -ECANCELED);
    }
    schedule(q);
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
    SRV_ASSERT(job->n_items > 0 && job->model < q->n_models && (unsigned)job->gates < BQ_MODES && job->done);
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
    bq_job_t *head = atomic_load(&q->submitted);
    do job->_next = head;
    while (!atomic_compare_exchange_weak(&q->submitted, &head, job));
    uv_async_send(&q->async);
    atomic_fetch_sub(&q->submitting, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Lifetime */

void bq_cancel(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    atomic_fetch_or(&q->reserved, BQ_CLOSED);
    on_async(&q->async); /* take what was pushed; it fails at once */
    for (size_t i = 0; i < q->n_models * BQ_MODES; i++)
        while (q->pending[i].head) job_fail(q, q->pending[i].head->_job, -ECANCELED);
    arm_deadline(q);
}

void bq_flush(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    q->opt.max_delay_us = 0;
    uv_timer_stop(&q->delay_timer);
    schedule(q);
}

int bq_idle(bq_queue_t *q) {
    BQ_ASSERT_LOOP_THREAD(q);
    return (atomic_load(&q->reserved) & ~BQ_CLOSED) == 0 && atomic_load(&q->submitting) == 0 &&
           atomic_load(&q->submitted) == NULL && q->busy == 0;
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

void bq_free(bq_queue_t *q) {
    if (!q) return;
    for (int i = 0; q->batches && i < q->opt.workers; i++) {
        bq_batch_t *b = &q->batches[i];
        for (size_t m = 0; b->ctx && m < q->n_models; m++) gru_ctx_free(b->ctx[m]);
        free(b->ctx);
        free(b->items);
        free(b->in);
        free(b->out);
    }
    free(q->batches);
    free(q->pending);
    free(q->cand);
    free(q);
}

/* Warm-up: one batch of up to 64 texts of 17-24 tokens through every context, on the pool's
 * threads (which libuv starts now rather than at the first request): the scratch memory of a
 * common batch is allocated, OpenBLAS's per-thread buffers too, and the weights are paged in. */
typedef struct bq_warm {
    int pending, rc;
} bq_warm_t;

static void warm_after_cb(uv_work_t *w, int status) {
    bq_batch_t *b = w->data;
    bq_warm_t *wm = b->warm;
    wm->pending--;
    if (status < 0 || b->rc < 0) wm->rc = status < 0 ? status : b->rc;
}

static int warmup(bq_queue_t *q) {
    /* A typical full batch of short texts; larger batches grow the scratch when they come. */
    size_t B = q->opt.max_batch < 64 ? q->opt.max_batch : 64, T = 24;
    while (B > 1 && B * T > q->opt.max_batch_tokens) B /= 2;
    if (T > q->opt.max_batch_tokens) T = q->opt.max_batch_tokens;
    int32_t *ids = calloc(T, sizeof *ids);
    float *probs = calloc((size_t)q->opt.workers * B * GRU_MAX_LABELS, sizeof *probs);
    bq_warm_t wm = {0, ids && probs ? 0 : -ENOMEM};
    for (size_t m = 0; wm.rc == 0 && m < q->n_models; m++) {
        const gru_config_t *c = gru_model_config(q->models[m]);
        for (size_t t = 0; t < T; t++) ids[t] = (int32_t)((2 + t * 7919) % (size_t)c->vocab_size);
        for (int w = 0; w < q->opt.workers; w++) {
            bq_batch_t *b = &q->batches[w];
            b->model = m;
            b->mode = GRU_GATES_NONE;
            b->n = B;
            b->warm = &wm;
            for (size_t i = 0; i < B; i++) {
                b->in[i] = (gru_input_t){ids, T > i % 8 ? T - i % 8 : 1};
                b->out[i] = (gru_output_t){probs + ((size_t)w * B + i) * GRU_MAX_LABELS, NULL, NULL};
            }
            wm.pending++;
            uv_queue_work(q->loop, &b->work, work_cb, warm_after_cb);
        }
        while (wm.pending > 0) uv_run(q->loop, UV_RUN_ONCE);
    }
    for (int w = 0; w < q->opt.workers; w++) q->batches[w].n = 0;
    free(ids);
    free(probs);
    return wm.rc;
}

int bq_new(bq_queue_t **out, uv_loop_t *loop, gru_model_t *const *models, size_t n_models,
           const bq_options_t *opt) {
    *out = NULL;
    if (!loop || !models || n_models == 0 || !opt || opt->workers < 1 || opt->max_batch < 1 ||
        opt->max_batch_tokens < 1 || opt->max_queue < 1)
        return -EINVAL;
    bq_queue_t *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    q->loop = loop;
    q->opt = *opt;
    q->models = models;
    q->n_models = n_models;
    q->loop_thread = uv_thread_self();
    atomic_init(&q->submitted, NULL);
    atomic_init(&q->reserved, 0);
    atomic_init(&q->submitting, 0);
    atomic_init(&q->busy_shared, 0);
    int rc = -ENOMEM;
    q->pending = calloc(n_models * BQ_MODES, sizeof *q->pending);
    q->batches = calloc((size_t)opt->workers, sizeof *q->batches);
    q->cand = calloc(BQ_SCAN_FACTOR * opt->max_batch, sizeof *q->cand);
    if (!q->pending || !q->batches || !q->cand) goto fail;
    for (int i = 0; i < opt->workers; i++) {
        bq_batch_t *b = &q->batches[i];
        b->q = q;
        b->work.data = b;
        b->ctx = calloc(n_models, sizeof *b->ctx);
        b->items = calloc(opt->max_batch, sizeof *b->items);
        b->in = calloc(opt->max_batch, sizeof *b->in);
        b->out = calloc(opt->max_batch, sizeof *b->out);
        if (!b->ctx || !b->items || !b->in || !b->out) goto fail;
        for (size_t m = 0; m < n_models; m++)
            if ((rc = gru_ctx_new(&b->ctx[m], models[m])) < 0) goto fail;
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
    if (opt->warmup && (rc = warmup(q)) < 0) goto fail;
    *out = q;
    return 0;
fail:
    if (q->handles) { /* cannot happen after the timers: they do not fail on Linux */
        bq_close(q);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    bq_free(q);
    return rc < 0 ? rc : -ENOMEM;
}
