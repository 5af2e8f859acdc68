/* The preparation report: what was read, what was kept, what was dropped and why.
 *
 * Every raw observation of a mapped variable ends in exactly one bucket of FmObsOutcome, so
 * per variable the buckets add up to the observations read. Observations of variables missing
 * from the mapping are counted by name. Written as text (fm_report_write_text) to stdout and
 * next to the cohort file. */
#ifndef FM_REPORT_H
#define FM_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "preprocessing/cohort.h"
#include "preprocessing/var_map.h"
#include "src/error.h"

typedef enum {
    FM_OBS_KEPT = 0,         /* stored (for duplicates: the one stored mean) */
    FM_OBS_MISSING,          /* empty or NaN value */
    FM_OBS_SENTINEL,         /* the source's "not recorded" code (-1 in P12) */
    FM_OBS_BEFORE_WINDOW,    /* time < 0 h */
    FM_OBS_AFTER_WINDOW,     /* time > window */
    FM_OBS_BELOW_RANGE,      /* value < the variable's plausible min */
    FM_OBS_ABOVE_RANGE,      /* value > the variable's plausible max */
    FM_OBS_DUPLICATE,        /* merged into the mean of its (time, variable) group */
    FM_OBS_EXTRA_DESCRIPTOR, /* a later value of a static variable (the first valid one is kept) */
    FM_OBS_STAY_DROPPED,     /* valid, but its stay was dropped */
    FM_OBS_N_OUTCOMES
} FmObsOutcome;

/* Name of an outcome as printed in the report ("kept", "after_window", ...). */
const char *fm_obs_outcome_name(FmObsOutcome o);

typedef enum {
    FM_EVENT_KEPT = 0,
    FM_EVENT_BEFORE_WINDOW,
    FM_EVENT_AFTER_WINDOW,
    FM_EVENT_NONFINITE,    /* a NaN or infinite value in the vector */
    FM_EVENT_UNKNOWN_STAY, /* the stay id is not in the cohort's stays */
    FM_EVENT_STAY_DROPPED, /* its stay was dropped */
    FM_EVENT_N_OUTCOMES
} FmEventOutcome;

const char *fm_event_outcome_name(FmEventOutcome o);

typedef struct {
    char *name;
    int64_t count;
} FmNamedCount;

#define FM_REPORT_MAX_EVENT_MODS 4

typedef struct {
    /* inputs */
    int64_t lines_read;              /* data lines (after headers) of the observation files */
    int64_t records_read;            /* stays seen in observation input (P12: record files) */
    int64_t outcome_rows;            /* rows of outcome / labels files */
    int64_t outcome_deaths;          /* rows with mortality 1 */
    int64_t outcomes_without_stay;   /* outcome rows whose stay has no record (ignored) */
    int64_t split_rows_without_stay; /* split-file rows for stays not in the cohort (ignored) */
    /* stays */
    int64_t stays_no_time_series; /* dropped: no line other than descriptors (and no events) */
    int64_t stays_no_valid_obs;   /* dropped: every non-static observation was cleaned away */
    int64_t stays_kept;
    /* observations per mapping entry (FmVarMap entries) and outcome */
    int n_entries;
    int64_t *obs;            /* (n_entries, FM_OBS_N_OUTCOMES) */
    int64_t *stays_with_var; /* (n_entries) kept stays with at least one kept value */
    int64_t obs_unmapped;    /* observations of variables not in the mapping */
    int n_unmapped;
    FmNamedCount *unmapped; /* (n_unmapped) by name, in order of first appearance */
    int *unmapped_slot;     /* hash slots over unmapped names (index or -1) */
    int unmapped_slots;     /* slot count, a power of two */
    /* events per event modality */
    int n_event_mods;
    char event_name[FM_REPORT_MAX_EVENT_MODS][64];
    int64_t events_read[FM_REPORT_MAX_EVENT_MODS];
    int64_t events[FM_REPORT_MAX_EVENT_MODS][FM_EVENT_N_OUTCOMES];
} FmPrepareReport;

/* Allocates the per-variable tables for a mapping with n_entries entries (zeroed). */
FmStatus fm_report_init(FmPrepareReport *rep, int n_entries, FmError *err);
void fm_report_free(FmPrepareReport *rep);

/* Counts one observation of an unmapped variable (name of len bytes). */
FmStatus fm_report_unmapped(FmPrepareReport *rep, const char *name, size_t len, FmError *err);

/* Writes the report as text: stays, labels, observations by variable and outcome, unmapped
 * variables, events, and missingness per modality (fraction of stays with the modality) and per
 * variable (fraction of stays with any observation of it). */
void fm_report_write_text(const FmPrepareReport *rep, const FmVarMap *map, const FmCohort *c, FILE *out);

#endif
