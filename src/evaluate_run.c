/* Evaluating or applying a trained model on a cohort file (src/evaluate_run.h). */
#include "src/evaluate_run.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/model_file.h"
#include "preprocessing/cohort.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/blas_kernel.h"
#include "src/evaluate.h"
#include "src/evaluate_csv.h"
#include "src/evaluate_report.h"
#include "src/json_out.h"
#include "src/train_batch.h"
#include "src/train_folder.h"
#include "src/train_model_file.h"
#include "src/train_spec.h"

static const char *const PART_NAMES[] = {"train", "val", "test"};

FmEvaluateRunOptions fm_evaluate_run_defaults(void) {
    FmEvaluateRunOptions o;
    memset(&o, 0, sizeof o);
    o.split = -1;
    o.part = FM_PART_TEST;
    o.seed = 1;
    o.bootstrap = 1000;
    o.batch_size = 0;
    o.with_labels = 1;
    o.threads = 1;
    return o;
}

/* train.batch_size of the configuration the model was trained with (64 when unknown). */
static int training_batch_size(const FmTrainInfo *info) {
    int B = 64;
    FmConfig cfg;
    if (!info->config_text || fm_config_init(&cfg, NULL) != FM_OK) return B;
    if (fm_config_load_string(&cfg, info->config_text, "model.h5:/study/config", NULL) == FM_OK)
        B = (int)fm_config_int(&cfg, "train.batch_size");
    fm_config_free(&cfg);
    return B;
}

/* Stays of the chosen part (or all), as a new array. */
static FmStatus choose_stays(const FmCohort *c, int split, int part, int64_t **idx, int64_t *n, FmError *err) {
    if (part != FM_EVAL_PART_ALL) return fm_cohort_split_stays(c, split, part, idx, n, err);
    *idx = fm_malloc_array(c->N ? (size_t)c->N : 1, sizeof **idx);
    if (!*idx) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int64_t i = 0; i < c->N; i++) (*idx)[i] = i;
    *n = c->N;
    return FM_OK;
}

static FmStatus write_metrics(const FmEvaluateRunOptions *o, const FmModel *model, const FmTrainInfo *info,
                              const FmCohort *c, int split, const FmPredictions *pred, const FmExpertUsage *usage,
                              const FmExpertProbe *probe, FmError *err) {
    cJSON *root = cJSON_CreateObject(), *run = NULL, *tasks = NULL;
    if (root && (run = cJSON_AddObjectToObject(root, "run"))) tasks = cJSON_AddObjectToObject(root, "tasks");
    if (!tasks) {
        cJSON_Delete(root);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    FmStatus st;
    if (!(st = fm_json_add_string(run, "cohort", o->cohort_path, err)) &&
        !(st = fm_json_add_number(run, "split", o->part == FM_EVAL_PART_ALL ? NAN : split, err)) &&
        !(st = fm_json_add_string(run, "part", o->part == FM_EVAL_PART_ALL ? "all" : PART_NAMES[o->part], err)) &&
        !(st = fm_json_add_number(run, "n_stays", (double)pred->n, err)) &&
        !(st = fm_json_add_number(run, "missing_rate", o->missing_rate, err)) &&
        !(st = fm_json_add_number(run, "seed", (double)o->seed, err)) &&
        !(st = fm_json_add_number(run, "model_split", (double)info->split, err)) &&
        !(st = fm_json_add_number(run, "model_best_epoch", (double)info->best_epoch, err))) {
        FmReportOptions ro = {.bootstrap = o->bootstrap,
                              .seed = o->seed,
                              .los_log_offset_days = c->settings.los_log_offset_days};
        st = fm_evaluate_report(tasks, &model->cfg, info->label_ptr, pred, info->threshold, &ro, err);
    }
    if (st == FM_OK) st = fm_evaluate_experts_report(root, usage, probe, err);
    char path[FM_PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.json", o->out_dir);
    if (st == FM_OK) st = fm_json_write(root, path, err);
    cJSON_Delete(root);
    return st;
}

FmStatus fm_evaluate_run(const FmEvaluateRunOptions *o, FmEvaluateRunResult *res, FmError *err) {
    memset(res, 0, sizeof *res);
    FmModel *model = NULL;
    FmNorm norm;
    memset(&norm, 0, sizeof norm);
    FmTrainInfo info;
    FmCohort c;
    FmTrainSpec spec;
    FmTrainBatch tb;
    FmPredictions pred;
    FmModelWorkspace *ws = NULL;
    int64_t *idx = NULL, n = 0;
    /* The expert diagnostics: the caller's, or this run's own for metrics.json */
    FmExpertUsage own_usage;
    FmExpertProbe own_probe;
    memset(&own_usage, 0, sizeof own_usage);
    memset(&own_probe, 0, sizeof own_probe);
    const int report = o->out_dir && o->with_labels;
    FmExpertUsage *usage = o->usage ? o->usage : report ? &own_usage : NULL;
    FmExpertProbe *probe = o->probe ? o->probe : report ? &own_probe : NULL;
    memset(&info, 0, sizeof info);
    memset(&c, 0, sizeof c);
    memset(&tb, 0, sizeof tb);
    memset(&pred, 0, sizeof pred);
    if (o->usage) memset(o->usage, 0, sizeof *o->usage);
    if (o->probe) memset(o->probe, 0, sizeof *o->probe);
    if (o->batch_size < 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "batch size %d", o->batch_size);
    fm_blas_set_threads(o->threads);
    FmStatus st = fm_train_model_load(o->model_path, &model, &norm, &info, err);
    if (st == FM_OK) st = fm_cohort_load(o->cohort_path, &c, err);
    int split = o->split >= 0 ? o->split : (int)info.split;
    if (st == FM_OK && o->part != FM_EVAL_PART_ALL && (split < 0 || split >= c.n_splits))
        st = FM_FAIL(err, FM_ERR_ARG, o->cohort_path, "split %d does not exist (the cohort has %d)", split, c.n_splits);
    if (st == FM_OK)
        st = fm_train_spec_from_model(&model->cfg, info.label_ptr, &c, o->cohort_path, o->with_labels, &spec, err);
    if (st == FM_OK) st = fm_train_model_use_norm(&c, o->cohort_path, &model->cfg, &norm, err);
    if (st == FM_OK) st = choose_stays(&c, split, o->part, &idx, &n, err);
    if (st == FM_OK && o->out_dir) st = fm_train_folder_create(o->out_dir, err);
    if (st == FM_OK && usage) st = fm_evaluate_usage_create(usage, model, err);
    if (st == FM_OK && probe) st = fm_evaluate_experts_create(probe, model, FM_EVALUATE_EXPERTS_CHUNK, err);
    int cap = o->batch_size > 0 ? o->batch_size : training_batch_size(&info);
    FmModelShape shape;
    if (st == FM_OK) {
        fm_train_batch_shape(&c, &spec, cap, &shape);
        st = fm_model_workspace_create(&ws, model, &shape, err);
    }
    if (st == FM_OK) st = fm_train_batch_alloc(&tb, &c, &spec, cap, err);
    if (st == FM_OK) st = fm_evaluate_predictions_alloc(&pred, n, spec.n_labels, err);
    FmEvaluateOptions eo = {.missing_rate = o->missing_rate, .seed = o->seed, .usage = usage, .probe = probe};
    if (st == FM_OK)
        st = fm_evaluate_predict(model, ws, &tb, &c, &spec, FM_COHORT_NORM_EXTERNAL, idx, n, &eo, &pred, err);
    if (o->out_dir) {
        char path[FM_PATH_MAX];
        snprintf(path, sizeof path, "%s/predictions.csv", o->out_dir);
        if (st == FM_OK) st = fm_evaluate_write_predictions(path, &pred, info.label_ptr, o->with_labels, err);
        if (st == FM_OK && o->with_labels) st = write_metrics(o, model, &info, &c, split, &pred, usage, probe, err);
    }
    if (st != FM_OK && o->usage) fm_evaluate_usage_free(o->usage);
    if (st != FM_OK && o->probe) fm_evaluate_experts_free(o->probe);
    fm_evaluate_usage_free(&own_usage);
    fm_evaluate_experts_free(&own_probe);
    if (st == FM_OK) {
        res->n_stays = n;
        res->split = o->part == FM_EVAL_PART_ALL ? -1 : split;
    }
    fm_evaluate_predictions_free(&pred);
    fm_train_batch_free(&tb);
    fm_model_workspace_free(ws);
    fm_free(idx);
    fm_cohort_free(&c);
    fm_norm_free(&norm);
    fm_train_info_free(&info);
    fm_model_free(model);
    return st;
}
