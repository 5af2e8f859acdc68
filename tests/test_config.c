/* Study configuration: schema defaults, INI parsing, error locations, --set overrides,
 * cross-key rules, the resolved file round trip and the README key table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/blas_kernel.h"
#include "src/config.h"
#include "src/error.h"
#include "tests/support/testutil.h"

static char g_dir[1024];

static void setup(void) {
    fm_test_tmpdir(g_dir, sizeof g_dir);
}
static void teardown(void) {
    fm_test_rmtree(g_dir);
}

/* Writes `text` to <tmp>/<name> and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(test_defaults) {
    FmConfig c;
    ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
    ck_assert_int_eq(fm_config_int(&c, "model.d_model"), 128);
    ck_assert_int_eq(fm_config_int(&c, "model.top_k"), 4);
    ck_assert(fm_config_float(&c, "train.lr") == 4e-4);
    ck_assert(fm_config_float(&c, "data.los_threshold_days") == 7.0);
    ck_assert_str_eq(fm_config_string(&c, "model.gate"), "laplace");
    ck_assert_int_eq(fm_config_enum(&c, "model.gate"), 0);
    ck_assert_int_eq(fm_config_enum(&c, "train.select_metric"), 1); /* auroc|auprc|... */
    ck_assert_int_eq(fm_config_bool(&c, "model.noisy_gating"), 1);
    ck_assert_int_eq(fm_config_bool(&c, "competition.enabled"), 0);
    ck_assert_uint_eq(fm_config_list_len(&c, "data.tasks"), 1);
    ck_assert_str_eq(fm_config_list_item(&c, "data.tasks", 0), "mortality");
    ck_assert_uint_eq(fm_config_list_len(&c, "data.modalities"), 0);
    ck_assert_uint_eq(fm_config_list_len(&c, "train.task_weights"), 0);
    ck_assert_str_eq(fm_config_string(&c, "data.cohort"), "");
    ck_assert_str_eq(fm_config_where(&c, "model.d_model"), "default");
    ck_assert_str_eq(fm_config_text(&c, "train.lr"), "0.0004");
    ck_assert_int_eq(fm_config_int(&c, "eval.bootstrap"), 1000);
    ck_assert_int_eq(fm_config_check(&c, NULL), FM_OK);
    /* Every schema key has a description without '|' (Markdown cells) and a known section. */
    int n;
    const FmConfigKey *k = fm_config_schema(&n);
    ck_assert_int_eq(c.n, n);
    ck_assert_int_ge(n, 44);
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_null(strchr(k[i].doc, '|'));
        ck_assert(k[i].doc[0] && k[i].doc[strlen(k[i].doc) - 1] != '.');
    }
    fm_config_free(&c);
    fm_config_free(&c); /* idempotent */
}
END_TEST

START_TEST(test_load_valid_file) {
    const char *path = write_file("study.ini", "# a study\n"
                                               "; another comment style\n"
                                               "[data]\n"
                                               "cohort = /data/p12 cohort\n"
                                               "tasks = mortality,  phenotypes ; two tasks\n"
                                               "modalities = vitals, labs\n"
                                               "\n"
                                               "[model]\n"
                                               "  gate = softmax\n" /* indentation is ignored */
                                               "noisy_gating = Off\n"
                                               "experts=8\n"
                                               "dropout = 2.5e-1\r\n" /* CRLF */
                                               "[train]\n"
                                               "task_weights = 1, 0.5\n"
                                               "lr = 0.001\n");
    FmConfig c;
    FmError err;
    ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
    ck_assert_int_eq(fm_config_load(&c, path, &err), FM_OK);
    ck_assert_str_eq(fm_config_string(&c, "data.cohort"), "/data/p12 cohort");
    ck_assert_uint_eq(fm_config_list_len(&c, "data.tasks"), 2);
    ck_assert_str_eq(fm_config_list_item(&c, "data.tasks", 1), "phenotypes");
    ck_assert_str_eq(fm_config_text(&c, "data.tasks"), "mortality, phenotypes");
    ck_assert_str_eq(fm_config_list_item(&c, "data.modalities", 0), "vitals");
    ck_assert_str_eq(fm_config_string(&c, "model.gate"), "softmax");
    ck_assert_int_eq(fm_config_enum(&c, "model.gate"), 2);
    ck_assert_int_eq(fm_config_bool(&c, "model.noisy_gating"), 0);
    ck_assert_int_eq(fm_config_int(&c, "model.experts"), 8);
    ck_assert(fm_config_float(&c, "model.dropout") == 0.25);
    ck_assert(fm_config_float_item(&c, "train.task_weights", 1) == 0.5);
    ck_assert(fm_config_float(&c, "train.lr") == 0.001);
    ck_assert_int_eq(fm_config_int(&c, "model.d_model"), 128); /* untouched keys keep theirs */
    char want[1300];
    snprintf(want, sizeof want, "%s:9", path);
    ck_assert_str_eq(fm_config_where(&c, "model.gate"), want);
    ck_assert_int_eq(fm_config_check(&c, &err), FM_OK);
    fm_config_free(&c);
}
END_TEST

/* One bad file per error kind: status, file:line and the "[section] key: message" text. */
typedef struct {
    const char *text;
    int line;
    const char *message; /* exact */
} BadCase;

START_TEST(test_file_errors_located) {
    static const BadCase cases[] = {
        {"[model]\nd_model = 64\nexpertz = 4\n", 3,
         "[model] expertz: unknown key (did you mean \"experts\"?)"},
        {"[model]\nfoo_bar_baz = 1\n", 2,
         "[model] foo_bar_baz: unknown key (keys of [model]: d_model, ref_points, heads, time_dim, layers, "
         "experts, "
         "top_k, expert_hidden, gate, router, noisy_gating, dropout, balance_coef, entropy_coef, pooling, "
         "head_hidden, kind, baseline_l2)"},
        {"[data]\nsplit = 1\n[modle]\nd_model = 64\n", 3,
         "[modle]: unknown section (sections: data, model, train, eval, competition)"},
        {"[model]\nd_model = big\n", 2, "[model] d_model: expected an integer, got \"big\""},
        {"[model]\nd_model = 12.5\n", 2, "[model] d_model: expected an integer, got \"12.5\""},
        {"[model]\n\nd_model = 5000\n", 3, "[model] d_model: 5000 is out of range [8, 4096]"},
        {"[train]\nlr = fast\n", 2, "[train] lr: expected a number, got \"fast\""},
        {"[train]\nlr = nan\n", 2, "[train] lr: expected a number, got \"nan\""},
        {"[eval]\nmissing_rate = 1.5\n", 2, "[eval] missing_rate: 1.5 is out of range [0, 1]"},
        {"[model]\ngate = laplce\n", 2, "[model] gate: \"laplce\" is not one of laplace, gaussian, softmax"},
        {"[model]\nnoisy_gating = maybe\n", 2, "[model] noisy_gating: expected true or false, got \"maybe\""},
        {"[data]\ntasks = mortality, icu_death\n", 2,
         "[data] tasks: \"icu_death\" is not one of mortality, los_binary, los_regression, phenotypes"},
        {"[data]\ntasks = mortality,,phenotypes\n", 2, "[data] tasks: item 2 is empty"},
        {"[data]\ntasks =\n", 2, "[data] tasks: 0 items, expected between 1 and 4"},
        {"[data]\ntasks = mortality, mortality\n", 2, "[data] tasks: \"mortality\" is listed twice"},
        {"[train]\ntask_weights = 1, x\n", 2, "[train] task_weights: item 2: expected a number, got \"x\""},
        {"[train]\ntask_weights = 1, -2\n", 2,
         "[train] task_weights: item 2: -2 is out of range [0, 1000000]"},
        {"[model]\nlayers = 2\nlayers = 3\n", 3, "[model] layers: set twice (first on line 2)"},
        {"split = 1\n[data]\n", 1, "key \"split\" is outside any [section]"},
        {"[model]\nlayers = 2\nthis line has no equals sign\n", 3,
         "syntax error: expected \"[section]\", \"key = value\" or a comment"},
        /* The earliest error wins, whatever its kind. */
        {"[model]\n[oops\ngate = laplce\n", 2,
         "syntax error: expected \"[section]\", \"key = value\" or a comment"},
        {"[model]\ngate = laplce\n[oops\n", 2,
         "[model] gate: \"laplce\" is not one of laplace, gaussian, softmax"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *path = write_file("bad.ini", cases[k].text);
        FmConfig c;
        FmError err;
        ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
        FmStatus st = fm_config_load(&c, path, &err);
        ck_assert_msg(st == FM_ERR_CONFIG, "case %zu: status %d", k, st);
        char where[1300];
        snprintf(where, sizeof where, "%s:%d", path, cases[k].line);
        ck_assert_msg(strcmp(err.where, where) == 0, "case %zu: where \"%s\", want \"%s\"", k, err.where,
                      where);
        ck_assert_msg(strcmp(err.message, cases[k].message) == 0, "case %zu: message \"%s\"", k, err.message);
        /* Nothing was applied. */
        ck_assert_int_eq(fm_config_int(&c, "data.split"), 0);
        ck_assert_int_eq(fm_config_int(&c, "model.d_model"), 128);
        ck_assert_int_eq(fm_config_int(&c, "model.layers"), 3);
        ck_assert_str_eq(fm_config_where(&c, "model.d_model"), "default");
        fm_config_free(&c);
    }
}
END_TEST

START_TEST(test_file_errors_io_and_long_lines) {
    FmConfig c;
    FmError err;
    ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/none.ini", g_dir);
    ck_assert_int_eq(fm_config_load(&c, missing, &err), FM_ERR_IO);
    ck_assert_str_eq(err.where, missing);
    /* A line over the limit is an error at its line, not a silent truncation. */
    char text[600];
    snprintf(text, sizeof text, "[data]\nsplit = 2\ncohort = /%0300d\n", 0);
    const char *path = write_file("long.ini", text);
    ck_assert_int_eq(fm_config_load(&c, path, &err), FM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.where, "long.ini:3"));
    ck_assert_str_eq(err.message, "line longer than 197 characters");
    ck_assert_int_eq(fm_config_int(&c, "data.split"), 0);
    /* An override whose line "cohort = value" would not fit is refused (197 - 9 = 188). */
    char set[400];
    snprintf(set, sizeof set, "data.cohort=/%0250d", 0);
    ck_assert_int_eq(fm_config_apply_set(&c, set, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "--set data.cohort");
    ck_assert_str_eq(err.message, "value longer than 188 characters");
    /* 45 items fit as "m0,m1,..." (169 characters) but not as "m0, m1, ..." (213). */
    char list[400] = "data.modalities=m0";
    for (int k = 1; k < 45; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), ",m%d", k);
    ck_assert_int_eq(fm_config_apply_set(&c, list, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "value longer than 184 characters once written back");
    /* A UTF-8 byte-order mark before the first section is accepted. */
    path = write_file("bom.ini", "\xEF\xBB\xBF[data]\nsplit = 4\n");
    ck_assert_int_eq(fm_config_load(&c, path, &err), FM_OK);
    ck_assert_int_eq(fm_config_int(&c, "data.split"), 4);
    /* A value that would be read back as a comment is refused. */
    ck_assert_int_eq(fm_config_load_string(&c, "[data]\ncohort = #x\n", "mem.ini", &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "mem.ini:2");
    fm_config_free(&c);
}
END_TEST

START_TEST(test_set_overrides) {
    FmConfig c;
    FmError err;
    ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&c, "model.experts=32", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&c, "train.lr = 1e-3", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&c, "data.tasks=mortality,los_binary", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&c, "data.modalities=", &err), FM_OK);
    ck_assert_int_eq(fm_config_int(&c, "model.experts"), 32);
    ck_assert(fm_config_float(&c, "train.lr") == 1e-3);
    ck_assert_uint_eq(fm_config_list_len(&c, "data.tasks"), 2);
    ck_assert_str_eq(fm_config_where(&c, "model.experts"), "--set model.experts");

    static const struct {
        const char *arg, *where, *message;
    } bad[] = {
        {"model.experts", "--set model.experts", "expected section.key=value"},
        {"experts=4", "--set experts=4", "expected section.key=value"},
        {"modle.experts=4", "--set modle.experts",
         "unknown section (sections: data, model, train, eval, competition)"},
        {"model.expert=4", "--set model.expert", "unknown key (did you mean \"experts\"?)"},
        {"model.experts=four", "--set model.experts", "expected an integer, got \"four\""},
        {"model.experts=0", "--set model.experts", "0 is out of range [1, 1024]"},
        {"model.router=shared", "--set model.router",
         "\"shared\" is not one of joint, per_modality, disjoint"},
        {"train.clip_norm=-1", "--set train.clip_norm", "-1 is out of range [0, 1000000]"},
        {"competition.enabled=2", "--set competition.enabled", "expected true or false, got \"2\""},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        FmStatus st = fm_config_apply_set(&c, bad[k].arg, &err);
        ck_assert_msg(st == FM_ERR_CONFIG, "%s: status %d", bad[k].arg, st);
        ck_assert_msg(strcmp(err.where, bad[k].where) == 0, "%s: where \"%s\"", bad[k].arg, err.where);
        ck_assert_msg(strcmp(err.message, bad[k].message) == 0, "%s: message \"%s\"", bad[k].arg,
                      err.message);
    }
    ck_assert_int_eq(fm_config_int(&c, "model.experts"), 32); /* unchanged by the failures */
    fm_config_free(&c);
}
END_TEST

START_TEST(test_cross_key_rules) {
    FmConfig c;
    FmError err;
    ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&c, "model.top_k=20", &err), FM_OK); /* alone it is in range */
    ck_assert_int_eq(fm_config_check(&c, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "--set model.top_k");
    ck_assert_str_eq(err.message, "20 is more than model.experts (16)");
    fm_config_free(&c);

    ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
    ck_assert_int_eq(fm_config_load_string(&c, "[model]\nd_model = 100\n\nheads = 8\n", "s.ini", &err),
                     FM_OK);
    ck_assert_int_eq(fm_config_check(&c, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "s.ini:4");
    ck_assert_str_eq(err.message, "[model] heads: 8 does not divide model.d_model (100)");
    ck_assert_int_eq(fm_config_apply_set(&c, "model.d_model=96", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&c, "model.time_dim=20", &err), FM_OK);
    ck_assert_int_eq(fm_config_check(&c, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "[model] heads: 8 does not divide model.time_dim (20)");
    ck_assert_int_eq(fm_config_apply_set(&c, "model.time_dim=32", &err), FM_OK);
    ck_assert_int_eq(fm_config_check(&c, &err), FM_OK);
    ck_assert_int_eq(fm_config_load_string(&c, "[train]\ntask_weights = 1, 2\n", "t.ini", &err), FM_OK);
    ck_assert_int_eq(fm_config_check(&c, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "t.ini:2");
    ck_assert_str_eq(err.message, "[train] task_weights: 2 weights for 1 tasks (data.tasks = mortality)");
    fm_config_free(&c);
}
END_TEST

/* The resolved file holds every key with its description and loads back to the same values. */
START_TEST(test_resolved_round_trip) {
    FmConfig c, d;
    FmError err;
    ck_assert_int_eq(fm_config_init(&c, NULL), FM_OK);
    ck_assert_int_eq(fm_config_load_string(&c,
                                           "[data]\ncohort = runs/p12 set-a\ntasks = phenotypes, mortality\n"
                                           "[train]\nlr = 3.3e-4\ntask_weights = 0.3, 1e-2\nseed = 7\n"
                                           "[model]\ngate = gaussian\nnoisy_gating = no\ndropout = 0.15\n",
                                           "in.ini", &err),
                     FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&c, "eval.missing_rate=0.3", &err), FM_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/resolved.ini", g_dir);
    ck_assert_int_eq(fm_config_write(&c, path, &err), FM_OK);
    ck_assert_int_eq(fm_config_init(&d, NULL), FM_OK);
    ck_assert_int_eq(fm_config_load(&d, path, &err), FM_OK);
    int n;
    const FmConfigKey *k = fm_config_schema(&n);
    for (int i = 0; i < n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.%s", k[i].section, k[i].key);
        ck_assert_msg(strcmp(fm_config_text(&c, name), fm_config_text(&d, name)) == 0, "%s: \"%s\" vs \"%s\"",
                      name, fm_config_text(&c, name), fm_config_text(&d, name));
        /* Every key was set by the file: it is complete. */
        ck_assert_msg(strncmp(fm_config_where(&d, name), path, strlen(path)) == 0, "%s not in the file",
                      name);
    }
    ck_assert(fm_config_float(&d, "train.lr") == 3.3e-4);
    ck_assert(fm_config_float(&d, "model.dropout") == 0.15);
    ck_assert(fm_config_float_item(&d, "train.task_weights", 1) == 0.01);
    ck_assert_str_eq(fm_config_string(&d, "data.cohort"), "runs/p12 set-a");
    /* Every key line follows its comment; comments are wrapped to 96 columns; no temporary
     * file is left behind. */
    char *text;
    ck_assert_int_eq(fm_config_to_ini(&c, &text, &err), FM_OK);
    int keys = 0;
    const char *prev = NULL;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_int_le(nl - line, 96);
        if (line[0] != '#' && line[0] != '[' && line[0] != '\n') {
            keys++;
            ck_assert_msg(prev && prev[0] == '#', "key line without a comment: %.40s", line);
        }
        prev = line;
        line = nl + 1;
    }
    ck_assert_int_eq(keys, n);
    ck_assert_ptr_nonnull(
        strstr(text, "\n[model]\n# Width d of every token (int: 8 to 4096; default: 128)\nd_model = 128\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "(enum: laplace, gaussian, softmax; default:\n# laplace)\ngate = gaussian\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ncohort = runs/p12 set-a\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nmodalities =\n"));
    fm_free(text);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", g_dir);
    ck_assert_int_eq(system(cmd), 0);
    fm_config_free(&c);
    fm_config_free(&d);
}
END_TEST

/* The README's key table is the one the schema renders (so documentation cannot drift). */
START_TEST(test_schema_markdown_in_readme) {
    char *md;
    ck_assert_int_eq(fm_config_schema_markdown(&md, NULL), FM_OK);
    int n, lines = 0;
    fm_config_schema(&n);
    for (const char *p = md; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, n + 2);
    ck_assert_ptr_nonnull(strstr(md, "| `model.gate` | enum | `laplace` | laplace, gaussian, softmax | "));
    ck_assert_ptr_nonnull(
        strstr(md, "| `model.d_model` | int | `128` | 8 to 4096 | Width d of every token |\n"));
    FILE *f = fopen("README.md", "rb");
    ck_assert_ptr_nonnull(f);
    static char readme[1 << 20];
    size_t len = fread(readme, 1, sizeof readme - 1, f);
    fclose(f);
    readme[len] = '\0';
    if (!strstr(readme, md)) {
        char path[1200];
        snprintf(path, sizeof path, "%s/../fusemoe-config-keys.md", g_dir);
        FILE *o = fopen(path, "w");
        if (o) {
            fputs(md, o);
            fclose(o);
        }
        ck_abort_msg("README.md lacks the current configuration key table; the table is in %s", path);
    }
    fm_free(md);
}
END_TEST

/* Each allocation of each constructor fails in turn: NOMEM, nothing leaked (ASan), the
 * configuration unchanged. */
START_TEST(test_config_alloc_failure) {
    for (int which = 0; which < 6; which++) {
        for (long k = 1;; k++) {
            FmConfig base, c;
            ck_assert_int_eq(fm_config_init(&base, NULL), FM_OK);
            FmError err;
            char *text = NULL;
            fm_alloc_fail_after(k);
            FmStatus st = FM_OK;
            switch (which) {
            case 0: st = fm_config_init(&c, &err); break;
            case 1: st = fm_config_copy(&c, &base, &err); break;
            case 2:
                st = fm_config_load_string(
                    &base, "[data]\ntasks = mortality, phenotypes\n[train]\nlr = 0.1\n", "a.ini", &err);
                break;
            case 3: st = fm_config_apply_set(&base, "data.tasks=los_binary,mortality", &err); break;
            case 4: st = fm_config_to_ini(&base, &text, &err); break;
            case 5: st = fm_config_schema_markdown(&text, &err); break;
            }
            long calls = fm_alloc_calls();
            fm_alloc_fail_reset();
            if (st == FM_OK) {
                ck_assert_int_gt(k, calls);
                if (which <= 1) fm_config_free(&c);
                fm_free(text);
                fm_config_free(&base);
                break;
            }
            ck_assert_msg(st == FM_ERR_NOMEM, "constructor %d, allocation %ld: status %d", which, k, st);
            ck_assert_ptr_null(text);
            if (which <= 1) ck_assert_ptr_null(c.values);
            /* The configuration being changed is still the default one. */
            ck_assert_uint_eq(fm_config_list_len(&base, "data.tasks"), 1);
            ck_assert(fm_config_float(&base, "train.lr") == 4e-4);
            fm_config_free(&base);
        }
    }
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_load_valid_file);
    tcase_add_test(tc, test_file_errors_located);
    tcase_add_test(tc, test_file_errors_io_and_long_lines);
    tcase_add_test(tc, test_set_overrides);
    tcase_add_test(tc, test_cross_key_rules);
    tcase_add_test(tc, test_resolved_round_trip);
    tcase_add_test(tc, test_schema_markdown_in_readme);
    tcase_add_test(tc, test_config_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(config_suite());
}
