/* Reading predictions.csv back (the files `fusemoe train` and `eval` write, src/evaluate_csv.h),
 * for plots and for analyses outside the run that made them. */
#ifndef FM_PREDICTIONS_READ_H
#define FM_PREDICTIONS_READ_H

#include <stddef.h>

#include "src/error.h"

/* Reads the rows of label column `task` (stay_id,task,y_true,y_score; other tasks' rows are
 * skipped) from each file of paths[0..n_paths), pooled in file order: *score and *label (n
 * each, fm_malloc'd; free with fm_free) and *n. Errors name the file and line
 * ("pred.csv:7: column y_score: expected a number, got \"x\""); a task with no row in any file
 * is FM_ERR_ARG. */
FmStatus fm_predictions_read(const char *const *paths, int n_paths, const char *task, float **score,
                             float **label, size_t *n, FmError *err);

#endif
