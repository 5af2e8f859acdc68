/* Clinical-note embeddings from HDF5 (one row per note).
 *
 * Layout (FORMATS 5): /stay_id int (N), /time_h float32|float64 (N), /embedding float32|float64
 * (N, F), e.g. F = 768 for ClinicalBERT pooled vectors. Validation and error messages are those
 * of preprocessing/event_h5.h: "notes.h5:/embedding: expected rank 2, got 3";
 * "notes.h5:/embedding: row 17, column 4: value is NaN" (rows 0-based). */
#ifndef FM_NOTES_H5_H
#define FM_NOTES_H5_H

#include "preprocessing/event_table.h"
#include "src/error.h"

/* Reads the notes file `path` into *out (rows in file order, dim = F). On failure *out is empty
 * and err names the file and dataset. The caller frees *out with fm_event_table_free. */
FmStatus fm_notes_read_h5(const char *path, FmEventTable *out, FmError *err);

/* Writes `t` as a notes file (atomically, float32 values, no timestamps: same table, same bytes). */
FmStatus fm_notes_write_h5(const char *path, const FmEventTable *t, FmError *err);

#endif
