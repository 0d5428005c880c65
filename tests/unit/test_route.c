/* test_route.c - gru-serve's route table (server/srv_routes.def, server/srv_route.c): it equals
 * the OpenAPI document's paths and methods in both directions, and every row, pattern and edge
 * of path matching resolves to the right route. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "srv_route.h"

/* The pattern with {name} replaced by "m1" (a path the row must match). */
static void example_path(char *out, size_t cap, const char *pattern) {
    size_t k = 0;
    for (const char *p = pattern; *p && k + 3 < cap;) {
        if (!strncmp(p, "{name}", 6)) {
            out[k++] = 'm', out[k++] = '1';
            p += 6;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = 0;
}

/* Every row is an OpenAPI path with exactly its methods (HEAD goes with GET; OpenAPI lists no
 * OPTIONS), and every OpenAPI path is a row. */
static void test_table_equals_openapi(void **state) {
    (void)state;
    json_error_t je;
    json_t *doc = json_load_file(GRU_SOURCE_DIR "/api/openapi.json", 0, &je);
    if (!doc) fail_msg("api/openapi.json: %s (line %d)", je.text, je.line);
    json_t *paths = json_object_get(doc, "paths");
    assert_non_null(paths);
    size_t rows = 0;
    for (int id = 0; id < SRV_ROUTE_OTHER; id++) {
        const srv_route_t *rt = srv_route_get((srv_route_id_t)id);
        assert_int_equal(rt->id, id);
        json_t *ops = json_object_get(paths, rt->pattern);
        if (!ops) fail_msg("route %s is not in api/openapi.json", rt->pattern);
        assert_int_equal(json_object_get(ops, "get") != NULL, (rt->methods & SRV_M_GET) != 0);
        assert_int_equal(json_object_get(ops, "post") != NULL, (rt->methods & SRV_M_POST) != 0);
        assert_int_equal((rt->methods & SRV_M_HEAD) != 0, (rt->methods & SRV_M_GET) != 0);
        rows++;
    }
    const char *key;
    json_t *v;
    json_object_foreach(paths, key, v) {
        const srv_route_t *rt = NULL;
        for (int id = 0; id < SRV_ROUTE_OTHER && !rt; id++)
            if (!strcmp(srv_route_get((srv_route_id_t)id)->pattern, key)) rt = srv_route_get((srv_route_id_t)id);
        if (!rt) fail_msg("api/openapi.json documents %s, which no route serves", key);
    }
    assert_int_equal(json_object_size(paths), rows);
    json_decref(doc);
}

/* Each row's own path (with a model name for patterns) matches that row, with or without a
 * query and a trailing slash; the metrics label is the pattern. */
static void test_every_row_matches_itself(void **state) {
    (void)state;
    for (int id = 0; id < SRV_ROUTE_OTHER; id++) {
        const srv_route_t *rt = srv_route_get((srv_route_id_t)id);
        char path[256], name[128] = "", variant[300];
        example_path(path, sizeof path, rt->pattern);
        assert_int_equal(srv_route_match(path, name, sizeof name)->id, id);
        if (strchr(rt->pattern, '{')) assert_string_equal(name, "m1");
        snprintf(variant, sizeof variant, "%s%s?x=/1", path, strcmp(path, "/") ? "/" : "");
        assert_int_equal(srv_route_match(variant, name, sizeof name)->id, id);
        assert_string_equal(srv_route_name((srv_route_id_t)id), rt->pattern);
    }
}

static void test_patterns(void **state) {
    (void)state;
    char name[16];
    static const struct {
        const char *url;
        srv_route_id_t id;
        const char *name;
    } cases[] = {
        {"/v2/models/sst2-en", SRV_ROUTE_V2_MODEL, "sst2-en"},
        {"/v2/models/sst2-en/versions/1", SRV_ROUTE_V2_MODEL, "sst2-en"},
        {"/v2/models/sst2-en/versions/1/infer", SRV_ROUTE_V2_INFER, "sst2-en"},
        {"/v2/models/sst2-en/versions/1/ready/", SRV_ROUTE_V2_MODEL_READY, "sst2-en"},
        {"/v2/models/sst2-en/versions/2/infer", SRV_ROUTE_OTHER, NULL},
        {"/v2/models/sst2-en/versions/10", SRV_ROUTE_OTHER, NULL},
        {"/v2/models/sst2-en/explain", SRV_ROUTE_OTHER, NULL},
        {"/v2/models/", SRV_ROUTE_OTHER, NULL},
        {"/v2/models//infer", SRV_ROUTE_OTHER, NULL},
        {"/v2/models/a-name-far-too-long-for-the-buffer", SRV_ROUTE_OTHER, NULL},
        {"/v1/sentimentx", SRV_ROUTE_OTHER, NULL},
        {"/v1", SRV_ROUTE_OTHER, NULL},
        {"", SRV_ROUTE_OTHER, NULL},
        {"/index.html", SRV_ROUTE_PAGE_INDEX, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const srv_route_t *rt = srv_route_match(cases[i].url, name, sizeof name);
        if (rt->id != cases[i].id) fail_msg("%s: route %s", cases[i].url, rt->pattern);
        if (cases[i].name) assert_string_equal(name, cases[i].name);
    }
    assert_string_equal(srv_route_name(SRV_ROUTE_OTHER), "other");
    assert_string_equal(srv_route_name((srv_route_id_t)999), "other");
}

static void test_methods(void **state) {
    (void)state;
    assert_int_equal(srv_method_bit("GET"), SRV_M_GET);
    assert_int_equal(srv_method_bit("HEAD"), SRV_M_HEAD);
    assert_int_equal(srv_method_bit("POST"), SRV_M_POST);
    assert_int_equal(srv_method_bit("OPTIONS"), SRV_M_OPTIONS);
    assert_int_equal(srv_method_bit("get"), SRV_M_OTHER);
    assert_int_equal(srv_method_bit("DELETE"), SRV_M_OTHER);
    assert_string_equal(srv_route_allow(srv_route_get(SRV_ROUTE_SENTIMENT)->methods), "POST, OPTIONS");
    assert_string_equal(srv_route_allow(srv_route_get(SRV_ROUTE_HEALTHZ)->methods), "GET, HEAD, OPTIONS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_equals_openapi),
        cmocka_unit_test(test_every_row_matches_itself),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
