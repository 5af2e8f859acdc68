/* Long CSV of observations (FORMATS.md 2): one row per observation, `stay_id,time_h,variable,
 * value` by default (names configurable, columns in any order, further columns ignored).
 *
 * Rows may come in any order: they are grouped by stay (stable, so file order is kept within a
 * stay) and handed to the builder stay by stay, in the order of the labels table, which defines
 * the cohort's stays. A stay with observations but no labels row is a format error naming the
 * line of its first row; a labels row without observations becomes a stay with no time series
 * (dropped and counted by the builder unless it has events). There are no descriptor lines:
 * the first valid value of a static variable is its descriptor. */
#ifndef FM_LONG_CSV_H
#define FM_LONG_CSV_H

#include "preprocessing/cohort_build.h"
#include "preprocessing/labels.h"

typedef struct {
    const char *id_col;    /* "stay_id" */
    const char *time_col;  /* "time_h": hours since admission, a number */
    const char *var_col;   /* "variable" */
    const char *value_col; /* "value": a number; empty/NaN/NA = not measured */
} FmLongCsvOptions;

FmLongCsvOptions fm_long_csv_defaults(void);

/* Reads `path` and adds every stay of `labels` to the builder (label_used is set for all rows).
 * Errors name the file and line ("obs.csv:17: column value: expected a number, got \"x\""). */
FmStatus fm_long_csv_read(const char *path, const FmLongCsvOptions *opt, FmCohortBuilder *b,
                          const FmLabelTable *labels, uint8_t *label_used, FmError *err);

#endif
