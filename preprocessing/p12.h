/* PhysioNet/CinC Challenge 2012 record folders (FORMATS.md 1).
 *
 * A folder holds one `<RecordID>.txt` per ICU stay: CSV with header Time,Parameter,Value (found
 * by name), Time as HH:MM since ICU admission. The general descriptors (RecordID, Age, Gender,
 * Height, ICUType, Weight) are recognised by name at 00:00, wherever they are in the file
 * (about 90 records per set interleave them with observations): the first 00:00 line of each
 * descriptor name is the descriptor; a repeat (e.g. a second 00:00 Weight) is an observation.
 * RecordID gives the stay id and must match the file name (other files are ignored). Every value is checked;
 * -1 is "not recorded" (the builder's sentinel). Records are read in file-name order. */
#ifndef FM_P12_H
#define FM_P12_H

#include "preprocessing/cohort_build.h"
#include "preprocessing/labels.h"

/* Reads every <digits>.txt record of folder `dir` into the builder. Each record's stay must have a row
 * in `labels` (else a format error naming the record file); `label_used` (labels->n flags) is
 * set for the rows matched. Counts lines and records in b->rep. Errors name the record file and
 * line ("set-a/132539.txt:17: column Value: expected a number, got \"1,5\""). */
FmStatus fm_p12_read_dir(const char *dir, FmCohortBuilder *b, const FmLabelTable *labels, uint8_t *label_used,
                         FmError *err);

#endif
