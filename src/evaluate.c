/* Running a model over a set of stays (src/evaluate.h). */
#include "src/evaluate.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"
#include "src/evaluate_missing.h"

FmStatus fm_evaluate_predictions_alloc(FmPredictions *p, int64_t n, int n_labels, FmError *err) {
    memset(p, 0, sizeof *p);
    size_t rows = n > 0 ? (size_t)n : 1, cells = rows * (size_t)(n_labels > 0 ? n_labels : 1);
    p->stay_id = fm_malloc_array(rows, sizeof *p->stay_id);
    p->score = fm_malloc_array(cells, sizeof *p->score);
    p->label = fm_malloc_array(cells, sizeof *p->label);
    p->mask = fm_malloc(cells);
    if (!p->stay_id || !p->score || !p->label || !p->mask) {
        fm_evaluate_predictions_free(p);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the predictions of %lld stays", (long long)n);
    }
    p->n = n;
    p->n_labels = n_labels;
    return FM_OK;
}

void fm_evaluate_predictions_free(FmPredictions *p) {
    if (!p) return;
    fm_free(p->stay_id);
    fm_free(p->score);
    fm_free(p->label);
    fm_free(p->mask);
    memset(p, 0, sizeof *p);
}

FmStatus fm_evaluate_predict(const FmModel *model, FmModelWorkspace *ws, FmTrainBatch *tb, const FmCohort *c,
                             const FmTrainSpec *spec, int norm, const int64_t *idx, int64_t n,
                             const FmEvaluateOptions *opt, FmPredictions *out, FmError *err) {
    const int J = spec->n_labels, T = model->cfg.n_tasks;
    FM_ASSERT(out->n == n && out->n_labels == J && J == model->cfg.n_labels);
    double sum[FM_MAX_TASKS] = {0};
    int64_t known[FM_MAX_TASKS] = {0};
    for (int64_t start = 0; start < n; start += tb->cap) {
        int B = (int)(n - start < tb->cap ? n - start : tb->cap);
        FmStatus st = fm_train_batch_make(tb, c, spec, norm, idx + start, B, err);
        if (st != FM_OK) return st;
        if (opt && opt->missing_rate > 0.0) fm_evaluate_drop_modalities(&tb->view, opt->missing_rate, opt->seed);
        FmModelLoss loss;
        st = fm_model_forward(model, ws, &tb->view, 0, NULL, &loss, err);
        if (st != FM_OK) {
            fm_error_prefix(err, "evaluating stays %lld to %lld", (long long)start, (long long)(start + B - 1));
            return st;
        }
        const float *pred = fm_model_predictions(ws);
        memcpy(out->stay_id + start, tb->view.stay_id, (size_t)B * sizeof *out->stay_id);
        memcpy(out->score + (size_t)start * J, pred, (size_t)B * J * sizeof *out->score);
        memcpy(out->label + (size_t)start * J, tb->view.label, (size_t)B * J * sizeof *out->label);
        memcpy(out->mask + (size_t)start * J, tb->view.label_mask, (size_t)B * J);
        for (int t = 0; t < T; t++) {
            sum[t] += loss.task_loss[t] * loss.task_known[t];
            known[t] += loss.task_known[t];
        }
        if (opt && opt->usage) fm_evaluate_usage_add(opt->usage, ws);
        if (opt && opt->probe) fm_evaluate_experts_add(opt->probe, model, ws);
    }
    if (opt && opt->loss) {
        FmEvaluateLoss *l = opt->loss;
        memset(l, 0, sizeof *l);
        for (int t = 0; t < T; t++) {
            l->known[t] = known[t];
            l->task_loss[t] = known[t] > 0 ? sum[t] / (double)known[t] : NAN;
            if (known[t] > 0) l->total += model->cfg.task[t].weight * l->task_loss[t];
        }
    }
    return FM_OK;
}
