/* Clinical baselines trained as study runs: `fusemoe train` with model.kind = logreg or saps_i.
 *
 * They see the same stays as the model for the same configuration (src/train_study.h) and write
 * the same run folder files, so an ablation grid or `fusemoe report` puts them in one table with
 * the model:
 *   logreg  per label column, on the per-stay summaries of data.modalities
 *           (preprocessing/summary_features.h; missing summaries imputed with the training
 *           mean): logistic regression for binary and multi-label columns, ridge regression for
 *           regression columns (src/glm.h); the L2 penalty is chosen among model.baseline_l2 by
 *           the validation train.select_metric (the validation loss for regression columns).
 *   saps_i  the SAPS-I admission score of P12 outcome files (missing scores imputed with the
 *           training mean) as the single feature, without penalty: a calibration of the score
 *           into a probability (or a linear prediction of a regression target).
 * A label column whose training stays hold one class only is predicted by its training
 * prevalence.
 *
 * Run folder (every file written atomically; metrics.json last, marking the run complete):
 *   config.ini, predictions.csv, metrics.json, timing.json  as for the model (src/train.h)
 *   baseline.json  per label column: the penalty chosen and, per feature, its name, mean,
 *                  standard deviation and coefficient on the standardised feature, and the
 *                  intercept (odds ratios per standard deviation are exp(coefficient))
 * Baselines have no model.h5: `fusemoe eval` and `predict` take FuseMoE models only. */
#ifndef FM_BASELINE_H
#define FM_BASELINE_H

#include "src/error.h"
#include "src/train.h"

/* The name of the coefficients file in a baseline's run folder. */
#define FM_BASELINE_FILE "baseline.json"

/* Runs the baseline that opt->cfg's model.kind names (not fusemoe) into opt->out_dir, in one
 * process (FM_ERR_ARG under data-parallel training). Errors as fm_train_run's, and
 * FM_ERR_CONFIG for what a baseline cannot do (eval.missing_rate > 0; saps_i on a cohort
 * without admission scores). */
FmStatus fm_baseline_run(const FmTrainOptions *opt, FmTrainResult *res, FmError *err);

#endif
