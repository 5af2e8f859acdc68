/* A prepared cohort in memory: stays, per-modality ragged observations, labels, splits with
 * their standardisation statistics; loading it from a cohort file; gathering batches.
 *
 * Values in the cohort are the cleaned raw values (not standardised), so that any split can be
 * used: batches for split k are standardised with split k's statistics (fitted on its training
 * stays), or with statistics taken from a model (fm_cohort_use_norm). The file layout is
 * documented in README.md ("The cohort file") and in preprocessing/cohort_file.c.
 *
 * Ragged layout of modality m: stay i owns rows offset[i] .. offset[i+1]-1 of time (T) and of
 * value/mask (T, C). A SERIES row is one observation time with C channels (mask 1 = observed);
 * a STATIC stay has one row (its descriptors) or none; an EVENTS/IMAGES row is one item (note
 * embedding, image feature vector, image pixels) with no per-channel mask. */
#ifndef FM_COHORT_H
#define FM_COHORT_H

#include <stdint.h>

#include "preprocessing/batch.h"
#include "preprocessing/norm.h"
#include "src/error.h"

/* Version of the cohort file layout this code writes and reads. */
#define FM_COHORT_FORMAT_VERSION 1

typedef struct {
    char *name; /* "vitals", "labs", "static", "notes", "image_features", "images" */
    FmModalityKind kind;
    int C;             /* channels / feature width / pixels S*S */
    char **channel;    /* (C) names for SERIES and STATIC; NULL for EVENTS and IMAGES */
    double *range_min; /* (C) plausible range used when cleaning (SERIES/STATIC), else NULL; */
    double *range_max; /*     -inf / +inf when unbounded */
    int image_size;    /* IMAGES: S (C = S*S); 0 otherwise */
    int standardise;   /* 1: batches standardise values per channel; 0 (IMAGES): unchanged */
    int64_t T;         /* rows over all stays */
    int64_t *offset;   /* (N+1), offset[0] = 0, offset[N] = T */
    int32_t *count;    /* (N) rows per stay = offset[i+1] - offset[i] */
    uint8_t *present;  /* (N) 1 = the stay has at least one row (STATIC: any descriptor) */
    float *time;       /* (T) hours since ICU admission, in [0, window_h] */
    float *value;      /* (T, C) cleaned values, not standardised; 0 where not observed */
    uint8_t *mask;     /* (T, C) 1 = observed (SERIES, STATIC); NULL for EVENTS, IMAGES */
    int max_L;         /* largest count over stays */
} FmCohortModality;

typedef enum { FM_LABEL_BINARY = 0, FM_LABEL_REGRESSION = 1 } FmLabelKind;

typedef struct {
    char *name; /* column name: "mortality", "los_log_days", "los_gt_7d", "phe_sepsis"... */
    char *task; /* task it belongs to: its own name, or "phenotype" for the multi-label set */
    FmLabelKind kind;
} FmLabelInfo;

/* The parts of a split. */
enum { FM_PART_TRAIN = 0, FM_PART_VAL = 1, FM_PART_TEST = 2, FM_PART_NONE = 3 };

typedef struct {
    char *name;    /* "repeat0".., "fold0".., or the split file's column name */
    uint8_t *part; /* (N) FM_PART_* of each stay */
    FmNorm norm;   /* statistics fitted on this split's training stays */
} FmCohortSplit;

/* Preprocessing settings, stored as attributes of the cohort file. */
typedef struct {
    double window_h;            /* observation window, hours (observations at t <= window kept) */
    double los_threshold_days;  /* LOS > threshold is the positive class of los_gt_<t>d */
    double los_log_offset_days; /* los_log_days = ln(LOS days + offset) */
    double std_floor;           /* FM_NORM_STD_FLOOR */
    int has_sentinel;           /* 1 when `sentinel` marks "not recorded" values */
    double sentinel;
    uint64_t seed;        /* split seed */
    char *split_spec;     /* "repeated:5:0.8,0.1,0.1", "kfold:5", "file:<path>" */
    char *sources;        /* the inputs, one per line */
    char *duplicate_rule; /* "mean" */
} FmCohortSettings;

typedef struct {
    int64_t N;             /* stays */
    int64_t *stay_id;      /* (N) */
    int M;                 /* modalities */
    FmCohortModality *mod; /* (M) */
    int n_labels;
    FmLabelInfo *label_info; /* (n_labels) */
    float *label;            /* (N, n_labels); NaN where unknown */
    uint8_t *label_mask;     /* (N, n_labels) 1 = known */
    float *saps_i;           /* (N) SAPS-I admission score, NaN = unknown; NULL: not in the inputs */
    float *sofa;             /* (N) SOFA admission score, NaN = unknown; NULL: not in the inputs */
    int n_splits;
    FmCohortSplit *split; /* (n_splits) */
    FmCohortSettings settings;
    int has_external_norm; /* set by fm_cohort_use_norm */
    FmNorm external_norm;
    /* (N) after fm_cohort_load_meta: 1 = the stay's rows are in memory; NULL = every stay's
     * are (fm_cohort_load, a built cohort). With it, each modality's offset indexes the rows in
     * memory: a stay not loaded has offset[i + 1] == offset[i] while count[i], present[i] and
     * max_L keep the file's values, and T counts the rows in memory. Such a cohort serves
     * batches of loaded stays (fm_cohort_make_batch) and everything that reads no rows (splits,
     * labels, statistics); it cannot be saved or have statistics fitted. */
    uint8_t *loaded;
} FmCohort;

/* Use the statistics given to fm_cohort_use_norm instead of a split's (fm_cohort_make_batch). */
#define FM_COHORT_NORM_EXTERNAL (-1)

/* Frees everything the cohort owns and zeroes it. NULL or a zeroed cohort is accepted. */
void fm_cohort_free(FmCohort *c);

/* Writes the cohort to `path` atomically (created at a temporary path, committed by rename;
 * on failure nothing is left at `path` and no temporary file remains). Datasets are chunked and
 * deflate-compressed. */
FmStatus fm_cohort_save(const FmCohort *c, const char *path, FmError *err);

/* Reads a cohort file with full validation: format name and version, every dataset's presence,
 * rank, length and type, offsets (monotone, ending at T), counts and presence flags consistent
 * with offsets, masks 0/1, times finite and inside the window, part codes, stds >= floor.
 * Messages name the file and dataset ("cohort.h5:/modalities/vitals/offset: expected 7991
 * values, got 12"). On failure *c is zeroed and nothing needs freeing. */
FmStatus fm_cohort_load(const char *path, FmCohort *c, FmError *err);

/* Reading part of a cohort, for processes that each serve some of the stays (data-parallel
 * training): first everything but the observation rows, then the rows of chosen stays.
 *
 * fm_cohort_load_meta reads and validates the file as fm_cohort_load does, except that no
 * modality's time, value or mask rows are read: c->loaded is all 0 and each modality's T is 0.
 *
 * fm_cohort_load_rows then reads, from the same file, the rows of the stays with want[i] != 0
 * (N flags; NULL = every stay), validating them as fm_cohort_load does (messages give rows in
 * the file's numbering). Each run of consecutive wanted stays is one contiguous row range of
 * each dataset, read as one hyperslab; the HDF5 chunk cache is sized so that each compressed
 * chunk is inflated once. Memory is that of the wanted rows only. Call it once per
 * fm_cohort_load_meta. FM_ERR_MISMATCH when the file's datasets no longer match the offsets
 * read before; on any failure the cohort keeps no rows (c->loaded all 0). */
FmStatus fm_cohort_load_meta(const char *path, FmCohort *c, FmError *err);
FmStatus fm_cohort_load_rows(FmCohort *c, const char *path, const uint8_t *want, FmError *err);

/* Index of the modality / label / split called `name`, or -1. */
int fm_cohort_find_modality(const FmCohort *c, const char *name);
int fm_cohort_find_label(const FmCohort *c, const char *name);
int fm_cohort_find_split(const FmCohort *c, const char *name);

/* Stays (row indices into the cohort) of part `part` (FM_PART_TRAIN/VAL/TEST) of split
 * `split`, in cohort order. *idx is fm_malloc'd (free with fm_free; non-NULL even when *n is
 * 0). FM_ERR_ARG for a split or part out of range. */
FmStatus fm_cohort_split_stays(const FmCohort *c, int split, int part, int64_t **idx, int64_t *n,
                               FmError *err);

/* An FmNorm with the cohort's layout (modality names, kinds, widths, channel names) and
 * neutral statistics (mean 0, std 1); allocated here. */
FmStatus fm_cohort_layout_norm(const FmCohort *c, FmNorm *norm, FmError *err);

/* Fits standardisation statistics on the training stays of `part` ((N) FM_PART_* codes, e.g.
 * a split's part array): per channel of each standardised modality, the mean and the population
 * standard deviation (divisor n) of the observed values (SERIES/STATIC: entries with mask 1;
 * EVENTS: every item), accumulated in double; std floored at FM_NORM_STD_FLOOR; a channel with
 * no training value gets mean 0, std 1. IMAGES pass through (mean 0, std 1). *norm is
 * allocated here (free with fm_norm_free). */
FmStatus fm_cohort_fit_norm(const FmCohort *c, const uint8_t *part, FmNorm *norm, FmError *err);

/* The cohort's layout as an FmNorm with the statistics of split `split` (a deep copy the
 * caller frees), for a model to store; FM_COHORT_NORM_EXTERNAL copies the external one. */
FmStatus fm_cohort_get_norm(const FmCohort *c, int split, FmNorm *norm, FmError *err);

/* Adopts statistics from elsewhere (a trained model) for batches made with
 * FM_COHORT_NORM_EXTERNAL. Checks first that the cohort's modalities and channels match
 * `norm` by name (fm_norm_check_match; `what` names its origin in messages, e.g. "the model");
 * on mismatch the cohort is unchanged and FM_ERR_MISMATCH names the first difference. */
FmStatus fm_cohort_use_norm(FmCohort *c, const FmNorm *norm, const char *what, FmError *err);

/* ---- batches ----
 *
 * Batch memory is sized once for the largest batch the cohort can produce (max_B stays, each
 * modality padded to its max_L over the whole cohort), so a training loop gathers every step
 * into the same buffers without allocating. Arrays inside are packed for the actual padding of
 * each batch: modality m's value is (B, max_L, C) with max_L = the largest count among the
 * batch's stays (at least 1), exactly the FmBatch contract. */

/* Allocates `b` for up to max_B stays of cohort `c`. On failure b is zeroed. */
FmStatus fm_cohort_batch_alloc(const FmCohort *c, int max_B, FmBatch *b, FmError *err);

/* Frees a batch from fm_cohort_batch_alloc; NULL or a zeroed batch is accepted. */
void fm_cohort_batch_free(FmBatch *b);

/* Fills `b` (from fm_cohort_batch_alloc on the same cohort) with the stays idx[0..n): times
 * scaled to [0, 1] by the window (hours / window_h), values standardised with split `split`'s
 * statistics (or the external ones for FM_COHORT_NORM_EXTERNAL), unobserved entries and
 * padding 0, labels with their masks, stay ids. No allocation. FM_ERR_ARG when n exceeds the
 * batch's capacity, an index is out of range, the split does not exist, or a stay's rows
 * were not loaded (fm_cohort_load_rows). */
FmStatus fm_cohort_make_batch(const FmCohort *c, int split, const int64_t *idx, int n, FmBatch *b,
                              FmError *err);

#endif
