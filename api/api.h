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
} api_result_t;

/* ---- prototypes ---- */

/* The result object (new reference), or NULL when out of memory:
 *   {"model", "label", "score", "probabilities": {label: p}, "tokens", "token_ids",
 *    "truncated", ["num_tokens_total" when truncated], ["gates": [...]], ["trajectory": [...]]}
 * gates: one entry per layer and direction {"layer", "direction": "forward"|"backward",
 * "reset", "update"} with one number per token (summary) or, in full mode, "reset", "update",
 * "candidate", "hidden" as per-token arrays of H numbers. */
json_t *api_result_to_json(const api_result_t *r);

/* The error body {"error": {"code": code, "message": message}} (new reference, or NULL).
 * code is a stable machine-readable word such as "invalid_json"; message is for people. */
json_t *api_error_to_json(const char *code, const char *message);

#endif /* API_H */
