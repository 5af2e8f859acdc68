#include "src/baseline.h"

#include <cJSON.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "preprocessing/summary_features.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/evaluate.h"
#include "src/evaluate_csv.h"
#include "src/evaluate_report.h"
#include "src/glm.h"
#include "src/json_out.h"
#include "src/metrics.h"
#include "src/train_folder.h"
#include "src/train_study.h"

enum { KIND_FUSEMOE = 0, KIND_LOGREG = 1, KIND_SAPS = 2 }; /* model.kind's allowed values, in order */

typedef struct {
    const FmTrainOptions *opt;
    const FmConfig *cfg;
    int kind;
    FmStudyData d;
    int64_t *rows;  /* (n_rows) train, then val, then test stays */
    int64_t n_rows;
    FmSummaryFeatures feat; /* the features of rows (F columns) */
    FmPredictions val_pred, test_pred;
    double *threshold;      /* (n_labels) */
    cJSON *coefs;           /* baseline.json's label objects */
} Baseline;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void baseline_free(Baseline *b) {
    fm_study_data_close(&b->d);
    fm_free(b->rows);
    fm_summary_features_free(&b->feat);
    fm_evaluate_predictions_free(&b->val_pred);
    fm_evaluate_predictions_free(&b->test_pred);
    fm_free(b->threshold);
    cJSON_Delete(b->coefs);
}

static const FmTaskConfig *task_of_column(const FmModelConfig *mc, int j) {
    for (int t = 0; t < mc->n_tasks; t++)
        if (j >= mc->task[t].label0 && j < mc->task[t].label0 + mc->task[t].n) return &mc->task[t];
    return NULL;
}

/* The features of every stay of the run: summaries of the spec's modalities (logreg) or the
 * SAPS-I score (saps_i), rows in train, val, test order; then the training-mean imputation. */
static FmStatus build_features(Baseline *b, FmError *err) {
    const FmStudyData *d = &b->d;
    b->n_rows = d->n_train + d->n_val + d->n_test;
    b->rows = fm_malloc_array((size_t)b->n_rows + 1, sizeof *b->rows);
    if (!b->rows) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    memcpy(b->rows, d->train, (size_t)d->n_train * sizeof *b->rows);
    memcpy(b->rows + d->n_train, d->val, (size_t)d->n_val * sizeof *b->rows);
    memcpy(b->rows + d->n_train + d->n_val, d->test, (size_t)d->n_test * sizeof *b->rows);
    FmStatus st;
    if (b->kind == KIND_LOGREG) {
        st = fm_summary_features(&d->cohort, d->spec.cohort_mod, d->spec.model.M, b->rows, b->n_rows, &b->feat, err);
        if (st != FM_OK) return st;
    } else {
        if (!d->cohort.saps_i)
            return FM_FAIL(err, FM_ERR_CONFIG, fm_config_where(b->cfg, "model.kind"),
                           "[model] kind: saps_i needs admission scores, and the cohort %s has none (prepare it "
                           "from PhysioNet 2012 outcome files)", d->cohort_path);
        b->feat.F = 1;
        b->feat.n = b->n_rows;
        b->feat.name = fm_calloc(2, sizeof *b->feat.name);
        b->feat.X = fm_malloc_array((size_t)b->n_rows + 1, sizeof *b->feat.X);
        if (!b->feat.name || !b->feat.X || !(b->feat.name[0] = fm_strdup("saps_i")))
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
        for (int64_t i = 0; i < b->n_rows; i++) b->feat.X[i] = d->cohort.saps_i[b->rows[i]];
    }
    double *means = fm_malloc_array((size_t)b->feat.F + 1, sizeof *means);
    int64_t *train_rows = fm_malloc_array((size_t)d->n_train + 1, sizeof *train_rows);
    if (!means || !train_rows) {
        fm_free(means);
        fm_free(train_rows);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    for (int64_t i = 0; i < d->n_train; i++) train_rows[i] = i;
    fm_summary_impute_means(&b->feat, train_rows, d->n_train, means);
    fm_free(means);
    fm_free(train_rows);
    return FM_OK;
}

/* How good predictions `score` of known targets `y` (n) are for choosing the penalty: higher
 * is better. Binary: train.select_metric (AUROC, AUPRC, F1 at 0.5) or minus the mean
 * cross-entropy; regression: minus the mean squared error. */
static double selection_value(const Baseline *b, int regression, const float *score, const float *y, size_t n) {
    if (n == 0) return NAN;
    double v = NAN, acc = 0.0;
    if (regression) {
        for (size_t i = 0; i < n; i++) acc += ((double)score[i] - y[i]) * ((double)score[i] - y[i]);
        return -acc / (double)n;
    }
    switch (fm_config_enum(b->cfg, "train.select_metric")) {
    case 0: fm_metrics_auroc(score, y, n, &v, NULL); return v;
    case 1: fm_metrics_auprc(score, y, n, &v, NULL); return v;
    case 2: fm_metrics_f1(score, y, n, 0.5, &v, NULL); return v;
    default:
        for (size_t i = 0; i < n; i++) {
            double p = fmin(fmax(score[i], 1e-7), 1.0 - 1e-7);
            acc += y[i] > 0.5f ? -log(p) : -log(1.0 - p);
        }
        return -acc / (double)n;
    }
}

/* Rows [first, first + n) of the run with a known label j: their features and targets. */
static int64_t gather(const Baseline *b, int j, int64_t first, int64_t n, float *X, float *y, int64_t *which) {
    int64_t k = 0;
    const int F = b->feat.F;
    for (int64_t i = first; i < first + n; i++) {
        float v;
        if (!fm_train_spec_label(&b->d.spec, &b->d.cohort, b->rows[i], j, &v)) continue;
        memcpy(X + (size_t)k * F, b->feat.X + (size_t)i * F, (size_t)F * sizeof *X);
        y[k] = v;
        if (which) which[k] = i;
        k++;
    }
    return k;
}

static FmStatus add_coefficients(Baseline *b, int j, const FmGlm *m, double l2, double constant, FmError *err) {
    cJSON *lab = cJSON_CreateObject();
    if (!lab || !cJSON_AddItemToObject(b->coefs, b->d.spec.label[j].name, lab)) {
        cJSON_Delete(lab);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    FmStatus st = fm_json_add_string(lab, "model", !m ? "constant (one class in training)"
                                                     : m->family == FM_GLM_LOGISTIC ? "logistic" : "ridge", err);
    if (!m) return st == FM_OK ? fm_json_add_number(lab, "constant", constant, err) : st;
    if (st == FM_OK) st = fm_json_add_number(lab, "l2", l2, err);
    if (st == FM_OK) st = fm_json_add_number(lab, "intercept", m->b, err);
    cJSON *features = cJSON_AddArrayToObject(lab, "features");
    if (!features) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int f = 0; f < m->F && st == FM_OK; f++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(features, o)) {
            cJSON_Delete(o);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
        }
        if ((st = fm_json_add_string(o, "name", b->feat.name[f], err)) == FM_OK &&
            (st = fm_json_add_number(o, "mean", m->mean[f], err)) == FM_OK &&
            (st = fm_json_add_number(o, "std", m->std[f], err)) == FM_OK)
            st = fm_json_add_number(o, "coefficient", m->w[f], err);
    }
    return st;
}

/* Fits label column j on the training rows, choosing the penalty on validation, and writes its
 * validation and test predictions. */
static FmStatus fit_column(Baseline *b, int j, FmError *err) {
    const FmStudyData *d = &b->d;
    const FmTaskConfig *task = task_of_column(&d->spec.model, j);
    const int regression = task->kind == FM_TASK_REGRESSION;
    const int F = b->feat.F;
    const int64_t n_max = d->n_train > d->n_val ? d->n_train : d->n_val;
    float *X = fm_malloc_array((size_t)(n_max + 1) * (size_t)F, sizeof *X);
    float *y = fm_malloc_array((size_t)n_max + 1, sizeof *y), *score = fm_malloc_array((size_t)n_max + 1, sizeof *score);
    float *vX = fm_malloc_array((size_t)(d->n_val + 1) * (size_t)F, sizeof *vX);
    float *vy = fm_malloc_array((size_t)d->n_val + 1, sizeof *vy);
    FmGlm best = {0}, m = {0};
    FmStatus st = FM_OK;
    double best_value = -INFINITY, best_l2 = 0.0, constant = NAN;
    if (!X || !y || !score || !vX || !vy) {
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    int64_t n_train = gather(b, j, 0, d->n_train, X, y, NULL);
    int64_t n_val = gather(b, j, d->n_train, d->n_val, vX, vy, NULL);
    int64_t positives = 0;
    for (int64_t i = 0; i < n_train; i++) positives += y[i] > 0.5f;
    int one_class = !regression && (positives == 0 || positives == n_train);
    if (n_train == 0 || one_class) {
        double sum = 0.0;
        for (int64_t i = 0; i < n_train; i++) sum += y[i];
        constant = n_train ? sum / (double)n_train : NAN;
    } else {
        size_t n_l2 = b->kind == KIND_LOGREG ? fm_config_list_len(b->cfg, "model.baseline_l2") : 1;
        for (size_t k = 0; k < n_l2; k++) {
            double l2 = b->kind == KIND_LOGREG ? fm_config_float_item(b->cfg, "model.baseline_l2", k) : 0.0;
            st = fm_glm_fit(&m, regression ? FM_GLM_GAUSSIAN : FM_GLM_LOGISTIC, X, y, NULL, n_train, F, l2, err);
            if (st != FM_OK) {
                fm_error_prefix(err, "label %s", d->spec.label[j].name);
                goto done;
            }
            fm_glm_predict(&m, vX, n_val, score);
            double v = selection_value(b, regression, score, vy, (size_t)n_val);
            if (k == 0 || v > best_value) { /* the first penalty stands when none is defined */
                fm_glm_free(&best);
                best = m;
                memset(&m, 0, sizeof m);
                best_value = v;
                best_l2 = l2;
            } else {
                fm_glm_free(&m);
            }
        }
    }
    /* Predictions of the validation and test stays (known label or not). */
    const int fitted = best.mean != NULL;
    FmPredictions *parts[2] = {&b->val_pred, &b->test_pred};
    const int64_t first[2] = {d->n_train, d->n_train + d->n_val};
    for (int p = 0; p < 2; p++) {
        FmPredictions *pred = parts[p];
        for (int64_t i = 0; i < pred->n; i++) {
            float *s = &pred->score[(size_t)i * pred->n_labels + j];
            if (fitted)
                fm_glm_predict(&best, b->feat.X + (size_t)(first[p] + i) * F, 1, s);
            else
                *s = (float)constant;
        }
    }
    st = add_coefficients(b, j, fitted ? &best : NULL, best_l2, constant, err);
done:
    fm_glm_free(&best);
    fm_glm_free(&m);
    fm_free(X);
    fm_free(y);
    fm_free(score);
    fm_free(vX);
    fm_free(vy);
    return st;
}

/* Stay ids and known labels of the validation and test predictions. */
static FmStatus fill_labels(Baseline *b, FmError *err) {
    const FmStudyData *d = &b->d;
    const int L = d->spec.n_labels;
    FmStatus st = fm_evaluate_predictions_alloc(&b->val_pred, d->n_val, L, err);
    if (st == FM_OK) st = fm_evaluate_predictions_alloc(&b->test_pred, d->n_test, L, err);
    if (st != FM_OK) return st;
    FmPredictions *parts[2] = {&b->val_pred, &b->test_pred};
    const int64_t *stays[2] = {d->val, d->test};
    for (int p = 0; p < 2; p++)
        for (int64_t i = 0; i < parts[p]->n; i++) {
            parts[p]->stay_id[i] = d->cohort.stay_id[stays[p][i]];
            for (int j = 0; j < L; j++) {
                size_t k = (size_t)i * L + (size_t)j;
                float v;
                parts[p]->mask[k] = (uint8_t)fm_train_spec_label(&d->spec, &d->cohort, stays[p][i], j, &v);
                parts[p]->label[k] = parts[p]->mask[k] ? v : NAN;
            }
        }
    return FM_OK;
}

/* The validation selection value, as the model's runs report it (src/evaluate_report.h). */
static FmStatus validation_value(const Baseline *b, double *value, FmError *err) {
    FmTaskSummary summary[FM_MAX_TASKS];
    FmStatus st = fm_evaluate_summarise(&b->d.spec.model, &b->val_pred, summary, err);
    if (st != FM_OK) return st;
    int higher;
    /* No validation loss is computed for baselines: a loss-selected study reports NaN. */
    *value = fm_evaluate_select_value(&b->d.spec.model, summary,
                                      (FmSelectMetric)fm_config_enum(b->cfg, "train.select_metric"), NAN, &higher);
    return FM_OK;
}

static FmStatus write_outputs(Baseline *b, double seconds, FmError *err) {
    const FmConfig *cfg = b->cfg;
    const FmStudyData *d = &b->d;
    const char *dir = b->opt->out_dir;
    char path[FM_PATH_MAX];
    const char *names[FM_TRAIN_MAX_LABELS];
    for (int j = 0; j < d->spec.n_labels; j++) names[j] = d->spec.label[j].name;
    FmStatus st = FM_OK;
    cJSON *root = cJSON_CreateObject(), *timing = cJSON_CreateObject(), *coef_root = cJSON_CreateObject();
    cJSON *run = root ? cJSON_AddObjectToObject(root, "run") : NULL;
    cJSON *tasks = root ? cJSON_AddObjectToObject(root, "tasks") : NULL;
    if (!root || !timing || !coef_root || !run || !tasks) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    const uint64_t seed = (uint64_t)fm_config_int(cfg, "train.seed");
    /* train.report_part = val: tuning runs report the validation part and never score the test */
    const int on_val = strcmp(fm_config_string(cfg, "train.report_part"), "val") == 0;
    const FmPredictions *reported = on_val ? &b->val_pred : &b->test_pred;
    double select_value = NAN;
    if (st == FM_OK) st = validation_value(b, &select_value, err);
    if (st == FM_OK && !(st = fm_json_add_string(run, "cohort", d->cohort_path, err)) &&
        !(st = fm_json_add_number(run, "split", d->split, err)) && !(st = fm_json_add_string(run, "part", on_val ? "val" : "test", err)) &&
        !(st = fm_json_add_number(run, "n_stays", (double)(on_val ? d->n_val : d->n_test), err)) &&
        !(st = fm_json_add_number(run, "n_train_stays", (double)d->n_train, err)) &&
        !(st = fm_json_add_number(run, "missing_rate", 0.0, err)) &&
        !(st = fm_json_add_number(run, "seed", (double)seed, err)) &&
        !(st = fm_json_add_string(run, "model", fm_config_string(cfg, "model.kind"), err)) &&
        !(st = fm_json_add_string(run, "select_metric", fm_config_string(cfg, "train.select_metric"), err)) &&
        !(st = fm_json_add_number(run, "select_value", select_value, err))) {
        FmReportOptions ro = {.bootstrap = (int)fm_config_int(cfg, "eval.bootstrap"),
                              .seed = seed,
                              .los_log_offset_days = d->cohort.settings.los_log_offset_days};
        st = fm_evaluate_report(tasks, &d->spec.model, names, reported, b->threshold, &ro, err);
    }
    if (st == FM_OK) st = fm_json_add_config(root, "config", cfg, err);
    if (st == FM_OK && snprintf(path, sizeof path, "%s/%s", dir, FM_TRAIN_PREDICTIONS_FILE) < (int)sizeof path)
        st = fm_evaluate_write_predictions(path, reported, names, 1, err);
    if (st == FM_OK && !cJSON_AddItemToObject(coef_root, "labels", b->coefs))
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    else if (st == FM_OK)
        b->coefs = NULL; /* owned by coef_root now */
    if (st == FM_OK && !(st = fm_json_add_string(coef_root, "model", fm_config_string(cfg, "model.kind"), err)) &&
        snprintf(path, sizeof path, "%s/%s", dir, FM_BASELINE_FILE) < (int)sizeof path)
        st = fm_json_write(coef_root, path, err);
    if (st == FM_OK && !(st = fm_json_add_number(timing, "train_seconds", seconds, err)) &&
        snprintf(path, sizeof path, "%s/%s", dir, FM_TRAIN_TIMING_FILE) < (int)sizeof path)
        st = fm_json_write(timing, path, err);
    /* metrics.json last: its presence marks the run complete. */
    if (st == FM_OK && snprintf(path, sizeof path, "%s/%s", dir, FM_TRAIN_METRICS_FILE) < (int)sizeof path)
        st = fm_json_write(root, path, err);
    cJSON_Delete(root);
    cJSON_Delete(timing);
    cJSON_Delete(coef_root);
    return st;
}

FmStatus fm_baseline_run(const FmTrainOptions *opt, FmTrainResult *res, FmError *err) {
    memset(res, 0, sizeof *res);
    Baseline b;
    memset(&b, 0, sizeof b);
    b.opt = opt;
    b.cfg = opt->cfg;
    b.kind = fm_config_enum(opt->cfg, "model.kind");
    FM_ASSERT(b.kind == KIND_LOGREG || b.kind == KIND_SAPS);
    const double t0 = now_s();
    FmStatus st = fm_config_check(b.cfg, err);
    if (st == FM_OK && fm_dist_size(opt->dist) > 1)
        st = FM_FAIL(err, FM_ERR_ARG, NULL, "the %s baseline runs in one process; start it without mpirun",
                     fm_config_string(b.cfg, "model.kind"));
    if (st == FM_OK && fm_config_float(b.cfg, "eval.missing_rate") > 0)
        st = FM_FAIL(err, FM_ERR_CONFIG, fm_config_where(b.cfg, "eval.missing_rate"),
                     "[eval] missing_rate: the %s baseline has no missing-modality mechanism; set it to 0",
                     fm_config_string(b.cfg, "model.kind"));
    if (st == FM_OK && fm_train_folder_has(opt->out_dir, FM_TRAIN_METRICS_FILE))
        st = FM_FAIL(err, FM_ERR_ARG, opt->out_dir,
                     "the folder holds a run already; pass --resume to keep it, or choose another --out");
    FmRng root;
    fm_rng_seed(&root, (uint64_t)fm_config_int(b.cfg, "train.seed"));
    if (st == FM_OK) st = fm_study_data_open(&b.d, b.cfg, &root, err);
    if (st == FM_OK) st = fm_cohort_load_rows(&b.d.cohort, b.d.cohort_path, NULL, err);
    if (st == FM_OK) st = fm_train_folder_create(opt->out_dir, err);
    char path[FM_PATH_MAX];
    if (st == FM_OK && snprintf(path, sizeof path, "%s/%s", opt->out_dir, FM_TRAIN_CONFIG_FILE) < (int)sizeof path)
        st = fm_config_write(b.cfg, path, err);
    if (st == FM_OK) st = build_features(&b, err);
    if (st == FM_OK) st = fill_labels(&b, err);
    if (st == FM_OK && !(b.coefs = cJSON_CreateObject())) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int j = 0; st == FM_OK && j < b.d.spec.n_labels; j++) st = fit_column(&b, j, err);
    if (st == FM_OK && !(b.threshold = fm_malloc_array((size_t)b.d.spec.n_labels + 1, sizeof *b.threshold)))
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    if (st == FM_OK) st = fm_evaluate_choose_thresholds(&b.d.spec.model, &b.val_pred, b.threshold, err);
    const double seconds = now_s() - t0;
    if (st == FM_OK) st = write_outputs(&b, seconds, err);
    if (st == FM_OK) {
        res->baseline = 1;
        res->train_seconds = seconds;
    }
    baseline_free(&b);
    return st;
}
