#include "preprocessing/notes_h5.h"

#include "preprocessing/event_h5.h"

#define NOTES_VALUES "embedding"

FmStatus fm_notes_read_h5(const char *path, FmEventTable *out, FmError *err) {
    return fm_event_h5_read(path, NOTES_VALUES, out, err);
}

FmStatus fm_notes_write_h5(const char *path, const FmEventTable *t, FmError *err) {
    return fm_event_h5_write(path, NOTES_VALUES, t, err);
}
