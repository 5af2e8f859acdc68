/* Outcome tables as read from files, before they become the cohort's label columns.
 *
 * Two readers fill one FmLabelTable: PhysioNet 2012 outcome files (FORMATS.md 1:
 * RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death, columns found by name) and
 * labels CSVs (FORMATS.md 3: stay_id,mortality,los_days plus further 0/1 columns; names
 * configurable). Several files may be read into one table; a stay id seen twice (in one file or
 * across files) is a format error naming both places. Unknown values are NaN. */
#ifndef FM_LABELS_H
#define FM_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "preprocessing/id_index.h"
#include "src/error.h"

typedef struct {
    size_t n;         /* rows */
    int64_t *stay_id; /* (n) */
    float *mortality; /* (n) 0/1, NaN = unknown */
    float *los_days;  /* (n) days, NaN = unknown (-1 or empty in the file) */
    int32_t *file;    /* (n) index into files */
    int64_t *line;    /* (n) line in that file */
    int n_files;
    char **files;             /* (n_files) file names, for messages */
    int n_extra;              /* further label columns (labels CSV only) */
    char **extra_name;        /* (n_extra) */
    uint8_t *extra_phenotype; /* (n_extra) 1 = part of the phenotype multi-label task */
    float *extra;             /* (n, n_extra) 0/1, NaN = unknown */
    float *saps_i;            /* (n) SAPS-I admission score (P12 outcomes), NaN = unknown */
    float *sofa;              /* (n) SOFA admission score (P12 outcomes), NaN = unknown */
    size_t cap;
    FmIdIndex index; /* stay id -> row */
} FmLabelTable;

/* Column names and options of a labels CSV. */
typedef struct {
    const char *id_col;           /* "stay_id" */
    const char *mortality_col;    /* "mortality" */
    const char *los_col;          /* "los_days" */
    const char *phenotype_prefix; /* "phe_": further columns with this prefix form the phenotype task */
    const char *const *ignore;    /* further columns to ignore (n_ignore names) */
    int n_ignore;
} FmLabelCsvOptions;

/* Default column names (stay_id, mortality, los_days, prefix "phe_", nothing ignored). */
FmLabelCsvOptions fm_label_csv_defaults(void);

void fm_labels_init(FmLabelTable *t);
void fm_labels_free(FmLabelTable *t);

/* Appends the rows of a P12 outcome file. In-hospital_death must be 0 or 1; Length_of_stay -1
 * is unknown, any other negative value is an error. SAPS-I and SOFA are kept as admission
 * scores (-1 = unknown; baselines, not labels); Survival is not used. */
FmStatus fm_labels_read_p12_outcomes(FmLabelTable *t, const char *path, FmError *err);

/* Appends the rows of a labels CSV. mortality: 0, 1 or empty; los_days: a number >= 0, or -1 or
 * empty for unknown; further columns: 0, 1 or empty (anything else is an error that suggests
 * ignoring the column). All files read into one table must have the same further columns. */
FmStatus fm_labels_read_csv(FmLabelTable *t, const char *path, const FmLabelCsvOptions *opt, FmError *err);

/* Row of stay `id`, or -1. */
int32_t fm_labels_find(const FmLabelTable *t, int64_t id);

#endif
