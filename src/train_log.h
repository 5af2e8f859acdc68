/* epochs.csv: one row per training epoch.
 *
 * Columns (tasks in the model's order, layers 0 .. L-1):
 *   epoch                      1-based
 *   lr                         learning rate of the epoch's last optimiser step
 *   train_loss                 mean over the epoch's batches (weighted by stays) of the total
 *                              loss: task loss + balance_coef * balance + entropy_coef * entropy
 *   train_task_loss            its task part, sum_t weight_t loss_t
 *   train_<task>_loss          each task's loss (unweighted)
 *   train_balance, train_entropy  the auxiliary losses (unweighted, summed over layers)
 *   val_loss                   validation task loss (src/evaluate.h)
 *   val_<task>_auroc, _auprc, _f1   binary and multi-label tasks (multi-label: macro), F1 at 0.5
 *   val_<task>_mae, _rmse, _r2      regression tasks
 *   select                     the model-selection value (src/evaluate_report.h)
 *   best                       1 when this epoch became the best so far
 *   train_s, val_s             seconds spent training and validating
 *   stays_per_s                training stays per second (forward, backward and optimiser)
 *   l<i>_entropy, l<i>_dead    expert utilisation of layer i on the validation stays: the
 *                              normalised entropy of the experts' token shares (1 = even, 0 =
 *                              one expert) and the number of experts that got no token
 *   l<i>_similarity            on the first validation batch (the probe batch; models/
 *                              moe_diagnostics.h, src/evaluate_experts.h): mean pairwise cosine
 *                              of the outputs of all the experts on each token (near 1: collapse)
 *   l<i>_agreement             on the probe batch: share of the router's top K that the
 *                              competition's top K shares (measured in either training mode)
 * With competition (competition.enabled), after train_entropy:
 *   compete_layer_steps        (optimiser step, layer) pairs that competed in the epoch
 *   train_compete_router, train_compete_diversity, train_compete_balance
 *                              the competition losses (unweighted, summed over the competing
 *                              layers), mean over the batches that competed (nan if none)
 * Numbers have 6 significant digits; NaN is written "nan". */
#ifndef FM_TRAIN_LOG_H
#define FM_TRAIN_LOG_H

#include "models/model.h"
#include "src/evaluate_report.h"
#include "src/strbuf.h"

typedef struct {
    int epoch;
    double lr;
    double train_loss, train_task, train_task_loss[FM_MAX_TASKS], train_balance, train_entropy;
    double val_loss;
    FmTaskSummary val[FM_MAX_TASKS];
    double select;
    int best;
    double train_s, val_s, stays_per_s;
    double usage_entropy[FM_MODEL_MAX_LAYERS];
    int usage_dead[FM_MODEL_MAX_LAYERS];
    int compete; /* the run uses competition: the compete_ columns are written */
    long compete_layer_steps;
    double compete_router, compete_diversity, compete_balance;
    double similarity[FM_MODEL_MAX_LAYERS], agreement[FM_MODEL_MAX_LAYERS];
} FmEpochRecord;

/* Appends the header line for model configuration `mc` (compete: with the competition loss
 * columns). */
void fm_train_log_header(FmStrBuf *b, const FmModelConfig *mc, int compete);

/* Appends the row of epoch record `r`. */
void fm_train_log_row(FmStrBuf *b, const FmModelConfig *mc, const FmEpochRecord *r);

#endif
