/* Names of the modality kinds (preprocessing/batch.h) as written in cohort and model files. */
#ifndef FM_MODALITY_H
#define FM_MODALITY_H

#include "preprocessing/batch.h"

/* "series", "events", "images", "static". */
const char *fm_modality_kind_name(FmModalityKind kind);

/* The kind called `name`; returns 0 on success, -1 for an unknown name. */
int fm_modality_kind_parse(const char *name, FmModalityKind *kind);

#endif
