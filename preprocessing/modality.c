#include "preprocessing/modality.h"

#include <string.h>

#include "src/error.h"

static const char *const NAMES[] = {"series", "events", "images", "static"};

const char *fm_modality_kind_name(FmModalityKind kind) {
    FM_ASSERT(kind >= FM_MODALITY_SERIES && kind <= FM_MODALITY_STATIC);
    return NAMES[kind];
}

int fm_modality_kind_parse(const char *name, FmModalityKind *kind) {
    for (int k = FM_MODALITY_SERIES; k <= FM_MODALITY_STATIC; k++) {
        if (strcmp(name, NAMES[k]) == 0) {
            *kind = (FmModalityKind)k;
            return 0;
        }
    }
    return -1;
}
