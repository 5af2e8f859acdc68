/* Raw clinical data to a prepared cohort: the whole `fusemoe prepare` pipeline as a library call.
 *
 * Reads the mapping, the outcomes or labels, the observations (PhysioNet 2012 record folders or
 * a long CSV) and the optional note embeddings / image features / image pixels; applies the
 * preprocessing rules (preprocessing/cohort_build.h); derives the label columns; makes the
 * splits and fits each split's standardisation statistics on its training stays. Structural
 * problems in the input stop with an error naming the file and line; value-level anomalies are
 * counted in the report. */
#ifndef FM_PREPARE_H
#define FM_PREPARE_H

#include <stdint.h>

#include "preprocessing/cohort.h"
#include "preprocessing/labels.h"
#include "preprocessing/long_csv.h"
#include "preprocessing/report.h"
#include "preprocessing/splits.h"
#include "preprocessing/var_map.h"

/* ln(LOS days + this) is the regression target, so stays shorter than a day stay finite. */
#define FM_LOS_LOG_OFFSET_DAYS 1.0

typedef struct {
    /* PhysioNet 2012 input: record folders and outcome files (both lists non-empty), or ... */
    const char *const *p12_dirs;
    int n_p12_dirs;
    const char *const *outcome_files;
    int n_outcome_files;
    /* ... a long CSV with its labels file(s). */
    const char *long_csv;
    const char *const *label_files;
    int n_label_files;
    FmLongCsvOptions long_opt;
    FmLabelCsvOptions label_opt;
    int has_sentinel; /* long CSV only: a value meaning "not recorded" (P12: always -1) */
    double sentinel;
    const char *mapping; /* variable-to-modality mapping CSV */
    /* optional event inputs */
    const char *notes_h5;          /* note embeddings (FORMATS.md 5) */
    const char *image_features_h5; /* image feature vectors (FORMATS.md 6) */
    const char *image_index;       /* image index CSV (FORMATS.md 7) */
    int image_size;                /* S for images (S x S pixels) */
    /* rules */
    double window_h;           /* 48 */
    double los_threshold_days; /* 7 */
    FmSplitSpec splits;        /* default repeated:5:0.8,0.1,0.1 */
    uint64_t seed;             /* 1 */
} FmPrepareOptions;

/* The defaults above: mapping data/p12_modalities.csv, window 48 h, LOS threshold 7 days,
 * 5 repeated 80/10/10 splits, seed 1, image size 64, default column names. */
FmPrepareOptions fm_prepare_defaults(void);

/* Runs the pipeline. On success *c holds the cohort (free with fm_cohort_free), *map the
 * mapping (fm_var_map_free) and *rep the counts (fm_report_free; write it with
 * fm_report_write_text). On failure all three are empty. */
FmStatus fm_prepare_run(const FmPrepareOptions *opt, FmCohort *c, FmVarMap *map, FmPrepareReport *rep,
                        FmError *err);

#endif
