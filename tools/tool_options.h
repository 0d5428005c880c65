/* tool_options.h - the engine settings of the command-line programs (gru-predict, gru-bench)
 * and of the parity test: the library's defaults (GRU_LOAD_OPTIONS_DEFAULT, the same engine
 * gru-serve builds with its default flags), overridden by two environment variables for
 * comparisons:
 *     GRU_PROJ_TABLE_MAX_MB=N   the projection table's budget (0: no table)
 *     GRU_PACKED=0              the recurrent product through BLAS instead of the packed kernel
 * The model library itself reads no environment variable. Header only.
 */
#ifndef TOOL_OPTIONS_H
#define TOOL_OPTIONS_H

#include <stdlib.h>
#include <string.h>

#include "gru.h"

static inline gru_load_options_t tool_load_options(void) {
    gru_load_options_t o = GRU_LOAD_OPTIONS_DEFAULT;
    const char *mb = getenv("GRU_PROJ_TABLE_MAX_MB"), *packed = getenv("GRU_PACKED");
    if (mb && *mb) o.proj_table_max_mb = atoi(mb);
    if (packed && strcmp(packed, "0") == 0) o.packed = 0;
    return o;
}

#endif /* TOOL_OPTIONS_H */
