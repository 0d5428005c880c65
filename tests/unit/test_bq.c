/* test_bq.c - the batch queue (server/bq.c) on a real libuv loop with a random model:
 * results equal to unbatched forward passes under concurrent submitters, length grouping,
 * back-pressure, deadlines, cancellation and the separation of gates modes. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bq.h"

#define MAX_T 48

typedef struct {
    bq_job_t job;
    bq_item_t items[4];
    int32_t ids[4][MAX_T];
    float probs[4][GRU_MAX_LABELS];
    float gates[4][2 * MAX_T];
    int done;
} tjob_t;

typedef struct {
    uv_loop_t loop;
    uv_timer_t poll;
    bq_queue_t *q;
    gru_model_t *model;
    bq_model_t *bm;     /* model's contexts */
    bq_model_t *bm2;    /* a second model's (fixture_new_two), or NULL */
    int expected;
    atomic_int finished;
    size_t batch_texts[64], batch_tokens[64], batch_model[64];
    int n_batches;
} fixture_t;

/* A random model with 50 ids and 2 labels of the given shape. */
static gru_model_t *random_model_of(int E, int H, int L, uint64_t seed) {
    gru_config_t c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 50, c.embedding_dim = E, c.hidden_size = H, c.num_layers = L, c.num_labels = 2;
    gru_model_t *m;
    assert_int_equal(gru_model_new_random(&m, &c, seed, NULL), 0);
    return m;
}

static gru_model_t *random_model(void) { return random_model_of(8, 16, 1, 42); }

static void on_done(bq_job_t *job) {
    tjob_t *t = job->data;
    t->done = job->status == 0 ? 1 : job->status;
}

static fixture_t *current;

static void on_done_count(bq_job_t *job) {
    on_done(job);
    atomic_fetch_add(&current->finished, 1);
}

static void on_batch(void *data, size_t model, size_t texts, size_t tokens, uint64_t ns) {
    fixture_t *f = data;
    (void)ns;
    if (f->n_batches < 64) {
        f->batch_model[f->n_batches] = model;
        f->batch_texts[f->n_batches] = texts;
        f->batch_tokens[f->n_batches] = tokens;
    }
    f->n_batches++;
}

/* Stops the loop once every expected job is done. */
static void on_poll(uv_timer_t *t) {
    fixture_t *f = t->data;
    if (atomic_load(&f->finished) < f->expected || !bq_idle(f->q)) return;
    bq_close(f->q);
    uv_close((uv_handle_t *)&f->poll, NULL);
}

static fixture_t *fixture_new(bq_options_t opt) {
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    current = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->model = random_model();
    assert_int_equal(bq_model_new(&f->bm, f->model, opt.workers, 7), 0);
    opt.on_batch = on_batch;
    opt.observer_data = f;
    assert_int_equal(bq_new(&f->q, &f->loop, &f->bm, 1, &opt), 0);
    uv_timer_init(&f->loop, &f->poll);
    f->poll.data = f;
    return f;
}

static void fixture_run_and_free(fixture_t *f) {
    uv_timer_start(&f->poll, on_poll, 1, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    bq_free(f->q);
    bq_model_free(f->bm);
    bq_model_free(f->bm2);
    gru_model_free(f->model);
    free(f);
}

/* Fills t with n texts of the given lengths (ids derived from seed). */
static void tjob_init(tjob_t *t, size_t n, const size_t *lens, unsigned seed, gru_gates_mode_t mode) {
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < lens[i]; k++) t->ids[i][k] = (int32_t)((seed * 31 + i * 7 + k * 13) % 50);
        t->items[i] = (bq_item_t){.model = current->bm, .ids = t->ids[i], .len = lens[i], .probs = t->probs[i],
                                  .gates = mode ? t->gates[i] : NULL};
    }
    t->job = (bq_job_t){.gates = mode, .items = t->items, .n_items = n, .done = on_done_count, .data = t};
}

/* The probabilities of text i of t run alone. */
static void reference(gru_model_t *m, const tjob_t *t, size_t i, float *probs, float *gates, gru_gates_mode_t mode) {
    gru_ctx_t *ctx;
    assert_int_equal(gru_ctx_new(&ctx, m), 0);
    gru_input_t in = {t->ids[i], t->items[i].len};
    gru_output_t out = {probs, gates, NULL};
    assert_int_equal(gru_forward_batch(ctx, &in, &out, 1, mode), 0);
    gru_ctx_free(ctx);
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    fixture_t *f;
    tjob_t *jobs;
    size_t n;
} producer_t;

static void *produce(void *arg) {
    producer_t *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        while (bq_reserve(p->f->q, p->jobs[i].job.n_items) == -EAGAIN) sched_yield();
        bq_submit(p->f->q, &p->jobs[i].job);
    }
    return NULL;
}

static void test_bq_concurrent_results(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 2, .max_batch = 8, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 60000,
                        .warmup = 1};
    fixture_t *f = fixture_new(opt);
    enum { PRODUCERS = 4, PER = 50 };
    tjob_t *jobs = calloc(PRODUCERS * PER, sizeof *jobs);
    assert_non_null(jobs);
    for (size_t j = 0; j < PRODUCERS * PER; j++) {
        size_t lens[3] = {1 + j % MAX_T, 1 + (j * 7) % MAX_T, 1 + (j * 3) % 5};
        tjob_init(&jobs[j], 1 + j % 3, lens, (unsigned)j, j % 2 ? GRU_GATES_SUMMARY : GRU_GATES_NONE);
    }
    f->expected = PRODUCERS * PER;
    pthread_t th[PRODUCERS];
    producer_t pr[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        pr[i] = (producer_t){f, jobs + i * PER, PER};
        assert_int_equal(pthread_create(&th[i], NULL, produce, &pr[i]), 0);
    }
    gru_model_t *m = f->model;
    uv_timer_start(&f->poll, on_poll, 1, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(th[i], NULL);
    int batched = 0;
    for (size_t j = 0; j < PRODUCERS * PER; j++) {
        tjob_t *t = &jobs[j];
        assert_int_equal(t->done, 1);
        assert_int_equal(t->job.status, 0);
        assert_true(t->job.t_start_ns >= t->job.t_submit_ns && t->job.t_end_ns >= t->job.t_start_ns);
        batched |= t->job.batch_max > 1;
        for (size_t i = 0; i < t->job.n_items; i++) {
            float p[GRU_MAX_LABELS], g[2 * MAX_T];
            reference(m, t, i, p, g, t->job.gates);
            for (int k = 0; k < 2; k++) assert_true(fabsf(p[k] - t->probs[i][k]) < 1e-5f);
            for (size_t k = 0; t->job.gates && k < 2 * t->items[i].len; k++)
                assert_true(fabsf(g[k] - t->gates[i][k]) < 1e-5f);
        }
    }
    assert_true(batched); /* 4 producers, 2 workers: some batch held more than one text */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    bq_free(f->q);
    bq_model_free(f->bm);
    gru_model_free(m);
    free(f);
    free(jobs);
}

/* With more pending than fits, a batch takes the oldest text and those closest in length. */
static void test_bq_length_grouping_batches(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 1, .max_batch = 4, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 60000,
                        .max_delay_us = 200000};
    fixture_t *f = fixture_new(opt);
    static const size_t lens[8] = {1, 40, 2, 41, 3, 42, 4, 43};
    tjob_t jobs[8];
    for (int i = 0; i < 8; i++) {
        tjob_init(&jobs[i], 1, &lens[i], (unsigned)i, GRU_GATES_NONE);
        assert_int_equal(bq_reserve(f->q, 1), 0);
        bq_submit(f->q, &jobs[i].job);
    }
    f->expected = 8;
    uv_timer_start(&f->poll, on_poll, 1, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_batches, 2);
    assert_int_equal(f->batch_texts[0], 4);
    assert_int_equal(f->batch_tokens[0], 1 + 2 + 3 + 4);
    assert_int_equal(f->batch_tokens[1], 40 + 41 + 42 + 43);
    for (int i = 0; i < 8; i++) assert_int_equal(jobs[i].done, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    bq_free(f->q);
    bq_model_free(f->bm);
    gru_model_free(f->model);
    free(f);
}

/* A model made after the queue (as a reload does) serves next to the first one: each job's
 * results come from its own model, and batches never mix them. */
static void test_bq_models_come_and_go(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 2, .max_batch = 8, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 60000};
    fixture_t *f = fixture_new(opt);
    gru_model_t *other = random_model_of(8, 12, 2, 99); /* another shape: the wrong model would show */
    bq_model_t *bother;
    assert_int_equal(bq_model_new(&bother, other, opt.workers, 3), 0);
    assert_int_equal(bq_model_warm(bother, opt.max_batch, opt.max_batch_tokens), 0);
    assert_ptr_equal(bq_model_engine(bother), other);
    tjob_t jobs[12];
    for (int j = 0; j < 12; j++) {
        size_t lens[3] = {3 + j, 5, 1 + (j * 7) % 20};
        tjob_init(&jobs[j], 3, lens, (unsigned)j, j % 3 ? GRU_GATES_NONE : GRU_GATES_SUMMARY);
        for (int i = 0; j % 2 && i < 3; i++) jobs[j].items[i].model = bother;
        assert_int_equal(bq_reserve(f->q, 3), 0);
        bq_submit(f->q, &jobs[j].job);
    }
    f->expected = 12;
    uv_timer_start(&f->poll, on_poll, 1, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int seen[2] = {0, 0};
    for (int b = 0; b < f->n_batches && b < 64; b++) {
        assert_true(f->batch_model[b] == 7 || f->batch_model[b] == 3);
        seen[f->batch_model[b] == 3]++;
    }
    assert_true(seen[0] > 0 && seen[1] > 0);
    for (int j = 0; j < 12; j++) {
        assert_int_equal(jobs[j].done, 1);
        for (size_t i = 0; i < 3; i++) {
            float p[GRU_MAX_LABELS], g[2 * MAX_T];
            reference(j % 2 ? other : f->model, &jobs[j], i, p, g, jobs[j].job.gates);
            for (int k = 0; k < 2; k++) assert_true(fabsf(p[k] - jobs[j].probs[i][k]) < 1e-5f);
        }
    }
    /* The loop has ended: the second model may go; the first still serves. */
    bq_model_free(bother);
    gru_model_free(other);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    bq_free(f->q);
    bq_model_free(f->bm);
    gru_model_free(f->model);
    free(f);
}

static void test_bq_reserve_eagain(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 1, .max_batch = 4, .max_batch_tokens = 64, .max_queue = 3, .timeout_ms = 1000};
    fixture_t *f = fixture_new(opt);
    assert_int_equal(bq_reserve(f->q, 2), 0);
    assert_int_equal(bq_reserve(f->q, 2), -EAGAIN);
    assert_int_equal(bq_reserve(f->q, 1), 0);
    assert_int_equal(bq_reserve(f->q, 1), -EAGAIN);
    bq_stats_t st;
    bq_stats(f->q, &st);
    assert_int_equal(st.depth, 3);
    bq_unreserve(f->q, 3);
    assert_int_equal(bq_reserve(f->q, 4), -EAGAIN); /* more than the whole queue */
    assert_int_equal(bq_reserve(f->q, 3), 0);
    bq_unreserve(f->q, 3);
    f->expected = 0;
    fixture_run_and_free(f);
}

static void test_bq_deadline(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 1, .max_batch = 64, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 20,
                        .max_delay_us = 2000000};
    fixture_t *f = fixture_new(opt);
    size_t len = 5;
    tjob_t t;
    tjob_init(&t, 1, &len, 1, GRU_GATES_NONE);
    assert_int_equal(bq_reserve(f->q, 1), 0);
    bq_submit(f->q, &t.job);
    f->expected = 1;
    fixture_run_and_free(f);
    assert_int_equal(t.done, -ETIMEDOUT);
    assert_int_equal(t.job.t_start_ns, 0); /* never ran */
    uint64_t waited = t.job.t_end_ns - t.job.t_submit_ns;
    assert_true(waited >= 19000000 && waited < 1000000000);
}

static void test_bq_cancel(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 1, .max_batch = 64, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 10000,
                        .max_delay_us = 5000000};
    fixture_t *f = fixture_new(opt);
    size_t lens[2] = {3, 4};
    tjob_t a, b;
    tjob_init(&a, 2, lens, 1, GRU_GATES_NONE);
    tjob_init(&b, 1, lens, 2, GRU_GATES_SUMMARY);
    assert_int_equal(bq_reserve(f->q, 2), 0);
    bq_submit(f->q, &a.job);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* a is pending (waiting for a fuller batch) */
    assert_int_equal(bq_reserve(f->q, 1), 0);
    bq_submit(f->q, &b.job); /* b is pushed, not yet taken */
    assert_false(bq_idle(f->q));
    bq_cancel(f->q);
    assert_int_equal(a.done, -ECANCELED);
    assert_int_equal(b.done, -ECANCELED);
    assert_int_equal(bq_reserve(f->q, 1), -ECANCELED);
    assert_true(bq_idle(f->q));
    f->expected = 2;
    fixture_run_and_free(f);
}

/* bq_flush stops waiting for a fuller batch. */
static void test_bq_flush(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 1, .max_batch = 64, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 10000,
                        .max_delay_us = 5000000};
    fixture_t *f = fixture_new(opt);
    size_t len = 3;
    tjob_t t;
    tjob_init(&t, 1, &len, 1, GRU_GATES_NONE);
    assert_int_equal(bq_reserve(f->q, 1), 0);
    bq_submit(f->q, &t.job);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(t.done, 0);
    bq_flush(f->q);
    f->expected = 1;
    fixture_run_and_free(f);
    assert_int_equal(t.done, 1);
}

static void test_bq_new_einval(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    gru_model_t *m = random_model();
    bq_model_t *bm = (bq_model_t *)1;
    assert_int_equal(bq_model_new(&bm, m, 0, 0), -EINVAL);
    assert_null(bm);
    assert_int_equal(bq_model_new(&bm, NULL, 1, 0), -EINVAL);
    assert_int_equal(bq_model_new(&bm, m, 1, 0), 0);
    bq_queue_t *q = (bq_queue_t *)1;
    bq_options_t opt = {.workers = 0, .max_batch = 4, .max_batch_tokens = 64, .max_queue = 3, .timeout_ms = 1000};
    assert_int_equal(bq_new(&q, &loop, &bm, 1, &opt), -EINVAL);
    assert_null(q);
    /* A model with fewer contexts than the queue has workers. */
    opt.workers = 2;
    assert_int_equal(bq_new(&q, &loop, &bm, 1, &opt), -EINVAL);
    opt.workers = 1;
    assert_int_equal(bq_new(&q, &loop, NULL, 1, &opt), -EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
    bq_model_free(bm);
    bq_model_free(NULL);
    gru_model_free(m);
    bq_free(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Jobs whose texts go to different models (a request routed by language) */

/* A fixture whose queue serves models[0] (f->model, freed with the fixture) and models[1]. */
static fixture_t *fixture_new_two(bq_options_t opt, gru_model_t *models[2]) {
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    current = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    models[0] = f->model = random_model();
    models[1] = random_model_of(6, 12, 2, 7); /* another shape: the wrong model would show */
    assert_int_equal(bq_model_new(&f->bm, models[0], opt.workers, 0), 0);
    assert_int_equal(bq_model_new(&f->bm2, models[1], opt.workers, 1), 0);
    opt.on_batch = on_batch;
    opt.observer_data = f;
    bq_model_t *warm[2] = {f->bm, f->bm2};
    assert_int_equal(bq_new(&f->q, &f->loop, warm, 2, &opt), 0);
    uv_timer_init(&f->loop, &f->poll);
    f->poll.data = f;
    return f;
}

/* Every text is run by its own model; each batch holds one model's texts; done comes once. */
static void test_bq_mixed_models(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 1, .max_batch = 8, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 60000,
                        .max_delay_us = 100000};
    gru_model_t *models[2];
    fixture_t *f = fixture_new_two(opt, models);
    size_t lens[2][4] = {{3, 7, 2, 5}, {4, 4, 9, 1}};
    static const size_t which[2][4] = {{0, 1, 1, 0}, {1, 1, 1, 1}};
    tjob_t jobs[2];
    for (int j = 0; j < 2; j++) {
        tjob_init(&jobs[j], 4, lens[j], (unsigned)j, GRU_GATES_SUMMARY);
        /* Model 1's summary gates (2 layers) take 4 * len floats: within the 2 * MAX_T given. */
        for (int i = 0; i < 4; i++) jobs[j].items[i].model = which[j][i] ? f->bm2 : f->bm;
        assert_int_equal(bq_reserve(f->q, 4), 0);
        bq_submit(f->q, &jobs[j].job);
    }
    f->expected = 2;
    f->model = NULL; /* keep both for the reference */
    uv_timer_start(&f->poll, on_poll, 1, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->n_batches, 2); /* one per model: 2 + 6 texts, all waiting for a fuller batch */
    assert_int_not_equal(f->batch_model[0], f->batch_model[1]);
    for (int b = 0; b < 2; b++) assert_int_equal(f->batch_texts[b], f->batch_model[b] == 0 ? 2 : 6);
    for (int j = 0; j < 2; j++) {
        assert_int_equal(jobs[j].done, 1);
        for (int i = 0; i < 4; i++) {
            float p[GRU_MAX_LABELS], g[4 * MAX_T];
            gru_model_t *m = models[which[j][i]];
            reference(m, &jobs[j], (size_t)i, p, g, GRU_GATES_SUMMARY);
            for (int k = 0; k < 2; k++) assert_true(fabsf(p[k] - jobs[j].probs[i][k]) < 1e-5f);
            size_t floats = gru_gates_floats(gru_model_config(m), GRU_GATES_SUMMARY, lens[j][i]);
            for (size_t k = 0; k < floats; k++) assert_true(fabsf(g[k] - jobs[j].gates[i][k]) < 1e-5f);
        }
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    bq_free(f->q);
    bq_model_free(f->bm);
    bq_model_free(f->bm2);
    gru_model_free(models[0]);
    gru_model_free(models[1]);
    free(f);
}

/* A job over two models that misses its deadline fails once, and its texts leave both lists. */
static void test_bq_mixed_models_deadline(void **state) {
    (void)state;
    bq_options_t opt = {.workers = 1, .max_batch = 64, .max_batch_tokens = 4096, .max_queue = 64, .timeout_ms = 20,
                        .max_delay_us = 2000000};
    gru_model_t *models[2];
    fixture_t *f = fixture_new_two(opt, models);
    size_t lens[3] = {5, 6, 7};
    tjob_t t;
    tjob_init(&t, 3, lens, 1, GRU_GATES_NONE);
    t.items[1].model = f->bm2;
    assert_int_equal(bq_reserve(f->q, 3), 0);
    bq_submit(f->q, &t.job);
    f->expected = 1;
    fixture_run_and_free(f); /* ends only when bq_idle: no text of the job is left reserved; frees models[0] */
    assert_int_equal(t.done, -ETIMEDOUT);
    assert_int_equal(t.job.t_start_ns, 0); /* never ran */
    gru_model_free(models[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bq_concurrent_results), cmocka_unit_test(test_bq_length_grouping_batches), cmocka_unit_test(test_bq_reserve_eagain),
        cmocka_unit_test(test_bq_deadline), cmocka_unit_test(test_bq_cancel),
        cmocka_unit_test(test_bq_flush), cmocka_unit_test(test_bq_new_einval),
        cmocka_unit_test(test_bq_models_come_and_go),
        cmocka_unit_test(test_bq_mixed_models), cmocka_unit_test(test_bq_mixed_models_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
