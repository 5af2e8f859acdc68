/* Image pixels listed by an index CSV (FORMATS 7), decoded and resized to S x S.
 *
 * The index has a header naming the columns stay_id, time_h and path (in any order; other
 * columns are ignored), then one row per image:
 *     stay_id,time_h,path
 *     200001,3.25,200001_0.png
 *     200001,30.5,/data/cxr/img_17.png
 * stay_id is a 64-bit integer, time_h a finite number of hours since ICU admission, path a PNG
 * file relative to the index file's folder (or absolute). Each PNG is read with
 * fm_png_read_gray (any bit depth and colour type, BT.601 luma, alpha composited on black) and
 * resampled with fm_image_resize (area averaging when shrinking, bilinear when enlarging) to
 * S x S values in [0, 1]. Blank lines are skipped; LF and CRLF line ends are accepted; a UTF-8
 * byte-order mark before the header is ignored. */
#ifndef FM_IMAGE_INDEX_H
#define FM_IMAGE_INDEX_H

#include "preprocessing/event_table.h"
#include "src/error.h"

/* Largest S accepted (FM_ERR_ARG beyond). */
#define FM_IMAGE_INDEX_MAX_SIZE 4096

/* Reads `index_csv` and every image it lists into *out: n = data rows (file order),
 * dim = S * S, values row-major. On failure *out is empty and nothing leaks. Errors name the
 * CSV line (1-based, header = line 1) and, for an image, the PNG:
 *   "index.csv:7: column time_h: expected a number, got \"abc\""            (FM_ERR_FORMAT)
 *   "index.csv:1: missing column 'path'"                                   (FM_ERR_FORMAT)
 *   "index.csv:4: img/3.png: cannot open: No such file or directory"       (FM_ERR_IO)
 *   "index.csv:5: img/4.png: not a PNG file"                               (FM_ERR_FORMAT)
 * (where = "index.csv:N", message = the rest). S outside 1..FM_IMAGE_INDEX_MAX_SIZE is
 * FM_ERR_ARG. The caller frees *out with fm_event_table_free. */
FmStatus fm_image_index_read(const char *index_csv, int S, FmEventTable *out, FmError *err);

#endif
