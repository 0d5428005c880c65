/* cfg.h - gru-serve's settings: one table declares every setting (name, type, bounds, default,
 * help); flags, environment variables, --help and the startup log all read that table.
 *
 * Each setting NAME is the flag --NAME VALUE (or --NAME=VALUE; a boolean also takes --NAME and
 * --no-NAME) and the environment variable GRU_SERVE_<NAME upper-cased, '-' as '_'>, e.g.
 * --max-batch and GRU_SERVE_MAX_BATCH. Flags win over the environment, which wins over the
 * default. A list setting (--model) may be repeated; in the environment its items are
 * separated by commas.
 *
 * Threads: none; call from main before anything starts.
 *
 * Usage:
 *     cfg_t c; char err[256];
 *     cfg_init(&c);
 *     int rc = cfg_load(&c, argc, argv, getenv, err, sizeof err);
 *     if (rc == CFG_HELP) { cfg_print_help(stdout); ... } else if (rc < 0) { puts(err); ... }
 *     ... c.port, c.max_batch ...
 *     cfg_deinit(&c);
 */
#ifndef CFG_H
#define CFG_H

#include <stddef.h>
#include <stdio.h>

/* ---- constants ---- */
#define CFG_HELP 1    /* cfg_load: --help was given */
#define CFG_VERSION 2 /* cfg_load: --version was given */
#define CFG_ENV_PREFIX "GRU_SERVE_"

/* Entry flags. */
#define CFG_SECRET 1u    /* never printed (api-key) */
#define CFG_IMMUTABLE 2u /* needs a restart to change (every setting today; kept for /v1/config) */

/* ---- types ---- */
typedef enum { CFG_LOG_ERROR = 0, CFG_LOG_WARN = 1, CFG_LOG_INFO = 2, CFG_LOG_DEBUG = 3 } cfg_log_level_t;

/* The settings. Strings and lists are owned (cfg_deinit frees them); read-only after load.
 * A list is a char ** immediately followed by its size_t count. */
typedef struct {
    char *host;
    int port;
    char **model;         /* (n_model) "NAME=DIR" or "DIR" */
    size_t n_model;
    char *models_dir;
    int http_threads;
    int workers;          /* 0: one per CPU */
    int max_batch;
    int max_batch_tokens;
    int proj_table_max_mb;
    int max_delay_us;
    int max_queue;
    int max_texts;
    int explain_max_tokens;
    int explain_max_texts;
    int timeout_ms;
    int body_max_bytes;
    int max_result_mb;
    int max_memory_mb;
    int max_connections;
    int max_connections_per_address; /* 0: no limit */
    int connection_timeout_s;
    char *api_key;
    char *api_key_file;   /* "": none */
    char *admin_key;      /* "": the repository routes are off (404) */
    char *cors_origin;
    int log_level;        /* cfg_log_level_t */
    int drain_timeout_ms;
    int warmup;
    int skip_bad_models;
} cfg_t;

typedef enum { CFG_INT, CFG_BOOL, CFG_STRING, CFG_LIST, CFG_ENUM } cfg_type_t;

/* One row of the table. Read-only. */
typedef struct {
    const char *name;               /* flag name without "--" */
    const char *alias;              /* another accepted flag name, or NULL */
    cfg_type_t type;
    size_t offset;                  /* of the field in cfg_t */
    long long min, max;             /* CFG_INT bounds */
    const char *def;                /* the default, as it would be written on the command line */
    const char *const *enum_names;  /* CFG_ENUM: NULL-terminated; the value is the index */
    unsigned flags;                 /* CFG_SECRET, CFG_IMMUTABLE */
    const char *help;
    /* Extra check of a parsed value: 0, or -EINVAL with a static reason in *why. */
    int (*validate)(const char *value, const char **why);
} cfg_entry_t;

typedef const char *(*cfg_getenv_fn)(const char *name);

/* ---- prototypes ---- */

/* Fills c with every default. Returns 0 or -ENOMEM. */
int cfg_init(cfg_t *c);
void cfg_deinit(cfg_t *c); /* frees strings and lists; accepts a zeroed c */

/* Applies the environment (through env, which may be NULL: none), then the flags argv[1..argc).
 * Returns 0, CFG_HELP, CFG_VERSION, or -EINVAL with a message in err naming the flag or
 * variable and the reason. */
int cfg_load(cfg_t *c, int argc, char **argv, cfg_getenv_fn env, char *err, size_t errlen);

/* Sets one setting by name from text. For a list, appends. Returns 0 or -EINVAL with a static
 * reason in *why (-ENOENT: no such setting). */
int cfg_set(cfg_t *c, const char *name, const char *value, const char **why);

/* The table: entry i < cfg_count(), or the entry called name (or alias), or NULL. */
size_t cfg_count(void);
const cfg_entry_t *cfg_at(size_t i);
const cfg_entry_t *cfg_find(const char *name);

/* Writes the value of e in c as text into buf (secrets as "***" when set). Returns buf. */
char *cfg_format(const cfg_t *c, const cfg_entry_t *e, char *buf, size_t len);
/* The environment variable of e, e.g. "GRU_SERVE_MAX_BATCH", into buf. Returns buf. */
char *cfg_env_name(const cfg_entry_t *e, char *buf, size_t len);

/* --help text: usage, then one block per setting with its default and variable. */
void cfg_print_help(FILE *f);

#endif /* CFG_H */
