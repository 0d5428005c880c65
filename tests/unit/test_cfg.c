/* test_cfg.c - the settings table of gru-serve (server/cfg.c): defaults, environment, flags,
 * precedence, every kind of bad value, and --help. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"

/* ------------------------------------------------------------------------------------------ */
/* A fake environment */

static const char *fake_env[16][2];

static const char *env_get(const char *name) {
    for (size_t i = 0; i < 16 && fake_env[i][0]; i++)
        if (!strcmp(fake_env[i][0], name)) return fake_env[i][1];
    return NULL;
}

static void env_set(size_t i, const char *name, const char *value) {
    fake_env[i][0] = name;
    fake_env[i][1] = value;
    if (i + 1 < 16) fake_env[i + 1][0] = NULL;
}

/* Loads argv (NULL-terminated) over the defaults; returns cfg_load's result. */
static int load(cfg_t *c, char *err, size_t errlen, ...) {
    char *argv[32] = {"gru-serve"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;) argv[argc++] = a;
    va_end(ap);
    assert_int_equal(cfg_init(c), 0);
    return cfg_load(c, argc, argv, env_get, err, errlen);
}

static int setup(void **state) {
    (void)state;
    fake_env[0][0] = NULL;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests */

static void test_cfg_defaults(void **state) {
    (void)state;
    cfg_t c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, NULL), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.n_model, 0);
    assert_string_equal(c.models_dir, "models");
    assert_int_equal(c.max_batch, 64);
    assert_int_equal(c.max_delay_us, 0);
    assert_int_equal(c.workers, 0);
    assert_int_equal(c.warmup, 1);
    assert_int_equal(c.log_level, CFG_LOG_INFO);
    assert_string_equal(c.api_key, "");
    /* Every entry's default is printable and parses back. */
    for (size_t i = 0; i < cfg_count(); i++) {
        const cfg_entry_t *e = cfg_at(i);
        char buf[256];
        const char *why = NULL;
        cfg_format(&c, e, buf, sizeof buf);
        assert_string_equal(buf, e->def);
        assert_ptr_equal(cfg_find(e->name), e);
        assert_true(e->help && *e->help);
        if (e->type != CFG_LIST) assert_int_equal(cfg_set(&c, e->name, e->def, &why), 0);
    }
    assert_null(cfg_at(cfg_count()));
    cfg_deinit(&c);
}

static void test_cfg_env_names(void **state) {
    (void)state;
    char buf[96];
    assert_string_equal(cfg_env_name(cfg_find("max-batch-tokens"), buf, sizeof buf), "GRU_SERVE_MAX_BATCH_TOKENS");
    assert_string_equal(cfg_env_name(cfg_find("port"), buf, sizeof buf), "GRU_SERVE_PORT");
    assert_ptr_equal(cfg_find("drain-timeout"), cfg_find("drain-timeout-ms")); /* alias */
    assert_null(cfg_find("no-such-setting"));
}

static void test_cfg_environment(void **state) {
    (void)state;
    cfg_t c;
    char err[256];
    env_set(0, "GRU_SERVE_PORT", "9000");
    env_set(1, "GRU_SERVE_MODEL", "en=models/a,models/b");
    env_set(2, "GRU_SERVE_WARMUP", "off");
    env_set(3, "GRU_SERVE_LOG_LEVEL", "DEBUG");
    env_set(4, "GRU_SERVE_API_KEY", "k3y");
    assert_int_equal(load(&c, err, sizeof err, NULL), 0);
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.n_model, 2);
    assert_string_equal(c.model[0], "en=models/a");
    assert_string_equal(c.model[1], "models/b");
    assert_int_equal(c.warmup, 0);
    assert_int_equal(c.log_level, CFG_LOG_DEBUG);
    char buf[64];
    assert_string_equal(cfg_format(&c, cfg_find("api-key"), buf, sizeof buf), "***"); /* never printed */
    cfg_deinit(&c);
}

static void test_cfg_flags_win(void **state) {
    (void)state;
    cfg_t c;
    char err[256];
    env_set(0, "GRU_SERVE_PORT", "9000");
    env_set(1, "GRU_SERVE_MODEL", "models/env");
    assert_int_equal(load(&c, err, sizeof err, "--port", "9100", "--model", "a=dir/a", "--model=dir/b", "--max-batch=8",
                          "--no-warmup", "--drain-timeout", "250", "--host", "::1", NULL),
                     0);
    assert_int_equal(c.port, 9100);
    assert_int_equal(c.n_model, 2); /* flags replace the environment's list */
    assert_string_equal(c.model[0], "a=dir/a");
    assert_string_equal(c.model[1], "dir/b");
    assert_int_equal(c.max_batch, 8);
    assert_int_equal(c.warmup, 0);
    assert_int_equal(c.drain_timeout_ms, 250);
    assert_string_equal(c.host, "::1");
    cfg_deinit(&c);
}

static void test_cfg_bool_forms(void **state) {
    (void)state;
    cfg_t c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, "--warmup", "false", NULL), 0);
    assert_int_equal(c.warmup, 0);
    cfg_deinit(&c);
    assert_int_equal(load(&c, err, sizeof err, "--no-warmup", "--warmup", NULL), 0);
    assert_int_equal(c.warmup, 1);
    cfg_deinit(&c);
    assert_int_equal(load(&c, err, sizeof err, "--warmup", "--port", "1", NULL), 0); /* --port is no bool */
    assert_int_equal(c.warmup, 1);
    assert_int_equal(c.port, 1);
    cfg_deinit(&c);
}

static void test_cfg_help_version(void **state) {
    (void)state;
    cfg_t c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, "--port", "1", "--help", NULL), CFG_HELP);
    cfg_deinit(&c);
    assert_int_equal(load(&c, err, sizeof err, "-h", NULL), CFG_HELP);
    cfg_deinit(&c);
    assert_int_equal(load(&c, err, sizeof err, "--version", NULL), CFG_VERSION);
    cfg_deinit(&c);
    /* --help names every setting, its default and its variable. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cfg_print_help(f);
    fclose(f);
    for (size_t i = 0; i < cfg_count(); i++) {
        char flag[96], var[96];
        snprintf(flag, sizeof flag, "--%s", cfg_at(i)->name);
        assert_non_null(strstr(text, flag));
        assert_non_null(strstr(text, cfg_env_name(cfg_at(i), var, sizeof var)));
    }
    assert_non_null(strstr(text, "default: 8080"));
    free(text);
}

/* Each bad input is refused with -EINVAL and a message naming the flag or variable. */
static void test_cfg_errors(void **state) {
    (void)state;
    static const char *const bad[][3] = {
        {"--port", "65536", "--port"},           {"--port", "-1", "--port"},
        {"--port", "80x", "--port"},             {"--port", "", "--port"},
        {"--max-batch", "0", "--max-batch"},     {"--workers", "65", "--workers"},
        {"--host", "example.com", "--host"},     {"--model", "=dir", "--model"},
        {"--model", "name=", "--model"},         {"--log-level", "loud", "--log-level"},
        {"--warmup=maybe", NULL, "--warmup"},    {"--bogus", "1", "--bogus"},
        {"--no-port", NULL, "--no-port"},        {"port", "1", "port"},
        {"--api-key", "a\nb", "--api-key"},      {"--timeout-ms", "99999999999", "--timeout-ms"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cfg_t c;
        char err[256] = "";
        int rc = load(&c, err, sizeof err, bad[i][0], bad[i][1], NULL);
        if (rc != -EINVAL) fail_msg("case %zu (%s %s): rc %d", i, bad[i][0], bad[i][1] ? bad[i][1] : "", rc);
        if (!strstr(err, bad[i][2])) fail_msg("case %zu: message '%s' does not name %s", i, err, bad[i][2]);
        cfg_deinit(&c);
    }
    cfg_t c;
    char err[256];
    assert_int_equal(load(&c, err, sizeof err, "--port", NULL), -EINVAL); /* missing value */
    assert_non_null(strstr(err, "needs a value"));
    cfg_deinit(&c);
    env_set(0, "GRU_SERVE_MAX_QUEUE", "lots");
    assert_int_equal(load(&c, err, sizeof err, NULL), -EINVAL);
    assert_non_null(strstr(err, "GRU_SERVE_MAX_QUEUE"));
    cfg_deinit(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cfg_defaults, setup),     cmocka_unit_test_setup(test_cfg_env_names, setup),
        cmocka_unit_test_setup(test_cfg_environment, setup),  cmocka_unit_test_setup(test_cfg_flags_win, setup),
        cmocka_unit_test_setup(test_cfg_bool_forms, setup),   cmocka_unit_test_setup(test_cfg_help_version, setup),
        cmocka_unit_test_setup(test_cfg_errors, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
