/* cfg.c - the settings table of gru-serve and its loaders (defaults, environment, flags).
 *
 * Every setting is declared once, in static_configs[] below (as redis's config.c does), with
 * its type, bounds, default and help. Nothing else in the server names a flag or a variable.
 */
#include "cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gru.h"

/* ------------------------------------------------------------------------------------------ */
/* Validators */

static int valid_host(const char *v, const char **why) {
    unsigned char buf[16];
    if (strcmp(v, "localhost") == 0 || inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1) return 0;
    *why = "must be an IPv4 or IPv6 address (127.0.0.1, 0.0.0.0, ::1) or localhost";
    return -EINVAL;
}

static int valid_model(const char *v, const char **why) {
    const char *eq = strchr(v, '=');
    if (!*v || (eq && (eq == v || !eq[1]))) {
        *why = "must be NAME=DIR or DIR";
        return -EINVAL;
    }
    if (eq && (size_t)(eq - v) >= 128) {
        *why = "NAME must be under 128 bytes";
        return -EINVAL;
    }
    return 0;
}

static int valid_header_value(const char *v, const char **why) {
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *why = "must not contain control characters";
            return -EINVAL;
        }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The table */

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

#define CFG_STR_(x) #x
#define CFG_STR(x) CFG_STR_(x) /* a number macro as a default string */
#define INT_CFG(name, field, lo, hi, def, help) \
    {name, NULL, CFG_INT, offsetof(cfg_t, field), lo, hi, def, NULL, CFG_IMMUTABLE, help, NULL}

static const cfg_entry_t static_configs[] = {
    {"host", NULL, CFG_STRING, offsetof(cfg_t, host), 0, 0, "127.0.0.1", NULL, CFG_IMMUTABLE,
     "address to listen on (the container sets 0.0.0.0)", valid_host},
    INT_CFG("port", port, 0, 65535, "8080", "TCP port (0: any free port, printed at startup)"),
    {"model", NULL, CFG_LIST, offsetof(cfg_t, model), 0, 0, "", NULL, CFG_IMMUTABLE,
     "a model to serve, NAME=DIR or DIR (NAME: the directory's name); repeatable; the first is "
     "the default model; none given: every model directory under --models-dir",
     valid_model},
    {"models-dir", NULL, CFG_STRING, offsetof(cfg_t, models_dir), 0, 0, "models", NULL, CFG_IMMUTABLE,
     "where to look for models when no --model is given (in name order)", NULL},
    INT_CFG("http-threads", http_threads, 1, 64, "2", "libmicrohttpd polling threads (epoll)"),
    INT_CFG("workers", workers, 0, 64, "0",
            "inference worker threads, each with one OpenBLAS thread (0: one per CPU)"),
    INT_CFG("max-batch", max_batch, 1, 1024, "64", "most texts in one batched forward pass"),
    INT_CFG("max-batch-tokens", max_batch_tokens, 1, 1 << 22, "4096",
            "most tokens in one batch (a longer text runs alone); the workers' scratch memory "
            "grows to the largest batch and stays"),
    INT_CFG("proj-table-max-mb", proj_table_max_mb, 0, 1 << 16, CFG_STR(GRU_PROJ_TABLE_DEFAULT_MB),
            "build a model's layer-0 projection table (vocab x 3H floats: a row lookup instead of "
            "a matrix product per token, ~25% less compute) only if it takes at most this many "
            "MiB; 0: never (saves memory)"),
    INT_CFG("max-delay-us", max_delay_us, 0, 10000000, "0",
            "longest a text waits for a fuller batch while a worker is free (0: take what is "
            "queued; the loop's timers have 1 ms resolution)"),
    INT_CFG("max-queue", max_queue, 1, 1 << 22, "2048",
            "most texts waiting for a worker; beyond it requests get 429"),
    INT_CFG("max-texts", max_texts, 1, 1 << 16, "256", "most texts in one request"),
    INT_CFG("explain-max-tokens", explain_max_tokens, 1, 512, "128",
            "most tokens of a text POST /v1/explain takes (its cost and a worker's scratch memory "
            "grow with the square: N leave-one-out variants of N-1 tokens, run as one batch); "
            "longer texts get 422 unless \"truncate\": true"),
    INT_CFG("explain-max-texts", explain_max_texts, 1, 1 << 16, "16", "most texts in one POST /v1/explain"),
    INT_CFG("timeout-ms", timeout_ms, 1, 3600000, "10000",
            "deadline of a request in the queue; a text still waiting then gets 504"),
    INT_CFG("body-max-bytes", body_max_bytes, 64, 1 << 30, "1048576", "largest request body (413 beyond)"),
    INT_CFG("max-result-mb", max_result_mb, 1, 4096, "64",
            "largest per-request result buffers (gates, trajectory) in MiB (413 beyond)"),
    INT_CFG("max-memory-mb", max_memory_mb, 1, 1 << 20, "256",
            "one memory budget for the whole server in MiB: every request's body, result buffers and "
            "answer until its last byte is sent; past it new work gets 503 over_capacity with "
            "Retry-After (a request that could never fit: 413)"),
    INT_CFG("max-connections", max_connections, 1, 1 << 20, "1024", "most open HTTP connections"),
    INT_CFG("max-connections-per-address", max_connections_per_address, 0, 1 << 20, "256",
            "most open connections from one client address (IPv4, or IPv6 /64); more are closed at "
            "once (0: no limit). Keep it under --max-connections, so that one client cannot take "
            "every slot and health checks still get in"),
    INT_CFG("connection-timeout-s", connection_timeout_s, 0, 86400, "30",
            "a connection must deliver each whole request (headers and body) within this many "
            "seconds of being opened or of its previous answer, else it is closed; so are idle "
            "keep-alive connections (0: never)"),
    {"api-key", NULL, CFG_STRING, offsetof(cfg_t, api_key), 0, 0, "", NULL, CFG_IMMUTABLE | CFG_SECRET,
     "require 'Authorization: Bearer KEY' on every route but the health checks (empty: no key); "
     "prefer the environment variable: a flag is visible to every user in the process list",
     valid_header_value},
    {"api-key-file", NULL, CFG_STRING, offsetof(cfg_t, api_key_file), 0, 0, "", NULL, CFG_IMMUTABLE,
     "a file of API keys, one per line with an optional name after it ('#' comments); any of them (or "
     "--api-key) is accepted; the name goes to the access log and a metrics label; re-read on SIGHUP",
     NULL},
    {"admin-key", NULL, CFG_STRING, offsetof(cfg_t, admin_key), 0, 0, "", NULL, CFG_IMMUTABLE | CFG_SECRET,
     "enable the model-repository routes (POST /v2/repository/...: load, unload, index) for "
     "'Authorization: Bearer KEY' (empty: those routes answer 404)",
     valid_header_value},
    {"cors-origin", NULL, CFG_STRING, offsetof(cfg_t, cors_origin), 0, 0, "", NULL, CFG_IMMUTABLE,
     "allow browsers from this origin ('*' for any; empty: no CORS headers)", valid_header_value},
    {"log-level", NULL, CFG_ENUM, offsetof(cfg_t, log_level), 0, 0, "info", log_levels, CFG_IMMUTABLE,
     "error, warn, info (one access-log line per request) or debug", NULL},
    {"drain-timeout-ms", "drain-timeout", CFG_INT, offsetof(cfg_t, drain_timeout_ms), 0, 3600000, "10000", NULL,
     CFG_IMMUTABLE, "on SIGTERM/SIGINT, how long in-flight requests may take to finish", NULL},
    {"warmup", NULL, CFG_BOOL, offsetof(cfg_t, warmup), 0, 0, "true", NULL, CFG_IMMUTABLE,
     "run one batch per worker and model before reporting ready", NULL},
    {"skip-bad-models", NULL, CFG_BOOL, offsetof(cfg_t, skip_bad_models), 0, 0, "false", NULL, CFG_IMMUTABLE,
     "start without a model that fails to load (truncated, corrupt, inconsistent) when another one loads; "
     "false: any such model stops the start", NULL},
};

#define N_CONFIGS (sizeof static_configs / sizeof *static_configs)

size_t cfg_count(void) { return N_CONFIGS; }
const cfg_entry_t *cfg_at(size_t i) { return i < N_CONFIGS ? &static_configs[i] : NULL; }

const cfg_entry_t *cfg_find(const char *name) {
    for (size_t i = 0; i < N_CONFIGS; i++)
        if (!strcmp(static_configs[i].name, name) || (static_configs[i].alias && !strcmp(static_configs[i].alias, name)))
            return &static_configs[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Setting values */

#define FIELD(c, e, type) ((type *)((char *)(c) + (e)->offset))

static int parse_bool(const char *v, int *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return *out = 1, 0;
        if (!strcasecmp(v, no[i])) return *out = 0, 0;
    }
    return -EINVAL;
}

static void list_clear(cfg_t *c, const cfg_entry_t *e) {
    char ***items = FIELD(c, e, char **);
    size_t *n = (size_t *)((char *)c + e->offset + sizeof(char **));
    for (size_t i = 0; i < *n; i++) free((*items)[i]);
    free(*items);
    *items = NULL;
    *n = 0;
}

static int set_entry(cfg_t *c, const cfg_entry_t *e, const char *v, const char **why) {
    if (e->type == CFG_LIST && !*v) return 0; /* the empty default */
    if (e->validate && e->validate(v, why) < 0) return -EINVAL;
    switch (e->type) {
    case CFG_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end) {
            *why = "must be an integer";
            return -EINVAL;
        }
        if (x < e->min || x > e->max) {
            *why = "is out of range";
            return -EINVAL;
        }
        *FIELD(c, e, int) = (int)x;
        return 0;
    }
    case CFG_BOOL:
        if (parse_bool(v, FIELD(c, e, int)) < 0) {
            *why = "must be true or false";
            return -EINVAL;
        }
        return 0;
    case CFG_ENUM:
        for (int i = 0; e->enum_names[i]; i++)
            if (!strcasecmp(v, e->enum_names[i])) {
                *FIELD(c, e, int) = i;
                return 0;
            }
        *why = "is not one of the allowed words";
        return -EINVAL;
    case CFG_STRING: {
        char *s = strdup(v);
        if (!s) {
            *why = "out of memory";
            return -ENOMEM;
        }
        free(*FIELD(c, e, char *));
        *FIELD(c, e, char *) = s;
        return 0;
    }
    case CFG_LIST: {
        char ***items = FIELD(c, e, char **);
        size_t *n = (size_t *)((char *)c + e->offset + sizeof(char **));
        char **grown = realloc(*items, (*n + 1) * sizeof *grown);
        char *s = strdup(v);
        if (!grown || !s) {
            if (grown) *items = grown;
            free(s);
            *why = "out of memory";
            return -ENOMEM;
        }
        *items = grown;
        (*items)[(*n)++] = s;
        return 0;
    }
    }
    *why = "has an unknown type";
    return -EINVAL;
}

int cfg_set(cfg_t *c, const char *name, const char *value, const char **why) {
    const cfg_entry_t *e = cfg_find(name);
    if (!e) {
        *why = "is not a setting";
        return -ENOENT;
    }
    return set_entry(c, e, value, why);
}

int cfg_init(cfg_t *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_CONFIGS; i++) {
        const char *why;
        int rc = set_entry(c, &static_configs[i], static_configs[i].def, &why);
        if (rc < 0) {
            cfg_deinit(c);
            return rc;
        }
    }
    return 0;
}

void cfg_deinit(cfg_t *c) {
    if (!c) return;
    for (size_t i = 0; i < N_CONFIGS; i++) {
        const cfg_entry_t *e = &static_configs[i];
        if (e->type == CFG_STRING) {
            free(*FIELD(c, e, char *));
            *FIELD(c, e, char *) = NULL;
        } else if (e->type == CFG_LIST) {
            list_clear(c, e);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Loading */

char *cfg_env_name(const cfg_entry_t *e, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "%s", CFG_ENV_PREFIX);
    for (const char *p = e->name; *p && k + 1 < len; p++) buf[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    if (k < len) buf[k] = 0;
    return buf;
}

static int fail(char *err, size_t errlen, const char *what, const char *value, const char *why) {
    snprintf(err, errlen, "%s '%s' %s", what, value, why);
    return -EINVAL;
}

int cfg_load(cfg_t *c, int argc, char **argv, cfg_getenv_fn env, char *err, size_t errlen) {
    char what[160];
    const char *why = "";
    /* 1. The environment. */
    for (size_t i = 0; env && i < N_CONFIGS; i++) {
        const cfg_entry_t *e = &static_configs[i];
        char var[96];
        const char *v = env(cfg_env_name(e, var, sizeof var));
        if (!v) continue;
        snprintf(what, sizeof what, "environment variable %s:", var);
        if (e->type != CFG_LIST) {
            if (set_entry(c, e, v, &why) < 0) return fail(err, errlen, what, v, why);
            continue;
        }
        list_clear(c, e);
        char *copy = strdup(v), *save = NULL;
        if (!copy) return fail(err, errlen, what, v, "out of memory");
        for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save))
            if (set_entry(c, e, item, &why) < 0) {
                int rc = fail(err, errlen, what, item, why);
                free(copy);
                return rc;
            }
        free(copy);
    }
    /* 2. The flags. A list given as a flag replaces the environment's list. */
    int list_from_flags[N_CONFIGS] = {0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) return CFG_HELP;
        if (!strcmp(arg, "--version")) return CFG_VERSION;
        if (strncmp(arg, "--", 2) != 0 || !arg[2]) return fail(err, errlen, "argument", arg, "is not a --flag (see --help)");
        char name[128];
        const char *eq = strchr(arg + 2, '='), *value = NULL;
        size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nlen >= sizeof name) return fail(err, errlen, "flag", arg, "is not a setting (see --help)");
        memcpy(name, arg + 2, nlen);
        name[nlen] = 0;
        const cfg_entry_t *e = cfg_find(name);
        int negated = 0;
        if (!e && !strncmp(name, "no-", 3)) { /* --no-warmup */
            e = cfg_find(name + 3);
            if (e && (e->type != CFG_BOOL || eq)) e = NULL;
            negated = 1;
        }
        if (!e) return fail(err, errlen, "flag", arg, "is not a setting (see --help)");
        snprintf(what, sizeof what, "flag --%s:", e->name);
        if (negated) value = "false";
        else if (eq) value = eq + 1;
        else if (e->type == CFG_BOOL && (i + 1 >= argc || parse_bool(argv[i + 1], &(int){0}) < 0)) value = "true";
        else if (i + 1 < argc) value = argv[++i];
        else return fail(err, errlen, what, "", "needs a value");
        size_t idx = (size_t)(e - static_configs);
        if (e->type == CFG_LIST && !list_from_flags[idx]) {
            list_clear(c, e);
            list_from_flags[idx] = 1;
        }
        if (set_entry(c, e, value, &why) < 0) return fail(err, errlen, what, value, why);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Printing */

char *cfg_format(const cfg_t *c, const cfg_entry_t *e, char *buf, size_t len) {
    buf[0] = 0;
    switch (e->type) {
    case CFG_INT: snprintf(buf, len, "%d", *FIELD(c, e, const int)); break;
    case CFG_BOOL: snprintf(buf, len, "%s", *FIELD(c, e, const int) ? "true" : "false"); break;
    case CFG_ENUM: snprintf(buf, len, "%s", e->enum_names[*FIELD(c, e, const int)]); break;
    case CFG_STRING: {
        const char *s = *FIELD(c, e, char *const);
        snprintf(buf, len, "%s", (e->flags & CFG_SECRET) && s && *s ? "***" : s ? s : "");
        break;
    }
    case CFG_LIST: {
        char **items = *FIELD(c, e, char **const);
        size_t n = *(const size_t *)((const char *)c + e->offset + sizeof(char **)), k = 0;
        for (size_t i = 0; i < n && k < len; i++)
            k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? "," : "", items[i]);
        break;
    }
    }
    return buf;
}

void cfg_print_help(FILE *f) {
    fprintf(f, "usage: gru-serve [--NAME VALUE | --NAME=VALUE]...\n\n"
               "Serves GRU sentiment models over HTTP (POST /v1/sentiment, KServe v2, /metrics).\n"
               "Every setting is also read from the environment variable shown; flags win.\n\n");
    for (size_t i = 0; i < N_CONFIGS; i++) {
        const cfg_entry_t *e = &static_configs[i];
        char var[96], range[64] = "";
        if (e->type == CFG_INT) snprintf(range, sizeof range, " [%lld..%lld]", e->min, e->max);
        fprintf(f, "  --%s%s\n      %s\n      default: %s%s   env: %s\n", e->name,
                e->type == CFG_BOOL ? "[=true|false]" : e->type == CFG_INT ? " N" : " VALUE", e->help, *e->def ? e->def : "(none)", range, cfg_env_name(e, var, sizeof var));
        if (e->alias) fprintf(f, "      also: --%s\n", e->alias);
    }
    fprintf(f, "  -h, --help     this text\n  --version      print the version\n");
}
