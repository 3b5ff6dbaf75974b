/* test_model_check.c -- unit tests of gm_model_check.h on small hand-written XGBoost JSON models: a valid
 * two-tree model (and the things XGBoost itself writes: deleted nodes no path reaches, dart, categorical
 * splits) is accepted; each fault, put in tree 1, is refused with the one line expected for it. XGBoost's C API
 * makes the UBJSON and legacy binary forms of the same models (its loader takes the faults below without a
 * complaint), and every truncation of a UBJSON model is refused, never read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xgboost/c_api.h>

#include "gm_log.h"
#include "gm_model.h"
#include "gm_model_check.h"

/* A model of 3 features and two trees of 5 nodes: node 0 splits on feature 0 into 1 and leaf 2, node 1 on
 * feature 2 into leaves 3 and 4. Tree 0 is always this one; a field set here replaces tree 1's (or the
 * model's), NULL keeps the valid value. */
typedef struct {
    const char *booster, *num_trees, *tree_info, *weight_drop, *num_class;
    const char *num_nodes, *id, *left, *right, *parents, *split, *conds, *split_type, *cat_nodes, *cat_segs,
        *cat_sizes, *cats, *num_deleted, *default_left;
} spec_t;

#define OR(v, d) ((v) ? (v) : (d))

/* Writes one tree as XGBoost 1.7 does; 'v' gives tree 1's fields, NULL for tree 0's. */
static int tree_json(char *out, size_t cap, const spec_t *v, int id) {
    spec_t none = {0};
    if (!v) v = &none;
    char idbuf[16];
    snprintf(idbuf, sizeof idbuf, "%d", id);
    return snprintf(out, cap,
                    "{\"base_weights\":[0.5,0.25,-0.5,0.75,0.125],\"categories\":[%s],\"categories_nodes\":[%s],"
                    "\"categories_segments\":[%s],\"categories_sizes\":[%s],\"default_left\":[%s],\"id\":%s,"
                    "\"left_children\":[%s],\"loss_changes\":[1.5,0.5,0.0,0.0,0.0],\"parents\":[%s],"
                    "\"right_children\":[%s],\"split_conditions\":[%s],\"split_indices\":[%s],\"split_type\":[%s],"
                    "\"sum_hessian\":[10.0,6.0,4.0,3.0,3.0],\"tree_param\":{\"num_deleted\":\"%s\",\"num_feature\":"
                    "\"3\",\"num_nodes\":\"%s\",\"size_leaf_vector\":\"0\"}}",
                    OR(v->cats, ""), OR(v->cat_nodes, ""), OR(v->cat_segs, ""), OR(v->cat_sizes, ""),
                    OR(v->default_left, "1,0,0,0,0"), OR(v->id, idbuf), OR(v->left, "1,3,-1,-1,-1"),
                    OR(v->parents, "2147483647,0,0,1,1"), OR(v->right, "2,4,-1,-1,-1"),
                    OR(v->conds, "0.5,1.5,-0.25,0.75,0.125"), OR(v->split, "0,2,0,0,0"),
                    OR(v->split_type, "0,0,0,0,0"), OR(v->num_deleted, "0"), OR(v->num_nodes, "5"));
}

/* Returns the whole model as malloc'd JSON text. */
static char *model_json(const spec_t *s) {
    char t0[2048], t1[2048], *out = malloc(8192);
    assert_non_null(out);
    tree_json(t0, sizeof t0, NULL, 0);
    tree_json(t1, sizeof t1, s, 1);
    char model[6000];
    snprintf(model, sizeof model,
             "{\"gbtree_model_param\":{\"num_parallel_tree\":\"1\",\"num_trees\":\"%s\",\"size_leaf_vector\":\"0\"},"
             "\"tree_info\":[%s],\"trees\":[%s,%s]}",
             OR(s->num_trees, "2"), OR(s->tree_info, "0,0"), t0, t1);
    const char *booster = OR(s->booster, "gbtree");
    char gb[6200];
    if (!strcmp(booster, "dart"))
        snprintf(gb, sizeof gb,
                 "{\"gbtree\":{\"model\":%s,\"name\":\"gbtree\"},\"name\":\"dart\",\"weight_drop\":[%s]}", model,
                 OR(s->weight_drop, "1.0,0.5"));
    else if (!strcmp(booster, "gblinear"))
        snprintf(gb, sizeof gb, "{\"model\":{\"weights\":[0.1,0.2,0.3,0.5]},\"name\":\"gblinear\"}");
    else
        snprintf(gb, sizeof gb, "{\"model\":%s,\"name\":\"%s\"}", model, booster);
    snprintf(out, 8192,
             "{\"learner\":{\"attributes\":{},\"feature_names\":[],\"feature_types\":[],\"gradient_booster\":%s,"
             "\"learner_model_param\":{\"base_score\":\"5E-1\",\"boost_from_average\":\"1\",\"num_class\":\"%s\","
             "\"num_feature\":\"3\",\"num_target\":\"1\"},\"objective\":{\"name\":\"reg:squarederror\","
             "\"reg_loss_param\":{\"scale_pos_weight\":\"1\"}}},\"version\":[1,7,4]}",
             gb, OR(s->num_class, "0"));
    return out;
}

/* Checks the model 's' as JSON; 'want' is the whole message expected, NULL for an accepted model. */
static void expect(const spec_t *s, const char *want) {
    char *json = model_json(s), err[GM_ERR_LEN] = "";
    int rc = gm_model_check_json(json, strlen(json), "m.json", err);
    if (!want) {
        if (rc != 0) fail_msg("refused: %s\nmodel: %s", err, json);
    } else {
        if (rc != -1) fail_msg("accepted, expected: %s\nmodel: %s", want, json);
        assert_string_equal(err, want);
        /* gm_model_check_bytes sees JSON and says the same */
        char err2[GM_ERR_LEN] = "";
        assert_int_equal(gm_model_check_bytes(json, strlen(json), "m.json", err2), -1);
        assert_string_equal(err2, want);
    }
    free(json);
}

static void test_valid(void **state) {
    (void)state;
    expect(&(spec_t){0}, NULL);
    char *json = model_json(&(spec_t){0}), err[GM_ERR_LEN];
    assert_int_equal(gm_model_check_bytes(json, strlen(json), "m.json", err), 1);
    free(json);
    /* what XGBoost writes and must be accepted: a deleted node (split index 2^31-1, no children) that no path
     * reaches, as the exact and prune updaters leave them; a root that is a leaf; a dart booster; splits on
     * every feature; a second output group in a 2-class model */
    expect(&(spec_t){.left = "1,-1,-1,-1,-1", .right = "2,-1,-1,-1,-1", .split = "0,2147483647,0,2147483647,2147483647",
                     .default_left = "0,1,0,1,1", .num_deleted = "3"}, NULL);
    expect(&(spec_t){.left = "-1,-1,-1,-1,-1", .right = "-1,-1,-1,-1,-1"}, NULL);
    expect(&(spec_t){.booster = "dart"}, NULL);
    expect(&(spec_t){.split = "2,1,0,0,0"}, NULL);
    expect(&(spec_t){.tree_info = "0,1", .num_class = "2"}, NULL);
    /* a categorical split on node 1: categories 1 and 3 go right */
    expect(&(spec_t){.split_type = "0,1,0,0,0", .cat_nodes = "1", .cat_segs = "0", .cat_sizes = "2", .cats = "1,3"},
           NULL);
}

static void test_structure(void **state) {
    (void)state;
    expect(&(spec_t){.left = "1,0,-1,-1,-1"},
           "m.json: tree 1: node 1: left child 0 is the node itself or one of its ancestors (a cycle)");
    expect(&(spec_t){.right = "2,1,-1,-1,-1"},
           "m.json: tree 1: node 1: right child 1 is the node itself or one of its ancestors (a cycle)");
    expect(&(spec_t){.right = "2,2,-1,-1,-1"}, "m.json: tree 1: node 2 is a child of both node 0 and node 1");
    expect(&(spec_t){.left = "1,4,-1,-1,-1"}, "m.json: tree 1: node 1 has node 4 as both its children");
    expect(&(spec_t){.right = "5,4,-1,-1,-1"}, "m.json: tree 1: node 0: right child 5 is not one of its 5 nodes");
    expect(&(spec_t){.left = "1,-2,-1,-1,-1"}, "m.json: tree 1: node 1: left child -2 is not one of its 5 nodes");
    expect(&(spec_t){.right = "2,-1,-1,-1,-1"}, "m.json: tree 1: node 1 has one child (left 3, right -1)");
    expect(&(spec_t){.left = "1,3,-1,-1,0", .right = "2,4,-1,-1,-1"},
           "m.json: tree 1: node 4 has one child (left 0, right -1)");
    expect(&(spec_t){.left = "1,3,-1,-1,1", .right = "2,4,-1,-1,2"},
           "m.json: tree 1: node 4: left child 1 is the node itself or one of its ancestors (a cycle)");
    expect(&(spec_t){.parents = "2147483647,0,2147483647,1,1"},
           "m.json: tree 1: node 2: parent 2147483647 is not one of its 5 nodes");
    expect(&(spec_t){.left = "1,3.5,-1,-1,-1"}, "m.json: tree 1: left_children[1] is not an integer");
}

static void test_features(void **state) {
    (void)state;
    expect(&(spec_t){.split = "0,-1,0,0,0"},
           "m.json: tree 1: node 1 splits on feature -1, not one of the model's 3 features");
    expect(&(spec_t){.split = "3,0,0,0,0"},
           "m.json: tree 1: node 0 splits on feature 3, not one of the model's 3 features");
    expect(&(spec_t){.split = "0,4294967297,0,0,0"},
           "m.json: tree 1: node 1 splits on feature 4294967297, not one of the model's 3 features");
}

static void test_arrays(void **state) {
    (void)state;
    expect(&(spec_t){.num_nodes = "6"}, "m.json: tree 1: left_children has length 5, num_nodes is 6");
    expect(&(spec_t){.num_nodes = "0"}, "m.json: tree 1: num_nodes is 0");
    expect(&(spec_t){.conds = "0.5,1.5,-0.25,0.75"}, "m.json: tree 1: split_conditions has length 4, num_nodes is 5");
    expect(&(spec_t){.parents = "2147483647,0,0,1,1,1"}, "m.json: tree 1: parents has length 6, num_nodes is 5");
    expect(&(spec_t){.default_left = "0,0"}, "m.json: tree 1: default_left has length 2, num_nodes is 5");
}

static void test_model_level(void **state) {
    (void)state;
    expect(&(spec_t){.num_trees = "3"}, "m.json: gbtree_model_param.num_trees is 3 but the model holds 2 trees");
    expect(&(spec_t){.num_trees = "1"}, "m.json: gbtree_model_param.num_trees is 1 but the model holds 2 trees");
    expect(&(spec_t){.tree_info = "0"}, "m.json: tree_info has length 1 for 2 trees");
    expect(&(spec_t){.tree_info = "0,1"}, "m.json: tree 1: tree_info gives it output 1 of 1");
    expect(&(spec_t){.tree_info = "0,-1", .num_class = "3"}, "m.json: tree 1: tree_info gives it output -1 of 3");
    expect(&(spec_t){.id = "0"}, "m.json: tree 1: id 0 is not one of 0 to 1 or is taken twice");
    expect(&(spec_t){.id = "7"}, "m.json: tree 1: id 7 is not one of 0 to 1 or is taken twice");
    expect(&(spec_t){.booster = "gblinear"},
           "m.json: booster gblinear is not supported: gridmill applies tree models, train with booster gbtree");
    expect(&(spec_t){.booster = "gbforest"},
           "m.json: booster gbforest is not supported: gridmill applies tree models, train with booster gbtree");
    expect(&(spec_t){.booster = "dart", .weight_drop = "1.0"}, "m.json: weight_drop has length 1 for 2 trees");
    char err[GM_ERR_LEN];
    const char *broken = "{\"learner\": [1, 2";
    assert_int_equal(gm_model_check_json(broken, strlen(broken), "m.json", err), -1);
    assert_string_equal(err, "m.json: not an XGBoost model (JSON: ',' or ']' expected)");
    const char *other = "{\"version\": [1, 7, 4]}";
    assert_int_equal(gm_model_check_json(other, strlen(other), "m.json", err), -1);
    assert_string_equal(err, "m.json: not an XGBoost model (no learner)");
}

static void test_categories(void **state) {
    (void)state;
    const char *cat1 = "0,1,0,0,0";
    expect(&(spec_t){.split_type = "0,1,0,0"}, "m.json: tree 1: split_type has length 4, num_nodes is 5");
    expect(&(spec_t){.split_type = "0,2,0,0,0"},
           "m.json: tree 1: node 1: split_type is 2 (0 numerical, 1 categorical)");
    expect(&(spec_t){.split_type = cat1},
           "m.json: tree 1: categories_nodes lists 0 nodes, split_type marks 1 as categorical");
    expect(&(spec_t){.split_type = cat1, .cat_nodes = "1", .cat_segs = "0,1", .cat_sizes = "2", .cats = "1,3"},
           "m.json: tree 1: categories_nodes, categories_segments and categories_sizes have 1, 2 and 1 entries");
    expect(&(spec_t){.split_type = cat1, .cat_nodes = "0", .cat_segs = "0", .cat_sizes = "2", .cats = "1,3"},
           "m.json: tree 1: categories_nodes[0] is node 0, a numerical split");
    expect(&(spec_t){.split_type = cat1, .cat_nodes = "9", .cat_segs = "0", .cat_sizes = "2", .cats = "1,3"},
           "m.json: tree 1: categories_nodes[0] is not a node after -1");
    expect(&(spec_t){.split_type = cat1, .cat_nodes = "1", .cat_segs = "1", .cat_sizes = "2", .cats = "1,3"},
           "m.json: tree 1: node 1: its categories (segment 1, size 2) are not within the 2 of categories");
    expect(&(spec_t){.split_type = cat1, .cat_nodes = "1", .cat_segs = "0", .cat_sizes = "0", .cats = "1,3"},
           "m.json: tree 1: node 1: its categories (segment 0, size 0) are not within the 2 of categories");
    expect(&(spec_t){.split_type = cat1, .cat_nodes = "1", .cat_segs = "0", .cat_sizes = "2", .cats = "1,-3"},
           "m.json: tree 1: categories[1] is -3, not a category (0 to 16777215)");
    expect(&(spec_t){.split_type = cat1, .cat_nodes = "1", .cat_segs = "0", .cat_sizes = "2", .cats = "1,16777216"},
           "m.json: tree 1: categories[1] is 16777216, not a category (0 to 16777215)");
}

/* Loads JSON text into a booster and saves it in 'format' ("ubj" or "deprecated"); returns a malloc'd copy. */
static void *xgb_convert(const char *json, const char *format, size_t *len) {
    BoosterHandle b;
    char cfg[64];
    bst_ulong n;
    const char *bytes;
    assert_int_equal(XGBoosterCreate(NULL, 0, &b), 0);
    if (XGBoosterLoadModelFromBuffer(b, json, strlen(json)) != 0) fail_msg("XGBoost: %s", XGBGetLastError());
    snprintf(cfg, sizeof cfg, "{\"format\":\"%s\"}", format);
    if (XGBoosterSaveModelToBuffer(b, cfg, &n, &bytes) != 0) fail_msg("XGBoost: %s", XGBGetLastError());
    void *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, bytes, n);
    *len = n;
    XGBoosterFree(b);
    return copy;
}

static void test_ubjson(void **state) {
    (void)state;
    char err[GM_ERR_LEN];
    size_t len;
    char *json = model_json(&(spec_t){0});
    unsigned char *ubj = xgb_convert(json, "ubj", &len);
    assert_int_equal(ubj[0], '{');
    assert_int_equal(gm_model_check_bytes(ubj, len, "m.ubj", err), 1);
    /* every truncation is refused as not a model, and read no further than its end (valgrind and ASan watch) */
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *part = malloc(cut ? cut : 1);
        memcpy(part, ubj, cut);
        if (gm_model_check_ubjson(part, cut, "m.ubj", err) != -1) fail_msg("a UBJSON cut at %zu accepted", cut);
        free(part);
    }
    free(ubj);
    free(json);
    /* faults XGBoost's loader accepts, written back by XGBoost as UBJSON: the same message */
    struct {
        spec_t s;
        const char *want;
    } cases[] = {
        {{.left = "1,0,-1,-1,-1"},
         "m.ubj: tree 1: node 1: left child 0 is the node itself or one of its ancestors (a cycle)"},
        {{.right = "7,4,-1,-1,-1"}, "m.ubj: tree 1: node 0: right child 7 is not one of its 5 nodes"},
        /* XGBoost keeps 31 bits of a split index: -3 comes back as 2^31 - 3 */
        {{.split = "0,-3,0,0,0"},
         "m.ubj: tree 1: node 1 splits on feature 2147483645, not one of the model's 3 features"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json = model_json(&cases[i].s);
        ubj = xgb_convert(json, "ubj", &len);
        assert_int_equal(gm_model_check_bytes(ubj, len, "m.ubj", err), -1);
        assert_string_equal(err, cases[i].want);
        free(ubj);
        free(json);
    }
}

static void test_load(void **state) {
    (void)state;
    char err[GM_ERR_LEN];
    size_t len;
    /* JSON: refused before XGBoost parses it, with the checker's line */
    char *json = model_json(&(spec_t){.num_trees = "5"});
    gm_model_t *m = gm_model_load(json, strlen(json), 1, "m.json", err);
    assert_null(m);
    assert_string_equal(err, "m.json: gbtree_model_param.num_trees is 5 but the model holds 2 trees");
    free(json);
    /* legacy binary: gm_model_check_bytes cannot read it; gm_model_load checks the JSON XGBoost exports */
    json = model_json(&(spec_t){.right = "2,4,-1,-1,9"});
    unsigned char *bin = xgb_convert(json, "deprecated", &len);
    assert_int_not_equal(bin[0], '{');
    assert_int_equal(gm_model_check_bytes(bin, len, "m.bin", err), 0);
    m = gm_model_load(bin, len, 1, "m.bin", err);
    assert_null(m);
    assert_string_equal(err, "m.bin: tree 1: node 4 has one child (left -1, right 9)");
    free(bin);
    free(json);
    /* the valid model in every format loads */
    json = model_json(&(spec_t){0});
    const char *formats[] = {"json", "ubj", "deprecated"};
    for (size_t i = 0; i < 3; i++) {
        void *bytes = xgb_convert(json, formats[i], &len);
        m = gm_model_load(bytes, len, 1, formats[i], err);
        if (!m) fail_msg("%s: %s", formats[i], err);
        assert_int_equal(gm_model_info(m)->nfeature, 3);
        gm_model_destroy(&m);
        free(bytes);
    }
    free(json);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),     cmocka_unit_test(test_structure), cmocka_unit_test(test_features),
        cmocka_unit_test(test_arrays),    cmocka_unit_test(test_model_level), cmocka_unit_test(test_categories),
        cmocka_unit_test(test_ubjson),    cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
