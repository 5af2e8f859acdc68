#include "preprocessing/image_features_h5.h"

#include "preprocessing/event_h5.h"

#define FEATURES_VALUES "features"

FmStatus fm_image_features_read_h5(const char *path, FmEventTable *out, FmError *err) {
    return fm_event_h5_read(path, FEATURES_VALUES, out, err);
}

FmStatus fm_image_features_write_h5(const char *path, const FmEventTable *t, FmError *err) {
    return fm_event_h5_write(path, FEATURES_VALUES, t, err);
}
