/* api.h - the JSON schema of gru-sentiment: results, errors (and, in api_request.c, requests).
 *
 * jansson types appear only under api/. All functions are reentrant; call json_object_seed(0)
 * once before threads start. Ownership follows jansson's words: "new" means the caller owns
 * the returned reference (json_decref it), "borrowed" means valid while the owner lives.
 */
#ifndef API_H
#define API_H

#include <stddef.h>

#include <jansson.h>

#include "gru.h"
#include "tok.h"

/* ---- constants ---- */
/* Significant digits of floats in responses: enough for 1e-6 relative, short on the wire. */
#define API_REAL_PRECISION 7
#define API_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(API_REAL_PRECISION))

/* ---- types ---- */

/* One text's result, as the engine left it. Everything is borrowed. */
typedef struct {
    const gru_config_t *cfg;      /* the model: name, labels, H, L, directions */
    const tok_seq_t *tokens;      /* the text's tokens and ids (with truncation info) */
    const float *probs;           /* (C) */
    gru_gates_mode_t gates_mode;  /* GRU_GATES_NONE: no "gates" key */
    const float *gates;           /* gru_gates_floats(cfg, gates_mode, n) floats, or NULL */
    const float *trajectory;      /* (n, C) or NULL: no "trajectory" key */
    int offsets;                  /* 1: "offsets": [[start, end], ...] (tokens->offsets) */
    const char *model_version;    /* the model's version, or NULL or "": no "model_version" key */
} api_result_t;

/* ---- prototypes ---- */


/* The error body {"error": {"code": code, "message": message}} (new reference, or NULL).
 * code is a stable machine-readable word such as "invalid_json"; message is for people. */
json_t *api_error_to_json(const char *code, const char *message);

/* ============================================================================================
 * The HTTP API (api_request.c, api_error.c, api_response.c, api_openapi.c): request parsing
 * and validation, the error kinds with their one mapping to HTTP status and error body, and the
 * bodies of every JSON route. Nothing here knows about sockets or threads; the server passes
 * plain bytes in and gets malloc'ed bytes out.
 *
 * Usage (one POST /v1/sentiment body):
 *     api_request_t req; api_error_t err;
 *     api_request_init(&req);
 *     api_limits_t lim = { .max_texts = 128 };
 *     if (api_request_parse(&req, API_REQ_SENTIMENT, body, len, &lim, &err) < 0) {
 *         size_t n; char *b = api_error_body(&err, &n);        // status: api_status_from_err(err.kind)
 *         ...send b (free() it)...
 *     } else {
 *         for (size_t i = 0; i < req.n_texts; i++) tok_encode(..., req.texts[i], req.text_lens[i], ...);
 *     }
 *     api_request_deinit(&req);                                // req.texts are invalid from here
 * ========================================================================================== */

/* ---- constants ---- */
#define API_ERROR_MESSAGE_MAX 256
#define API_MAX_OUTPUTS 2
/* KServe v2 output tensors this service produces (bits of api_request_t.outputs). */
#define API_OUTPUT_LABEL 1u         /* "label": BYTES, [N] */
#define API_OUTPUT_PROBABILITIES 2u /* "probabilities": FP32, [N, C] */

/* ---- types ---- */

/* Every way a request can fail. api_status_from_err() and api_err_code() are the only mapping
 * from a kind to its HTTP status and its "code" word (a table in api_error.c). */
typedef enum {
    API_ERR_NONE = 0,
    API_ERR_INVALID_JSON,           /* 400 invalid_json: not JSON, or duplicate keys */
    API_ERR_INVALID_TYPE,           /* 400 invalid_type: a field of the wrong JSON type */
    API_ERR_MODEL_LOAD_FAILED,      /* 400 model_load_failed: a repository load failed (the old one serves) */
    API_ERR_BAD_REQUEST,            /* 400 bad_request: unsound HTTP framing or path (the server adds
                                       Connection: close) */
    API_ERR_UNAUTHORIZED,           /* 401 unauthorized: missing or wrong API key */
    API_ERR_NOT_FOUND,              /* 404 not_found: no such route */
    API_ERR_MODEL_NOT_FOUND,        /* 404 model_not_found */
    API_ERR_METHOD_NOT_ALLOWED,     /* 405 method_not_allowed (the server adds Allow) */
    API_ERR_LAST_MODEL,             /* 409 last_model: unloading the only model served */
    API_ERR_BODY_TOO_LARGE,         /* 413 body_too_large */
    API_ERR_RESULT_TOO_LARGE,       /* 413 result_too_large: gates/trajectory buffers over the cap */
    API_ERR_UNSUPPORTED_MEDIA_TYPE, /* 415 unsupported_media_type */
    API_ERR_INVALID_REQUEST,        /* 422 invalid_request: valid JSON, invalid content */
    API_ERR_MISSING_TEXT,           /* 422 missing_text: neither "text" nor "texts" */
    API_ERR_EMPTY_TEXT,             /* 422 empty_text: "" or a text with no tokens */
    API_ERR_EMPTY_LIST,             /* 422 empty_list: "texts": [] */
    API_ERR_TOO_MANY_TEXTS,         /* 422 too_many_texts */
    API_ERR_TEXT_TOO_LONG,          /* 422 text_too_long: over max_tokens with "truncate": false */
    API_ERR_INVALID_UTF8,           /* 422 invalid_utf8 */
    API_ERR_QUEUE_FULL,             /* 429 queue_full (the server adds Retry-After) */
    API_ERR_INTERNAL,               /* 500 internal_error */
    API_ERR_NOT_IMPLEMENTED,        /* 501 not_implemented: a transfer coding other than chunked */
    API_ERR_NOT_READY,              /* 503 not_ready: models still loading */
    API_ERR_DRAINING,               /* 503 draining: shutting down */
    API_ERR_OUT_OF_MEMORY,          /* 503 out_of_memory: a per-request allocation failed */
    API_ERR_OVER_CAPACITY,          /* 503 over_capacity: the server's memory budget is in use by
                                       other requests (the server adds Retry-After) */
    API_ERR_TIMEOUT,                /* 504 timeout: the request's deadline passed in the queue */
    API_ERR__COUNT
} api_err_t;

/* An error with its explanation. Caller-owned storage; no pointers inside. */
typedef struct {
    api_err_t kind;
    char message[API_ERROR_MESSAGE_MAX];
} api_error_t;

typedef enum {
    API_REQ_SENTIMENT = 0,    /* POST /v1/sentiment */
    API_REQ_KSERVE_INFER = 1, /* POST /v2/models/{name}/infer */
    API_REQ_EXPLAIN = 2,      /* POST /v1/explain */
    API_REQ_TOKENIZE = 3,     /* POST /v1/tokenize */
} api_request_kind_t;

/* Most edits in one /v1/explain request, and most token indices one edit may name. */
#define API_MAX_EDITS 32
#define API_MAX_EDIT_INDICES 1024

/* One what-if edit of POST /v1/explain, as the client wrote it (indices into the text's tokens;
 * the server checks them against the token count). */
typedef enum { API_EDIT_REMOVE = 0, API_EDIT_REPLACE = 1, API_EDIT_REMOVE_SPAN = 2 } api_edit_kind_t;
typedef struct {
    size_t index;     /* a token of the text */
    const char *text; /* API_EDIT_REPLACE: what replaces it (tokenized by the model; may be ""); else NULL */
    size_t text_len;
} api_edit_sub_t;
typedef struct {
    api_edit_kind_t kind;
    const api_edit_sub_t *subs; /* (n_subs) in increasing index order (remove_span: a .. b) */
    size_t n_subs;
} api_edit_t;

/* Limits the parser enforces (the server fills them from its config). */
typedef struct {
    size_t max_texts; /* more texts in one request: API_ERR_TOO_MANY_TEXTS */
} api_limits_t;

/* A parsed and validated request. Caller-owned storage (api_request_init / _deinit).
 * Public, read-only after api_request_parse(): everything but the fields marked private.
 * Strings are borrowed from the parsed document: valid until api_request_deinit(). */
typedef struct {
    api_request_kind_t kind;
    const char *model;           /* "model" (sentiment) or NULL: the default model */
    size_t n_texts;              /* >= 1 */
    const char *const *texts;    /* (n_texts) UTF-8, may contain NUL bytes: use text_lens */
    const size_t *text_lens;     /* (n_texts) bytes */
    int single;                  /* 1: {"text": ...} (answer one result object) */
    gru_gates_mode_t gates;      /* default GRU_GATES_SUMMARY (sentiment), _NONE (KServe) */
    int trajectory;              /* default 0 */
    int truncate;                /* default 1; 0: a text over the model's max_tokens fails */
    const char *id;              /* KServe "id" to echo, or NULL */
    unsigned outputs;            /* KServe: API_OUTPUT_* bits wanted */
    unsigned char output_order[API_MAX_OUTPUTS]; /* KServe: the bits in response order */
    size_t n_outputs;
    int offsets;                 /* sentiment: 1 adds each token's offsets (explain, tokenize: always) */
    const char *target;          /* explain: "target" label, or NULL: the predicted one */
    const api_edit_t *edits;     /* explain: (n_edits) "edits" (only with "text") */
    size_t n_edits;
    /* private */
    api_edit_t *_edits;
    api_edit_sub_t *_subs;
    void *_doc;                  /* the parsed document that owns the strings */
    const char *_text1;          /* storage for a single text (no allocation) */
    size_t _len1;
    const char **_texts;         /* (n_texts) when more than one */
    size_t *_lens;
} api_request_t;

/* One loaded model, as /v1/models and the KServe metadata routes describe it. Borrowed. */
typedef struct {
    const gru_config_t *cfg;
    int is_default;
    double accuracy;  /* from the model card (dev accuracy in [0, 1]); NaN when unknown */
    double macro_f1;  /* from the model card; NaN when unknown */
    const char *version; /* the model's content version (gru_model_version), or NULL */
} api_model_info_t;

/* A model of the repository, as the repository routes describe it. Borrowed strings; version
 * and reason may be NULL. state: "READY" (served) or "UNAVAILABLE". */
typedef struct {
    const char *name, *version, *state, *reason;
} api_repo_model_t;

/* ---- prototypes: errors (api_error.c) ---- */

/* HTTP status of an error kind (500 for an unknown kind). */
int api_status_from_err(api_err_t kind);
/* Stable machine-readable code of an error kind, e.g. "queue_full" (static string). */
const char *api_err_code(api_err_t kind);
/* The kind for a negative errno from the lower layers: -EAGAIN queue_full, -ETIMEDOUT timeout,
 * -ECANCELED draining, -ENOMEM out_of_memory, -E2BIG body_too_large, -EILSEQ invalid_utf8,
 * -EINVAL invalid_request; anything else internal_error. */
api_err_t api_err_from_errno(int neg_errno);
/* Sets *e (if e is not NULL) to kind with a printf-style message. Returns -1, so a parser can
 * `return api_error_set(...)`. */
int api_error_set(api_error_t *e, api_err_t kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The error body {"error": {"code": ..., "message": ...}} as new malloc'ed bytes (free() them)
 * with their length in *len; NULL when out of memory. */
char *api_error_body(const api_error_t *e, size_t *len);

/* ---- prototypes: requests (api_request.c) ---- */

void api_request_init(api_request_t *r);
/* Parses and validates body[0..len) as a request of the given kind into r (initialized, or
 * reused after api_request_deinit). Returns 0, or -1 with *err set (r then holds nothing).
 * Sentiment: {"text": s} | {"texts": [s, ...]}, optional "model", "gates" ("none" | "summary"
 * | "full", or true = "summary" / false = "none"), "trajectory", "truncate", "offsets"; unknown
 * keys are an error. KServe: {"id"?, "parameters"?, "inputs": [one BYTES tensor], "outputs"?}.
 * Explain: as sentiment without "offsets", plus "target" (a label name) and, with "text",
 * "edits": [{"remove": [i, ...]} | {"replace": {"i": "text", ...}} | {"remove_span": [a, b]}];
 * "truncate" defaults to false. Tokenize: "text" | "texts", "model". */
int api_request_parse(api_request_t *r, api_request_kind_t kind, const char *body, size_t len,
                      const api_limits_t *lim, api_error_t *err);
void api_request_deinit(api_request_t *r); /* frees what parse made; r may be parsed again */

/* ---- prototypes: response bodies (api_response.c) ----
 * Each returns new malloc'ed bytes (free() them) and their length in *len, or NULL when out of
 * memory. Everything passed in is borrowed. */

/* POST /v1/sentiment (and gru-predict's lines): the result object (single) or {"model": name,
 * ["model_version"], "results": [result, ...]} (name: the model of every result, or "auto" when
 * the results come from several models; model_version: results[0]'s, with one model only). The
 * result object, written by one writer (api_write.c):
 *   {"model" (the result's cfg), ["model_version"], "label", "score", "probabilities": {label: p}, "tokens",
 *    "token_ids", "unknown_tokens" (ids equal to TOK_ID_UNK), "truncated", ["num_tokens_total"
 *    when truncated], ["gates": [...]], ["trajectory": [...]]}
 * gates: one entry per layer and direction {"layer", "direction": "forward"|"backward",
 * "reset", "update"} with one number per token (summary) or, in full mode, "reset", "update",
 * "candidate", "hidden" as per-token arrays of H numbers. Numbers as jansson writes them with
 * API_DUMP_FLAGS. NULL also when a number is not finite or a string is not valid UTF-8 (what
 * jansson refuses too; the engine and the tokenizer never produce either). */
char *api_sentiment_body(const api_result_t *results, size_t n, int single, size_t *len);

/* One text's explanation, as the engine left it (model/explain.h). Everything is borrowed. */
typedef struct {
    api_result_t base;           /* the text itself, as /v1/sentiment returns it */
    int target;                  /* the label explained (index) */
    const float *p_without;      /* (n, C): probabilities of the text without token i */
    const float *const *traj_without; /* NULL, or (n): token i's trajectory without it, (n - 1, C) */
    const api_edit_t *edits;     /* (n_edits) the request's edits, echoed */
    size_t n_edits;
    const float *edit_probs;     /* (n_edits, C) */
    const float *const *edit_traj; /* NULL, or (n_edits): each edit's trajectory, (edit_lens[e], C) */
    const size_t *edit_lens;     /* (n_edits) tokens of each edited text */
} api_explain_result_t;

/* POST /v1/explain: per text the result object plus "target", "attributions" (per token, in
 * order: "index", "token", "offsets", "p_without", "delta" = p - p_without of the target,
 * "label_without", ["trajectory_without"]), "ranking" (token indices by |delta|, largest
 * first) and, with edits, "edits" (per edit: "edit" echoed, "num_tokens", "label", "score",
 * "probabilities", ["trajectory"]). Several texts: {"model", "results": [...]} ("model": "auto"
 * when the texts went to different models). */
char *api_explain_body(const api_explain_result_t *results, size_t n, int single, size_t *len);
/* POST /v1/tokenize: {"model", "tokens", "token_ids", "offsets", "unknown": [bool], "truncated",
 * ["num_tokens_total"]} per text, cfgs[i] its model (several: {"model", "results": [...]}, the
 * top "model" "auto" when they differ). */
char *api_tokenize_body(const gru_config_t *const *cfgs, const tok_seq_t *seqs, size_t n, int single, size_t *len);
/* The same body in bounded pieces, one result each, so that a large answer is never held whole:
 * the server encodes a piece when the socket has room for it and reuses the buffer. The pieces
 * concatenated are api_sentiment_body()'s bytes (which is built from them).
 *     api_sentiment_stream_t st;
 *     api_sentiment_stream_init(&st, results, n, single);   // results borrowed until deinit
 *     while ((rc = api_sentiment_stream_next(&st, &piece, &len)) == 1) send(piece, len);
 *     api_sentiment_stream_deinit(&st);                     // rc 0: the end; < 0: failed
 * Caller-owned storage; the fields are private. */
typedef struct {
    const api_result_t *results; /* borrowed: (n) */
    size_t n;
    int single;
    size_t next;                 /* the next result to encode; n + 1 after a failure */
    char *buf;                   /* the current piece (malloc'ed, reused) */
    size_t len, cap;
} api_sentiment_stream_t;
void api_sentiment_stream_init(api_sentiment_stream_t *st, const api_result_t *results, size_t n, int single);
/* Encodes the next piece: returns 1 with *piece and *len (borrowed: valid until the next call
 * or deinit), 0 when the body is complete, or -EINVAL (out of memory, or a result JSON cannot
 * hold, as api_sentiment_body's NULL); after a failure the stream stays failed. */
int api_sentiment_stream_next(api_sentiment_stream_t *st, const char **piece, size_t *len);
void api_sentiment_stream_deinit(api_sentiment_stream_t *st); /* frees the piece buffer */
/* An upper bound of the bytes of a piece holding r (with the separator and the batch body's
 * prefix or suffix), without encoding: O(tokens). What the server budgets per piece. */
size_t api_result_json_bound(const api_result_t *r);
/* POST /v2/models/{name}/infer: {"model_name", "model_version", ["id"], "outputs": [...]} with
 * the outputs of req (label: BYTES [n]; probabilities: FP32 [n, C]). probs is (n, C); version
 * is the model's version ("1" when NULL or ""). */
char *api_kserve_infer_body(const api_request_t *req, const gru_config_t *cfg, const char *version,
                            const float *probs, size_t n, size_t *len);
/* GET /v1/models: {"default": name, "models": [...]}. */
char *api_models_body(const api_model_info_t *models, size_t n, size_t *len);
/* GET /v2/models/{name}: KServe model metadata. */
char *api_kserve_model_body(const api_model_info_t *model, size_t *len);
/* GET /v2: KServe server metadata. */
char *api_kserve_server_body(const char *version, size_t *len);
/* {key: value}, e.g. {"status": "ok"}. */
char *api_status_body(const char *key, const char *value, size_t *len);
/* {key: flag} or, when name is not NULL, {"name": name, key: flag}: {"live": true}. */
char *api_flag_body(const char *name, const char *key, int flag, size_t *len);

/* Reads the model card of a model directory: README.md (lines such as "dev accuracy: 0.874",
 * "| accuracy | 87.4% |") and, when present, config.json keys "metrics": {"accuracy",
 * "macro_f1"} or "dev_accuracy" / "dev_macro_f1". Fills accuracy and macro_f1 (NaN when not
 * found); never fails. */
void api_model_card_read(const char *dir, double *accuracy, double *macro_f1);

/* ---- prototypes: the repository routes (api_repo.c) ---- */
/* POST /v2/repository/index: [{"name", "version", "state", "reason"}, ...]. */
char *api_repo_index_body(const api_repo_model_t *models, size_t n, size_t *len);
/* POST /v2/repository/models/{name}/load|unload: {"name", "model_version", "state"}. */
char *api_repo_model_body(const api_repo_model_t *model, size_t *len);
/* The optional index body {"ready": bool} (empty: every model). Returns 0 (with *ready_only),
 * or -1 with *err set. */
int api_repo_index_parse(const char *body, size_t len, int *ready_only, api_error_t *err);

/* ---- the OpenAPI document (api/openapi.json, embedded at build time) ---- */
extern const char api_openapi_json[]; /* static, NUL-terminated */

#endif /* API_H */
