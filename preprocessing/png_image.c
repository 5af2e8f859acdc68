#include "preprocessing/png_image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"

/* ------------------------------------------------------------------------------------------ */
/* libpng plumbing shared by reading and writing.                                             */

/* State of one libpng call sequence. It lives in the frame of the function that calls the
 * function holding setjmp, so its fields keep their values across libpng's longjmp (C11
 * 7.13.2.1: only non-volatile locals of the setjmp caller become indeterminate). */
typedef struct {
    const char *path;
    FILE *f;
    png_structp png;
    png_infop info;
    unsigned char *raw; /* decoded rows (height * rowbytes) */
    png_bytep *rows;    /* (height) pointers into raw */
    float *pixels;      /* the result */
    int oom;            /* an allocation made for libpng failed */
    int read_failed;    /* fread reported an I/O error (not end of file); read_errno says which */
    int read_errno;
    int truncated; /* fread reached end of file early */
    char msg[200]; /* libpng's error message */
} PngState;

/* libpng's allocations go through the project's wrapper so tests can make them fail. */
static png_voidp png_alloc_cb(png_structp png, png_alloc_size_t size) {
    void *p = fm_malloc(size);
    if (!p) {
        PngState *s = png_get_mem_ptr(png);
        if (s) s->oom = 1;
    }
    return p;
}

static void png_free_cb(png_structp png, png_voidp p) {
    (void)png;
    fm_free(p);
}

/* libpng reports an error: keep the message and unwind to the setjmp in the decode/encode step.
 * libpng requires this callback not to return. */
static void png_error_cb(png_structp png, png_const_charp msg) {
    PngState *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

/* Warnings (e.g. a bad ancillary chunk CRC, which libpng skips) do not stop decoding; the
 * library does not print, so they are dropped. */
static void png_warning_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Reads through stdio, telling end of file (a truncated PNG) apart from an I/O error. */
static void png_read_cb(png_structp png, png_bytep out, png_size_t len) {
    PngState *s = png_get_io_ptr(png);
    if (fread(out, 1, len, s->f) == len) return;
    if (ferror(s->f)) {
        s->read_failed = 1;
        s->read_errno = errno;
    } else {
        s->truncated = 1;
    }
    png_error(png, "read failed");
}

/* ------------------------------------------------------------------------------------------ */
/* Reading.                                                                                   */

/* One sample of a row of 8- or 16-bit samples (16-bit samples are big-endian in PNG). */
static inline unsigned sample_at(const unsigned char *row, size_t i, int depth) {
    return depth == 16 ? ((unsigned)row[2 * i] << 8) | row[2 * i + 1] : row[i];
}

/* Converts the decoded rows (channels 1 = G, 2 = GA, 3 = RGB, 4 = RGBA, depth 8 or 16) to gray
 * in [0, 1] by the rules in the header. */
static void rows_to_gray(PngState *s, int w, int h, int channels, int depth) {
    const double maxv = depth == 16 ? 65535.0 : 255.0;
    const int color = channels >= 3, alpha = channels == 2 || channels == 4;
    for (int y = 0; y < h; y++) {
        const unsigned char *row = s->rows[y];
        float *out = s->pixels + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++) {
            size_t base = (size_t)x * (size_t)channels;
            double g;
            if (color)
                g = (0.299 * sample_at(row, base, depth) + 0.587 * sample_at(row, base + 1, depth) +
                     0.114 * sample_at(row, base + 2, depth)) /
                    maxv;
            else
                g = sample_at(row, base, depth) / maxv;
            if (alpha) g *= sample_at(row, base + (size_t)channels - 1, depth) / maxv;
            out[x] = (float)(g < 0.0 ? 0.0 : g > 1.0 ? 1.0 : g);
        }
    }
}

/* The libpng calls. Every exit after setjmp either returns a status set here or comes back
 * through longjmp; the caller releases whatever s holds in both cases. */
static FmStatus decode(PngState *s, int *width, int *height, FmError *err) {
    if (setjmp(png_jmpbuf(s->png))) {
        if (s->oom) return FM_FAIL(err, FM_ERR_NOMEM, s->path, "out of memory decoding PNG");
        if (s->read_failed)
            return FM_FAIL(err, FM_ERR_IO, s->path, "read error: %s", strerror(s->read_errno));
        if (s->truncated) return FM_FAIL(err, FM_ERR_FORMAT, s->path, "truncated PNG file");
        return FM_FAIL(err, FM_ERR_FORMAT, s->path, "corrupt PNG file: %s", s->msg);
    }
    png_set_read_fn(s->png, s, png_read_cb);
    png_set_sig_bytes(s->png, 8);
    png_read_info(s->png, s->info);
    png_uint_32 w, h;
    int depth, color_type, interlace;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &color_type, &interlace, NULL, NULL);
    if (w > FM_PNG_MAX_SIDE || h > FM_PNG_MAX_SIDE)
        return FM_FAIL(err, FM_ERR_UNSUPPORTED, s->path,
                       "image is %lu x %lu pixels; at most %d per side is supported", (unsigned long)w,
                       (unsigned long)h, FM_PNG_MAX_SIDE);
    /* Normalise to 8 or 16 bits per sample, gray or RGB, with alpha when the file has any. */
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
    if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (png_get_valid(s->png, s->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(s->png);
    (void)png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);
    int channels = png_get_channels(s->png, s->info);
    int out_depth = png_get_bit_depth(s->png, s->info);
    size_t rowbytes = png_get_rowbytes(s->png, s->info);
    FM_ASSERT(channels >= 1 && channels <= 4 && (out_depth == 8 || out_depth == 16));
    s->raw = fm_malloc_array(h, rowbytes);
    s->rows = fm_malloc_array(h, sizeof *s->rows);
    s->pixels = fm_malloc_array((size_t)w * h, sizeof *s->pixels);
    if (!s->raw || !s->rows || !s->pixels)
        return FM_FAIL(err, FM_ERR_NOMEM, s->path, "out of memory for a %lu x %lu image", (unsigned long)w,
                       (unsigned long)h);
    for (png_uint_32 y = 0; y < h; y++)
        s->rows[y] = s->raw + (size_t)y * rowbytes;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, NULL); /* checks the rest of the file, so truncation is never silent */
    rows_to_gray(s, (int)w, (int)h, channels, out_depth);
    *width = (int)w;
    *height = (int)h;
    return FM_OK;
}

FmStatus fm_png_read_gray(const char *path, float **pixels, int *width, int *height, FmError *err) {
    *pixels = NULL;
    *width = *height = 0;
    PngState s;
    memset(&s, 0, sizeof s);
    s.path = path;
    s.f = fopen(path, "rb");
    if (!s.f) return FM_FAIL(err, FM_ERR_IO, path, "cannot open: %s", strerror(errno));
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, s.f);
    FmStatus st = FM_OK;
    if (got < sizeof sig && ferror(s.f))
        st = FM_FAIL(err, FM_ERR_IO, path, "read error: %s", strerror(errno));
    else if (got < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, path, "not a PNG file");
    if (st == FM_OK) {
        s.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &s, png_error_cb, png_warning_cb, &s,
                                         png_alloc_cb, png_free_cb);
        if (s.png) s.info = png_create_info_struct(s.png);
        if (!s.png || !s.info)
            st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory starting the PNG decoder");
    }
    if (st == FM_OK) st = decode(&s, width, height, err);
    if (s.png) png_destroy_read_struct(&s.png, s.info ? &s.info : NULL, NULL);
    fclose(s.f);
    fm_free(s.raw);
    fm_free(s.rows);
    if (st != FM_OK) {
        fm_free(s.pixels);
        *width = *height = 0;
        return st;
    }
    *pixels = s.pixels;
    return FM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Resampling.                                                                                */

/* The source pixels and weights that make output index k along an axis of n source pixels. */
typedef struct {
    int first, last; /* source pixels first..last (inclusive) contribute */
    int area;        /* 1: area averaging over [a, b); 0: bilinear */
    double a, b;     /* area: the covered source interval */
    double frac;     /* bilinear: weight of pixel `last` (first gets 1 - frac) */
} AxisTaps;

static AxisTaps axis_taps(int k, int n, int S) {
    AxisTaps t;
    memset(&t, 0, sizeof t);
    if (S < n) {
        t.area = 1;
        t.a = (double)k * n / S;
        t.b = (double)(k + 1) * n / S;
        t.first = (int)floor(t.a);
        t.last = (int)ceil(t.b) - 1;
        if (t.last > n - 1) t.last = n - 1;
        return t;
    }
    double c = (k + 0.5) * n / S - 0.5;
    if (c < 0) c = 0;
    if (c > n - 1) c = n - 1;
    t.first = (int)floor(c);
    t.last = t.first + 1 < n ? t.first + 1 : t.first;
    t.frac = t.last == t.first ? 0.0 : c - t.first;
    return t;
}

/* Weight of source pixel i in output t (weights over first..last sum to 1). */
static inline double tap_weight(const AxisTaps *t, int i) {
    if (t->area) {
        double lo = t->a > i ? t->a : i, hi = t->b < i + 1 ? t->b : i + 1;
        return (hi - lo) / (t->b - t->a);
    }
    if (t->first == t->last) return 1.0;
    return i == t->first ? 1.0 - t->frac : t->frac;
}

void fm_image_resize(const float *src, int w, int h, float *dst, int S) {
    FM_ASSERT(w >= 1 && h >= 1 && S >= 1);
    for (int y = 0; y < S; y++) {
        AxisTaps ty = axis_taps(y, h, S);
        for (int x = 0; x < S; x++) {
            AxisTaps tx = axis_taps(x, w, S);
            double sum = 0.0;
            for (int j = ty.first; j <= ty.last; j++) {
                const float *row = src + (size_t)j * (size_t)w;
                double row_sum = 0.0;
                for (int i = tx.first; i <= tx.last; i++)
                    row_sum += tap_weight(&tx, i) * row[i];
                sum += tap_weight(&ty, j) * row_sum;
            }
            dst[(size_t)y * S + x] = (float)sum;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Writing.                                                                                   */

static FmStatus encode(PngState *s, const uint8_t *pixels, int width, int height, FmError *err) {
    if (setjmp(png_jmpbuf(s->png))) {
        if (s->oom) return FM_FAIL(err, FM_ERR_NOMEM, s->path, "out of memory encoding PNG");
        return FM_FAIL(err, FM_ERR_IO, s->path, "cannot write PNG: %s", s->msg);
    }
    png_init_io(s->png, s->f);
    png_set_IHDR(s->png, s->info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(s->png, s->info);
    for (int y = 0; y < height; y++)
        png_write_row(s->png, pixels + (size_t)y * (size_t)width);
    png_write_end(s->png, NULL);
    return FM_OK;
}

FmStatus fm_png_write_gray8(const char *path, const uint8_t *pixels, int width, int height, FmError *err) {
    FM_ASSERT(width >= 1 && height >= 1);
    FmAtomicFile af;
    FmStatus st = fm_atomic_open(&af, path, err);
    if (st != FM_OK) return st;
    PngState s;
    memset(&s, 0, sizeof s);
    s.path = path;
    s.f = af.f;
    s.png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &s, png_error_cb, png_warning_cb, &s,
                                      png_alloc_cb, png_free_cb);
    if (s.png) s.info = png_create_info_struct(s.png);
    if (!s.png || !s.info) st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory starting the PNG encoder");
    if (st == FM_OK) st = encode(&s, pixels, width, height, err);
    if (s.png) png_destroy_write_struct(&s.png, s.info ? &s.info : NULL);
    if (st != FM_OK) {
        fm_atomic_discard(&af);
        return st;
    }
    return fm_atomic_close(&af, err);
}
