/* predictions.csv: one row per stay and label column, written atomically.
 *
 * With labels (`fusemoe eval`, and the test part of `fusemoe train`):
 *   stay_id,task,y_true,y_score
 *   132539,mortality,0,0.0731
 *   132539,phe_shock,1,0.6612
 * rows only where the label is known. Without labels (`fusemoe predict`):
 *   stay_id,task,y_score
 * a row for every stay and label column. `task` is the label column's name (mortality,
 * los_gt_7d, los_log_days, phe_*); y_score is the probability of a binary or multi-label
 * column, the predicted value of a regression column (los_log_days: ln(LOS days + 1));
 * y_true is 0/1 or the value. Numbers are float32 written in the shortest form that reads back
 * as the same float. Rows follow
 * the predictions' stay order, then the column order. */
#ifndef FM_EVALUATE_CSV_H
#define FM_EVALUATE_CSV_H

#include "src/error.h"
#include "src/evaluate.h"

/* Writes `p` to `path` with column names label_names[0..p->n_labels); with_labels selects
 * the format above. */
FmStatus fm_evaluate_write_predictions(const char *path, const FmPredictions *p, const char *const *label_names,
                                       int with_labels, FmError *err);

#endif
