/* PNG images as grayscale float pixels, and resampling to the model's square size.
 *
 * Decoding (libpng) accepts every PNG the standard defines: bit depth 1, 2, 4, 8 or 16;
 * grayscale, gray+alpha, RGB, RGBA or palette; tRNS transparency; Adam7 interlacing.
 * Conversion to one gray value g in [0, 1] per pixel, with each sample divided by its maximum
 * (1, 3, 15, 255 or 65535; palette entries by 255):
 *   gray:  g = Y
 *   RGB:   g = 0.299 R + 0.587 G + 0.114 B       (ITU-R BT.601 luma weights)
 *   alpha: g = Y * A                             (composited on a black background)
 * Samples are used as stored: gamma (gAMA, sRGB, iCCP chunks) is not applied, so a file's
 * encoded values are what the model sees, and the alpha blend happens in that encoded space. */
#ifndef FM_PNG_IMAGE_H
#define FM_PNG_IMAGE_H

#include <stdint.h>

#include "src/error.h"

/* Largest width or height accepted (FM_ERR_UNSUPPORTED beyond): 16384 x 16384 pixels is 1 GiB
 * of float output already. */
#define FM_PNG_MAX_SIDE 16384

/* Decodes `path` into *pixels (height rows of width values, row-major, in [0, 1]), allocated
 * with fm_malloc and owned by the caller (fm_free). On failure *pixels is NULL, nothing leaks,
 * and err names the file: FM_ERR_IO (cannot open or read), FM_ERR_FORMAT ("not a PNG file",
 * "truncated PNG file", "corrupt PNG file: <libpng's reason>"), FM_ERR_UNSUPPORTED (larger
 * than FM_PNG_MAX_SIDE), FM_ERR_NOMEM (also for libpng's own allocations, which go through
 * src/alloc.h). */
FmStatus fm_png_read_gray(const char *path, float **pixels, int *width, int *height, FmError *err);

/* Resamples the (h, w) image `src` (row-major) to the (S, S) image `dst`, each axis on its own
 * (the two passes are linear and separable, so the order does not matter):
 *   shrinking an axis (S < n): area averaging. Output pixel k covers source interval
 *     [k n/S, (k+1) n/S) and is the mean of the source pixels over it, each weighted by the
 *     length of its overlap (partial pixels count partially). Integer factors give plain block
 *     means. Matches PIL's Image.resize(..., Image.BOX).
 *   enlarging an axis (S > n): bilinear interpolation with pixel centres aligned
 *     (source coordinate (k + 0.5) n/S - 0.5, clamped to [0, n - 1]); as PyTorch's
 *     interpolate(mode="bilinear", align_corners=False) and PIL's BILINEAR when enlarging.
 *   S == n: a copy.
 * Both are convex combinations: the output stays within the input's range. No allocation;
 * src and dst must not overlap; w, h, S >= 1. */
void fm_image_resize(const float *src, int w, int h, float *dst, int S);

/* Encodes the 8-bit grayscale (height, width) image `pixels` as a PNG at `path`, atomically
 * (temporary file, then rename). The bytes depend only on the pixels. */
FmStatus fm_png_write_gray8(const char *path, const uint8_t *pixels, int width, int height, FmError *err);

#endif
