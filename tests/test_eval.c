/* Evaluation and prediction (src/evaluate*.h, src/inspect.h): repeating a training run's test
 * results, scoring a cohort with the model's statistics, the predictions formats, missing
 * modalities, missing-modality injection, expert usage, model selection, parameter parts, and
 * allocation failures. */
#include <cJSON.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/cohort.h"
#include "preprocessing/var_map.h"
#include "src/alloc.h"
#include "src/evaluate.h"
#include "src/evaluate_missing.h"
#include "src/evaluate_report.h"
#include "src/evaluate_run.h"
#include "src/evaluate_usage.h"
#include "src/inspect.h"
#include "src/train_batch.h"
#include "src/train_model_file.h"
#include "src/train_spec.h"
#include "tests/support/study_support.h"
#include "tests/support/testutil.h"

/* One trained run shared by the tests (trained in main, before the suite). */
static char g_run[700], g_model[800];

static void train_shared_run(void) {
    char study[700];
    snprintf(study, sizeof study, "%s/study.ini", fm_study_dir());
    fm_study_write(study, fm_study_cohort("cohort.h5"), NULL);
    snprintf(g_run, sizeof g_run, "%s/run", fm_study_dir());
    snprintf(g_model, sizeof g_model, "%s/model.h5", g_run);
    FmError err;
    if (fm_study_train(study, NULL, 0, g_run, 0, NULL, NULL, &err) != FM_OK) {
        fprintf(stderr, "test_eval: training the shared run: %s: %s\n", err.where, err.message);
        exit(1);
    }
}

static char *tasks_json(const char *path) {
    char *text = fm_study_read(path, NULL);
    ck_assert_ptr_nonnull(text);
    cJSON *j = cJSON_Parse(text);
    fm_free(text);
    char *out = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "tasks"));
    cJSON_Delete(j);
    return out;
}

static FmStatus evaluate(const char *cohort, int part, double missing, uint64_t seed, int with_labels, const char *out,
                         FmError *err) {
    FmEvaluateRunOptions o = fm_evaluate_run_defaults();
    o.model_path = g_model;
    o.cohort_path = cohort;
    o.part = part;
    o.missing_rate = missing;
    o.seed = seed;
    o.bootstrap = 20; /* as the study */
    o.with_labels = with_labels;
    o.out_dir = out;
    FmEvaluateRunResult res;
    return fm_evaluate_run(&o, &res, err);
}

/* fusemoe eval of a run's model on its test part repeats the run's own test results. */
START_TEST(test_eval_repeats_training_run) {
    char dir[512], out[600], a[700], b[700];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/eval", dir);
    FmError err;
    ck_assert_msg(evaluate(fm_study_cohort("cohort.h5"), FM_PART_TEST, 0.0, 1, 1, out, &err) == FM_OK, "%s: %s",
                  err.where, err.message);
    snprintf(a, sizeof a, "%s/predictions.csv", out);
    snprintf(b, sizeof b, "%s/predictions.csv", g_run);
    ck_assert(fm_study_same_file(a, b));
    snprintf(a, sizeof a, "%s/metrics.json", out);
    snprintf(b, sizeof b, "%s/metrics.json", g_run);
    char *x = tasks_json(a), *y = tasks_json(b);
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
    fm_test_rmtree(dir);
}
END_TEST

/* A cohort is standardised with the model's statistics, not its own: the same stays in a
 * cohort whose splits (and so statistics) differ get the same predictions. */
START_TEST(test_eval_uses_model_statistics) {
    FmCohort c1, c2;
    FmError err;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c1, &err), FM_OK);
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort_seed2.h5"), &c2, &err), FM_OK);
    ck_assert_msg(c1.split[0].norm.mod[0].mean[0] != c2.split[0].norm.mod[0].mean[0],
                  "the two cohorts' split statistics should differ");
    fm_cohort_free(&c1);
    fm_cohort_free(&c2);
    char dir[512], o1[600], o2[600], a[700], b[700];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(o1, sizeof o1, "%s/one", dir);
    snprintf(o2, sizeof o2, "%s/two", dir);
    ck_assert_int_eq(evaluate(fm_study_cohort("cohort.h5"), FM_EVAL_PART_ALL, 0.0, 1, 1, o1, &err), FM_OK);
    ck_assert_int_eq(evaluate(fm_study_cohort("cohort_seed2.h5"), FM_EVAL_PART_ALL, 0.0, 1, 1, o2, &err), FM_OK);
    snprintf(a, sizeof a, "%s/predictions.csv", o1);
    snprintf(b, sizeof b, "%s/predictions.csv", o2);
    ck_assert(fm_study_same_file(a, b));
    /* The part "all" covers every stay */
    snprintf(a, sizeof a, "%s/metrics.json", o1);
    char *text = fm_study_read(a, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"part\":\t\"all\""));
    ck_assert_ptr_nonnull(strstr(text, "\"n_stays\":\t160"));
    fm_free(text);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_predict_format) {
    char dir[512], out[600], p[700];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/pred", dir);
    FmError err;
    ck_assert_int_eq(evaluate(fm_study_cohort("cohort.h5"), FM_EVAL_PART_ALL, 0.0, 1, 0, out, &err), FM_OK);
    snprintf(p, sizeof p, "%s/predictions.csv", out);
    char *text = fm_study_read(p, NULL);
    ck_assert_msg(strncmp(text, "stay_id,task,y_score\n", 21) == 0, "%.30s", text);
    /* every stay and label column: mortality, 5 phenotypes, los_log_days */
    ck_assert_int_eq(fm_study_lines(p), 160 * 7 + 1);
    long long id;
    char task[64];
    double s;
    ck_assert_int_eq(sscanf(text + 21, "%lld,%63[^,],%lf", &id, task, &s), 3);
    ck_assert_str_eq(task, "mortality");
    fm_free(text);
    snprintf(p, sizeof p, "%s/metrics.json", out);
    ck_assert_int_eq(fm_study_lines(p), -1); /* predict writes no metrics */
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_eval_cohort_lacks_modality) {
    char dir[512], out[600];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/eval", dir);
    FmError err;
    FmStatus st = evaluate(fm_study_cohort("cohort_nonotes.h5"), FM_PART_TEST, 0.0, 1, 1, out, &err);
    ck_assert_int_eq(st, FM_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(err.where, "cohort_nonotes.h5"));
    ck_assert_ptr_nonnull(strstr(err.message, "no modality \"notes\""));
    /* Label columns are found by name: the phe_ columns of a cohort that does not group them
     * into a phenotype task still serve. */
    ck_assert_int_eq(evaluate(fm_study_cohort("cohort_nophe.h5"), FM_PART_TEST, 0.0, 1, 1, out, &err), FM_OK);
    /* A label column the cohort lacks: an error for eval, nothing for predict; a missing
     * los_gt_<T>d is derived from los_log_days. */
    FmModel *model;
    FmNorm norm;
    FmTrainInfo info;
    ck_assert_int_eq(fm_train_model_load(g_model, &model, &norm, &info, &err), FM_OK);
    FmCohort c;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    const char *names[7] = {"mortality", "phe_typo", "phe_aki", "phe_pneumonia", "phe_sepsis", "phe_delirium",
                            "los_log_days"};
    FmTrainSpec spec;
    ck_assert_int_eq(fm_train_spec_from_model(&model->cfg, names, &c, "c.h5", 1, &spec, &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.where, "c.h5");
    ck_assert_ptr_nonnull(strstr(err.message, "no binary label column \"phe_typo\""));
    ck_assert_int_eq(fm_train_spec_from_model(&model->cfg, names, &c, "c.h5", 0, &spec, &err), FM_OK);
    ck_assert_int_eq(spec.label[1].column, -1);
    names[1] = "los_gt_2.5d";
    ck_assert_int_eq(fm_train_spec_from_model(&model->cfg, names, &c, "c.h5", 1, &spec, &err), FM_OK);
    ck_assert_int_eq(spec.label[1].derived, 1);
    ck_assert_float_eq(spec.label[1].log_cut, (float)log(2.5 + c.settings.los_log_offset_days));
    /* channels are matched by name and order */
    ck_assert_str_eq(norm.mod[0].name, "vitals");
    char *saved = norm.mod[0].channel[1];
    norm.mod[0].channel[1] = "Lactate";
    ck_assert_int_eq(fm_train_model_use_norm(&c, "c.h5", &model->cfg, &norm, &err), FM_ERR_MISMATCH);
    norm.mod[0].channel[1] = saved;
    ck_assert_str_eq(err.where, "c.h5");
    ck_assert_msg(strstr(err.message, "modality \"vitals\": channel 1 is \"") &&
                      strstr(err.message, "\" here but \"Lactate\" in the model"),
                  "%s", err.message);
    ck_assert_int_eq(fm_train_model_use_norm(&c, "c.h5", &model->cfg, &norm, &err), FM_OK);
    fm_cohort_free(&c);
    fm_model_free(model);
    fm_norm_free(&norm);
    fm_train_info_free(&info);
    fm_test_rmtree(dir);
}
END_TEST

/* The injection is seeded, changes presence flags only, keeps a modality per stay, and decides
 * per stay id whatever the batch order. */
START_TEST(test_missing_injection) {
    FmCohort c;
    FmError err;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    FmConfig cfg;
    ck_assert_int_eq(fm_config_init(&cfg, &err), FM_OK);
    FmTrainSpec spec;
    ck_assert_int_eq(fm_train_spec_from_config(&cfg, &c, "c.h5", &spec, &err), FM_OK);
    enum { B = 40 };
    int64_t idx[B], rev[B];
    for (int i = 0; i < B; i++) idx[i] = i, rev[i] = B - 1 - i;
    FmTrainBatch tb;
    ck_assert_int_eq(fm_train_batch_alloc(&tb, &c, &spec, B, &err), FM_OK);
    const int M = spec.model.M;
    ck_assert_int_eq(M, 5);
    /* the batch before injection */
    ck_assert_int_eq(fm_train_batch_make(&tb, &c, &spec, 0, idx, B, &err), FM_OK);
    uint8_t present0[5][B];
    size_t bytes[5];
    float *values0[5];
    int have = 0;
    for (int m = 0; m < M; m++) {
        FmBatchModality *bm = &tb.view.mod[m];
        memcpy(present0[m], bm->present, B);
        bytes[m] = (size_t)B * bm->max_L * bm->C * sizeof(float);
        values0[m] = malloc(bytes[m]);
        memcpy(values0[m], bm->value, bytes[m]);
        for (int b = 0; b < B; b++) have += bm->present[b];
    }
    ck_assert_int_eq(fm_evaluate_drop_modalities(&tb.view, 0.0, 7), 0);
    int64_t dropped = fm_evaluate_drop_modalities(&tb.view, 0.5, 7);
    /* about half of the presences go (binomial: 0.5 of ~170 has sd ~7; the keep-one rule keeps
     * a few more) */
    ck_assert_msg(dropped > have / 4 && dropped < have * 3 / 4, "%lld of %d dropped", (long long)dropped, have);
    uint8_t present1[5][B];
    for (int b = 0; b < B; b++) {
        int left = 0, had = 0;
        for (int m = 0; m < M; m++) {
            uint8_t p = tb.view.mod[m].present[b];
            ck_assert_msg(p <= present0[m][b], "stay %d gained modality %d", b, m);
            left += p;
            had += present0[m][b];
            present1[m][b] = p;
        }
        if (had) ck_assert_msg(left >= 1, "stay %d lost every modality", b);
    }
    for (int m = 0; m < M; m++) ck_assert(memcmp(values0[m], tb.view.mod[m].value, bytes[m]) == 0);
    /* the same seed in reversed order: the same decisions per stay */
    ck_assert_int_eq(fm_train_batch_make(&tb, &c, &spec, 0, rev, B, &err), FM_OK);
    ck_assert_int_eq(fm_evaluate_drop_modalities(&tb.view, 0.5, 7), dropped);
    for (int b = 0; b < B; b++)
        for (int m = 0; m < M; m++) ck_assert_int_eq(tb.view.mod[m].present[b], present1[m][B - 1 - b]);
    /* another seed drops others */
    ck_assert_int_eq(fm_train_batch_make(&tb, &c, &spec, 0, idx, B, &err), FM_OK);
    fm_evaluate_drop_modalities(&tb.view, 0.5, 8);
    int differ = 0;
    for (int b = 0; b < B; b++)
        for (int m = 0; m < M; m++) differ += tb.view.mod[m].present[b] != present1[m][b];
    ck_assert_int_gt(differ, 0);
    /* p = 1 keeps exactly one */
    ck_assert_int_eq(fm_train_batch_make(&tb, &c, &spec, 0, idx, B, &err), FM_OK);
    fm_evaluate_drop_modalities(&tb.view, 1.0, 7);
    for (int b = 0; b < B; b++) {
        int left = 0;
        for (int m = 0; m < M; m++) left += tb.view.mod[m].present[b];
        ck_assert_int_eq(left, 1);
    }
    for (int m = 0; m < M; m++) free(values0[m]);
    fm_train_batch_free(&tb);
    fm_config_free(&cfg);
    fm_cohort_free(&c);
}
END_TEST

START_TEST(test_eval_missing_rate_seeded) {
    char dir[512], a[600], b[600], c[600], pa[700], pb[700];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    FmError err;
    ck_assert_int_eq(evaluate(fm_study_cohort("cohort.h5"), FM_PART_TEST, 0.5, 3, 1, a, &err), FM_OK);
    ck_assert_int_eq(evaluate(fm_study_cohort("cohort.h5"), FM_PART_TEST, 0.5, 3, 1, b, &err), FM_OK);
    ck_assert_int_eq(evaluate(fm_study_cohort("cohort.h5"), FM_PART_TEST, 0.5, 4, 1, c, &err), FM_OK);
    snprintf(pa, sizeof pa, "%s/metrics.json", a);
    snprintf(pb, sizeof pb, "%s/metrics.json", b);
    ck_assert(fm_study_same_file(pa, pb));
    snprintf(pa, sizeof pa, "%s/predictions.csv", a);
    snprintf(pb, sizeof pb, "%s/predictions.csv", c);
    ck_assert(!fm_study_same_file(pa, pb));
    snprintf(pb, sizeof pb, "%s/predictions.csv", g_run);
    ck_assert(!fm_study_same_file(pa, pb));
    fm_test_rmtree(dir);
}
END_TEST

/* Every token is routed to K experts: a modality's counts sum to K x its tokens. */
START_TEST(test_expert_usage) {
    FmEvaluateRunOptions o = fm_evaluate_run_defaults();
    o.model_path = g_model;
    o.cohort_path = fm_study_cohort("cohort.h5");
    o.part = FM_PART_VAL;
    o.with_labels = 0;
    FmExpertUsage u;
    o.usage = &u;
    FmEvaluateRunResult res;
    FmError err;
    ck_assert_int_eq(fm_evaluate_run(&o, &res, &err), FM_OK);
    FmModel *model;
    FmNorm norm;
    FmTrainInfo info;
    ck_assert_int_eq(fm_train_model_load(g_model, &model, &norm, &info, &err), FM_OK);
    int first[8], count[8];
    fm_model_config_tokens(&model->cfg, first, count);
    for (int l = 0; l < u.layers; l++)
        for (int m = 0; m < u.M; m++) {
            int64_t sum = 0;
            for (int e = 0; e < u.E; e++) sum += u.count[((size_t)l * u.M + m) * u.E + e];
            ck_assert_int_eq(sum, (int64_t)model->cfg.K * count[m] * res.n_stays);
            double h = fm_evaluate_usage_entropy(&u, l, m);
            ck_assert(h >= 0.0 && h <= 1.0 + 1e-12);
            double share = 0;
            for (int e = 0; e < u.E; e++) share += fm_evaluate_usage_share(&u, l, m, e);
            ck_assert(fabs(share - 1.0) < 1e-12);
        }
    /* hand case: two experts used equally, two never */
    memset(u.count, 0, (size_t)u.layers * u.M * u.E * sizeof *u.count);
    u.count[0] = 5;
    u.count[1] = 5;
    ck_assert(fabs(fm_evaluate_usage_entropy(&u, 0, 0) - log(2.0) / log(4.0)) < 1e-12);
    ck_assert_int_eq(fm_evaluate_usage_dead(&u, 0, 0), 2);
    ck_assert(isnan(fm_evaluate_usage_entropy(&u, 0, 1)));
    fm_evaluate_usage_free(&u);
    fm_model_free(model);
    fm_norm_free(&norm);
    fm_train_info_free(&info);
}
END_TEST

START_TEST(test_select_value) {
    FmModelConfig mc = fm_model_config_default();
    FmError err;
    ck_assert_int_eq(fm_model_config_add_task(&mc, "mortality", FM_TASK_BINARY, 0, 1, NULL, &err), FM_OK);
    ck_assert_int_eq(fm_model_config_add_task(&mc, "los_regression", FM_TASK_REGRESSION, 1, 1, NULL, &err), FM_OK);
    ck_assert_int_eq(fm_model_config_add_task(&mc, "phenotypes", FM_TASK_MULTILABEL, 2, 3, NULL, &err), FM_OK);
    FmTaskSummary s[3] = {{.auroc = 0.8, .auprc = 0.4, .f1 = 0.3},
                          {.auroc = NAN, .auprc = NAN, .f1 = NAN, .mae = 1.0},
                          {.auroc = 0.6, .auprc = 0.5, .f1 = NAN}};
    int higher;
    ck_assert(fabs(fm_evaluate_select_value(&mc, s, FM_SELECT_AUROC, 2.0, &higher) - 0.7) < 1e-12);
    ck_assert_int_eq(higher, 1);
    ck_assert(fabs(fm_evaluate_select_value(&mc, s, FM_SELECT_AUPRC, 2.0, &higher) - 0.45) < 1e-12);
    ck_assert(fabs(fm_evaluate_select_value(&mc, s, FM_SELECT_F1, 2.0, &higher) - 0.3) < 1e-12);
    ck_assert(fm_evaluate_select_value(&mc, s, FM_SELECT_LOSS, 2.0, &higher) == 2.0);
    ck_assert_int_eq(higher, 0);
    mc.n_tasks = 0;
    ck_assert_int_eq(fm_model_config_add_task(&mc, "los_regression", FM_TASK_REGRESSION, 0, 1, NULL, &err), FM_OK);
    ck_assert(fm_evaluate_select_value(&mc, s + 1, FM_SELECT_AUPRC, 1.5, &higher) == 1.5);
    ck_assert_int_eq(higher, 0);
}
END_TEST

START_TEST(test_inspect_parts) {
    FmModel *model;
    FmNorm norm;
    FmTrainInfo info;
    FmError err;
    ck_assert_int_eq(fm_train_model_load(g_model, &model, &norm, &info, &err), FM_OK);
    FmParamPart *parts;
    int n;
    ck_assert_int_eq(fm_inspect_parts(model, &parts, &n, &err), FM_OK);
    size_t total = 0;
    int seen = 0;
    for (int i = 0; i < n; i++) {
        total += parts[i].count;
        seen += !strcmp(parts[i].name, "encoder.vitals") + !strcmp(parts[i].name, "fusion.0.experts") +
                !strcmp(parts[i].name, "fusion.0.router") + !strcmp(parts[i].name, "fusion.0.attention") +
                !strcmp(parts[i].name, "head") + !strcmp(parts[i].name, "time2vec");
    }
    ck_assert_int_eq(seen, 6);
    ck_assert_uint_eq(total, fm_params_count(&model->params));
    /* experts: E x (hidden x D + hidden + D x hidden + D) = 4 x (64 + 8 + 64 + 8) */
    for (int i = 0; i < n; i++)
        if (!strcmp(parts[i].name, "fusion.0.experts")) ck_assert_uint_eq(parts[i].count, 4 * (64 + 8 + 64 + 8));
    char buf[80];
    fm_inspect_part_of("fusion.2.moe.router.1.noise_weight", buf, sizeof buf);
    ck_assert_str_eq(buf, "fusion.2.router");
    fm_inspect_part_of("fusion.norm.weight", buf, sizeof buf);
    ck_assert_str_eq(buf, "fusion.norm");
    fm_free(parts);
    fm_model_free(model);
    fm_norm_free(&norm);
    fm_train_info_free(&info);
}
END_TEST

/* Every allocation of the predictions, the usage counts and the metrics report, failed in turn. */
START_TEST(test_eval_alloc_failure) {
    FmModel *model;
    FmNorm norm;
    FmTrainInfo info;
    FmError err;
    ck_assert_int_eq(fm_train_model_load(g_model, &model, &norm, &info, &err), FM_OK);
    FmPredictions p;
    int ok = 0;
    for (long n = 1; !ok; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = fm_evaluate_predictions_alloc(&p, 50, model->cfg.n_labels, &err);
        fm_alloc_fail_reset();
        if (st == FM_OK) ok = 1;
        else ck_assert_ptr_null(p.score);
    }
    /* labels and scores of a hand-made set: every column known, both classes present */
    FmRng rng;
    fm_rng_seed(&rng, 5);
    for (int64_t i = 0; i < p.n; i++) {
        p.stay_id[i] = i;
        for (int j = 0; j < p.n_labels; j++) {
            size_t at = (size_t)i * p.n_labels + j;
            p.score[at] = (float)fm_rng_uniform(&rng);
            p.label[at] = (float)(i % 3 == 0);
            p.mask[at] = 1;
        }
    }
    FmExpertUsage u;
    ok = 0;
    for (long n = 1; !ok; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = fm_evaluate_usage_create(&u, model, &err);
        fm_alloc_fail_reset();
        if (st == FM_OK) ok = 1;
        else ck_assert_ptr_null(u.count);
    }
    fm_evaluate_usage_free(&u);
    FmReportOptions ro = {.bootstrap = 5, .seed = 1, .los_log_offset_days = 1.0};
    ok = 0;
    for (long n = 1; !ok; n++) {
        cJSON *tasks = cJSON_CreateObject();
        fm_alloc_fail_after(n);
        FmStatus st = fm_evaluate_report(tasks, &model->cfg, info.label_ptr, &p, info.threshold, &ro, &err);
        fm_alloc_fail_reset();
        if (st == FM_OK) {
            ok = 1;
            ck_assert_int_eq(cJSON_GetArraySize(tasks), model->cfg.n_tasks);
        } else {
            ck_assert_int_eq(st, FM_ERR_NOMEM);
        }
        cJSON_Delete(tasks);
        ck_assert_int_lt(n, 20000);
    }
    fm_evaluate_predictions_free(&p);
    fm_model_free(model);
    fm_norm_free(&norm);
    fm_train_info_free(&info);
}
END_TEST

/* The shipped PhysioNet 2012 model (data/p12_mortality_model.h5, trained by `make p12`) loads
 * with this code, predicts mortality, and was trained on the shipped mapping: its channels, per
 * modality and in order, are the mapping's variables (log1p(<name>) where transformed). */
START_TEST(test_shipped_p12_model) {
    FmModel *model;
    FmNorm norm;
    FmTrainInfo info;
    FmError err;
    ck_assert_msg(fm_train_model_load("data/p12_mortality_model.h5", &model, &norm, &info, &err) == FM_OK, "%s: %s",
                  err.where, err.message);
    ck_assert_int_eq(model->cfg.n_tasks, 1);
    ck_assert_str_eq(model->cfg.task[0].name, "mortality");
    FmVarMap map;
    ck_assert_int_eq(fm_var_map_read("data/p12_modalities.csv", &map, &err), FM_OK);
    ck_assert_int_eq(norm.M, map.n_mods);
    for (int m = 0; m < norm.M; m++) {
        const int mm = fm_var_map_modality(&map, norm.mod[m].name);
        ck_assert_msg(mm >= 0, "modality %s is not in the mapping", norm.mod[m].name);
        ck_assert_int_eq(norm.mod[m].C, map.mods[mm].C);
        for (int c = 0; c < norm.mod[m].C; c++) {
            const FmVarEntry *e = &map.entries[map.mods[mm].entry[c]];
            char want[128];
            snprintf(want, sizeof want, e->log1p ? "log1p(%s)" : "%s", e->name);
            ck_assert_str_eq(norm.mod[m].channel[c], want);
        }
    }
    fm_var_map_free(&map);
    fm_model_free(model);
    fm_norm_free(&norm);
    fm_train_info_free(&info);
}
END_TEST

static Suite *eval_suite(void) {
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_eval_repeats_training_run);
    tcase_add_test(tc, test_eval_uses_model_statistics);
    tcase_add_test(tc, test_predict_format);
    tcase_add_test(tc, test_eval_cohort_lacks_modality);
    tcase_add_test(tc, test_missing_injection);
    tcase_add_test(tc, test_eval_missing_rate_seeded);
    tcase_add_test(tc, test_expert_usage);
    tcase_add_test(tc, test_select_value);
    tcase_add_test(tc, test_inspect_parts);
    tcase_add_test(tc, test_shipped_p12_model);
    tcase_add_test(tc, test_eval_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    fm_study_setup();
    train_shared_run();
    int rc = fm_test_run_suite(eval_suite());
    fm_study_teardown();
    return rc;
}
