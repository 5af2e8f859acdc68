/* The variable-to-modality mapping (FORMATS.md 4): which modality and channel each raw
 * variable feeds, and its physiologically plausible range.
 *
 * File: CSV with header `variable,modality[,min,max]` (columns in any order, further columns
 * such as `unit` ignored, lines starting with '#' are comments). Modalities are numbered in
 * order of first appearance, channels within a modality in file order. The modality named
 * `static` holds descriptors (kind FM_MODALITY_STATIC); every other modality is an irregular
 * series (FM_MODALITY_SERIES). A variable may appear at most once as a series channel and at
 * most once in `static` (P12's Weight is both: the admission descriptor and a time series).
 * An empty min or max means no bound on that side. An optional column `transform` may say
 * `log1p` for a skewed non-negative variable (min >= 0 required): its valid values are stored
 * as log(1 + x) and its channel is named "log1p(<variable>)", so standardisation sees a less
 * heavy tail and a model fitted on transformed values cannot be applied to untransformed ones
 * unnoticed (the channel names differ). Empty or `none` means no transform. Ranges stay in the
 * variable's own units (they are checked before the transform). */
#ifndef FM_VAR_MAP_H
#define FM_VAR_MAP_H

#include <stddef.h>

#include "preprocessing/batch.h"
#include "src/error.h"

typedef struct {
    char *name;   /* the variable's name in the data */
    int modality; /* index into FmVarMap.mods */
    int channel;  /* channel within that modality */
    double min;   /* plausible range, inclusive; -INFINITY / +INFINITY when unbounded */
    double max;
    int log1p; /* 1: valid values are stored as log(1 + x) (transform column) */
    long line; /* line in the mapping file, for messages */
} FmVarEntry;

typedef struct {
    char *name;          /* modality name, [A-Za-z0-9_-]+ */
    FmModalityKind kind; /* FM_MODALITY_SERIES or FM_MODALITY_STATIC */
    int C;               /* channels */
    int *entry;          /* (C) entry index of each channel */
} FmVarModality;

typedef struct {
    int n_entries;
    FmVarEntry *entries;
    int n_mods;
    FmVarModality *mods;
    /* Name lookup (open addressing over distinct names). */
    size_t slots;
    int *slot_series; /* (slots) series entry of the name in the slot, or -1 */
    int *slot_static; /* (slots) static entry, or -1 */
    int *slot_name;   /* (slots) an entry index carrying the name, or -1 = empty slot */
} FmVarMap;

/* Names of the modalities the event readers produce; a mapping file may not use them. */
#define FM_MODALITY_NAME_NOTES "notes"
#define FM_MODALITY_NAME_IMAGE_FEATURES "image_features"
#define FM_MODALITY_NAME_IMAGES "images"

/* Reads and validates a mapping file. On failure *map is empty (nothing to free) and err names
 * the file and line: "map.csv:7: column min: expected a number, got \"low\"", "map.csv:9:
 * variable 'HR' is already a channel of modality 'vitals' (line 2)". */
FmStatus fm_var_map_read(const char *path, FmVarMap *map, FmError *err);

/* Frees everything; NULL or an empty map is accepted. */
void fm_var_map_free(FmVarMap *map);

/* Looks up a variable name (len bytes, not necessarily NUL-terminated). Sets *series_entry and
 * *static_entry (either may be NULL) to entry indices or -1; returns 1 if the name is mapped at
 * all, else 0. */
int fm_var_map_lookup(const FmVarMap *map, const char *name, size_t len, int *series_entry,
                      int *static_entry);

/* Index of the modality called `name`, or -1. */
int fm_var_map_modality(const FmVarMap *map, const char *name);

#endif
