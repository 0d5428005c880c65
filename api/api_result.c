/* api_result.c - the error object of gru-predict's output lines (see api.h). The result object
 * has one writer, api_write.c (api_sentiment_body). */
#include "api.h"

json_t *api_error_to_json(const char *code, const char *message) {
    return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
}
