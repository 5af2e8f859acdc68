/* Building a cohort's modalities stay by stay: the preprocessing rules live here.
 *
 * Readers (P12 records, long CSV) hand over each stay's raw observations; event tables (note
 * embeddings, image features, image pixels) are registered before the first stay. For each stay
 * the builder cleans, windows, sorts, merges duplicates and appends to the ragged per-modality
 * arrays, counting every observation's fate in the report (preprocessing/report.h). The rules,
 * in order, for an observation of a mapped variable at time t (hours) with value v:
 *   1. v empty/NaN                          -> dropped, FM_OBS_MISSING
 *   2. v == the sentinel (when one is set)  -> dropped, FM_OBS_SENTINEL
 *   3. t < 0 / t > window (48:00 is kept)   -> dropped, FM_OBS_BEFORE_WINDOW / AFTER_WINDOW
 *   4. v outside [min, max] of the mapping  -> dropped, FM_OBS_BELOW_RANGE / ABOVE_RANGE
 *   5. static variables: the first valid value (earliest time, then input order) is the
 *      descriptor; later ones are FM_OBS_EXTRA_DESCRIPTOR. When the source marks descriptor
 *      lines (P12's 00:00 lines), only those feed static channels.
 *   6. series variables: observations are ordered by time (stable, so input order breaks ties);
 *      observations sharing a time form one row; several values of one variable at one time
 *      are replaced by their mean (FM_OBS_DUPLICATE counts the extra ones).
 *   7. A stay with no observation line other than descriptors and no event is dropped
 *      ("no time series"); a stay whose non-static observations and events were all dropped by
 *      the rules is dropped too ("no valid observation"). Its kept values count as
 *      FM_OBS_STAY_DROPPED.
 * Events: times outside [0, window] and vectors with a non-finite value are dropped; items are
 * ordered by time (stable); nothing is merged. */
#ifndef FM_COHORT_BUILD_H
#define FM_COHORT_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "preprocessing/cohort.h"
#include "preprocessing/event_table.h"
#include "preprocessing/id_index.h"
#include "preprocessing/report.h"
#include "preprocessing/var_map.h"

/* One raw observation as a reader delivers it. */
typedef struct {
    int32_t entry;      /* FmVarMap entry (series channel, or static channel) */
    uint8_t descriptor; /* 1: a descriptor line of a source that marks them (P12 00:00 lines) */
    float time_h;       /* hours since admission */
    float value;        /* NaN = not measured */
} FmRawObs;

typedef struct {
    double window_h;
    int has_sentinel;
    double sentinel;
    int marked_descriptors; /* the source marks descriptor lines (rule 5) */
} FmBuildOptions;

/* Growable ragged arrays of one modality. */
typedef struct {
    char *name;
    FmModalityKind kind;
    int C;
    int image_size;
    int64_t T, cap_T;
    float *time;
    float *value;
    uint8_t *mask;
    int64_t *offset;  /* (N + 1) */
    uint8_t *present; /* (N) */
    int64_t cap_N;
    int max_L;
    /* events only */
    FmEventTable table;   /* owned */
    char *source;         /* file name for messages */
    FmIdIndex groups;     /* stay id -> group */
    int64_t *group_start; /* (n_groups + 1) into group_rows */
    int32_t *group_rows;  /* row numbers grouped by stay, file order within a stay */
    uint8_t *group_used;  /* (n_groups) */
    int n_groups;
    int report_slot; /* index into FmPrepareReport's event tables */
} FmBuildModality;

/* Per-stay scratch element: one observation or one event, sortable by (time, seq). */
typedef struct {
    float t;
    int32_t ch;
    float v;
    int32_t seq;
} FmBuildItem;

typedef struct {
    const FmVarMap *map;
    FmBuildOptions opt;
    FmPrepareReport *rep;
    int M; /* modalities: the mapping's, then event modalities */
    FmBuildModality *mod;
    int64_t N; /* stays kept */
    int64_t cap_N;
    int64_t *stay_id;
    int32_t *label_row; /* (N) caller's label row of each kept stay */
    FmIdIndex seen;     /* stay ids added (kept or dropped), to refuse repeats */
    int *twin_static;   /* (n_entries) static entry with the same name as a series entry */
    /* per-stay scratch, reused */
    FmBuildItem *items, *items_tmp;
    size_t cap_items;
    int64_t *stay_counts; /* (n_entries, FM_OBS_N_OUTCOMES) */
    double *acc_sum;      /* (max C) */
    int32_t *acc_n;       /* (max C) */
    int max_C;
    int64_t *T0;                      /* (M) rows before the current stay */
    struct FmStaticBest *static_best; /* (max C) */
} FmCohortBuilder;

/* Starts a builder for the mapping's modalities. `map` and `rep` must outlive the builder; the
 * report must have been initialised for map->n_entries entries. */
FmStatus fm_cohort_builder_init(FmCohortBuilder *b, const FmVarMap *map, const FmBuildOptions *opt,
                                FmPrepareReport *rep, FmError *err);

/* Adds an event modality (kind FM_MODALITY_EVENTS or FM_MODALITY_IMAGES; image_size S for
 * images, else 0) before the first stay. Takes ownership of *table (zeroed on return, also on
 * failure). `source` names the input file in messages. A non-finite time is a format error
 * naming the row. */
FmStatus fm_cohort_builder_add_events(FmCohortBuilder *b, const char *name, FmModalityKind kind,
                                      int image_size, FmEventTable *table, const char *source, FmError *err);

/* Processes one stay: obs[0..n) in input order, n_unmapped lines whose variable is not in the
 * mapping (already counted by the reader), n_raw_series lines other than descriptors (mapped or
 * not). `where` names the stay's source for messages ("set-a/132539.txt"). A stay id given
 * twice is a format error naming `where`. `label_row` is stored with the stay. Sets *kept. */
FmStatus fm_cohort_builder_add_stay(FmCohortBuilder *b, int64_t stay_id, int32_t label_row,
                                    const FmRawObs *obs, size_t n, size_t n_raw_series, const char *where,
                                    int *kept, FmError *err);

/* Finishes: counts event rows of stays never added, and moves the stays and modalities into
 * `c` (c->N, stay_id, M, mod; labels, splits and settings are the caller's). *label_rows
 * receives the label row of each kept stay (fm_malloc'd, the caller frees). The builder is
 * left empty. */
FmStatus fm_cohort_builder_finish(FmCohortBuilder *b, FmCohort *c, int32_t **label_rows, FmError *err);

/* Frees whatever the builder still owns. NULL or a zeroed builder is accepted. */
void fm_cohort_builder_free(FmCohortBuilder *b);

#endif
