/* The cohort file (declared in preprocessing/cohort.h): one HDF5 file.
 *
 *   /                          attributes: format = "fusemoe-cohort", format_version, n_stays,
 *                              window_h, los_threshold_days, los_log_offset_days, std_floor,
 *                              has_sentinel, sentinel, seed, split_spec, sources,
 *                              duplicate_rule, created_by
 *   /stay_id                   int64 (N)
 *   /labels/value              float32 (N, n_labels), NaN where unknown
 *   /labels/mask               uint8 (N, n_labels), 1 = known
 *   /labels/name, kind, task   strings (n_labels); kind is "binary" or "regression"
 *   /scores/saps_i, sofa       float32 (N), admission scores, NaN where unknown (optional:
 *                              present when the inputs had them, e.g. P12 outcome files)
 *   /modality_names            strings (M), the modality order
 *   /modalities/<name>/        attributes kind ("series", "events", "images", "static"), C,
 *                              image_size, standardise, max_L
 *       channel                strings (C)        SERIES and STATIC only
 *       range_min, range_max   float64 (C)        SERIES and STATIC only (+-inf = no bound)
 *       offset                 int64 (N + 1)      stay i owns rows offset[i] .. offset[i+1]-1
 *       count                  int32 (N)
 *       present                uint8 (N)
 *       time                   float32 (T)        hours since admission
 *       value                  float32 (T, C)     cleaned, not standardised
 *       mask                   uint8 (T, C)       SERIES and STATIC only
 *   /splits/names              strings (S)
 *   /splits/part               uint8 (S, N)       0 train, 1 val, 2 test, 3 none
 *   /splits/norm/<s>/          statistics of split s (s = 0..S-1), fm_norm_write_h5 layout
 *
 * Large datasets are chunked and deflate-compressed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/cohort.h"
#include "preprocessing/h5_strings.h"
#include "preprocessing/id_index.h"
#include "preprocessing/modality.h"
#include "preprocessing/splits.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/h5io.h"
#include "src/version.h"

#define FORMAT_NAME "fusemoe-cohort"

static const char *label_kind_name(FmLabelKind k) {
    return k == FM_LABEL_BINARY ? "binary" : "regression";
}

/* ---- save ---- */

static FmStatus write_modality(hid_t file, const FmCohort *c, const FmCohortModality *md, FmError *err) {
    char gname[600];
    snprintf(gname, sizeof gname, "modalities/%s", md->name);
    hid_t g;
    FmStatus st = fm_h5_group_create(file, gname, &g, err);
    if (st != FM_OK) return st;
    hsize_t n1[1] = {(hsize_t)c->N + 1}, n[1] = {(hsize_t)c->N}, t[1] = {(hsize_t)md->T};
    hsize_t tc[2] = {(hsize_t)md->T, (hsize_t)md->C}, cdim[1] = {(hsize_t)md->C};
    st = fm_h5_attr_write_str(g, "kind", fm_modality_kind_name(md->kind), err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(g, "C", md->C, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(g, "image_size", md->image_size, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(g, "standardise", md->standardise, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(g, "max_L", md->max_L, err);
    if (st == FM_OK && md->channel)
        st = fm_h5_strings_write(g, "channel", (const char *const *)md->channel, (size_t)md->C, err);
    if (st == FM_OK && md->range_min)
        st = fm_h5_write(g, "range_min", FM_H5_F64, 1, cdim, md->range_min, 0, err);
    if (st == FM_OK && md->range_max)
        st = fm_h5_write(g, "range_max", FM_H5_F64, 1, cdim, md->range_max, 0, err);
    if (st == FM_OK) st = fm_h5_write(g, "offset", FM_H5_I64, 1, n1, md->offset, 1, err);
    if (st == FM_OK) st = fm_h5_write(g, "count", FM_H5_I32, 1, n, md->count, 1, err);
    if (st == FM_OK) st = fm_h5_write(g, "present", FM_H5_U8, 1, n, md->present, 1, err);
    if (st == FM_OK) st = fm_h5_write(g, "time", FM_H5_F32, 1, t, md->time, 1, err);
    if (st == FM_OK) st = fm_h5_write(g, "value", FM_H5_F32, 2, tc, md->value, 1, err);
    if (st == FM_OK && md->mask) st = fm_h5_write(g, "mask", FM_H5_U8, 2, tc, md->mask, 1, err);
    H5Gclose(g);
    return st;
}

static FmStatus write_all(hid_t file, const FmCohort *c, FmError *err) {
    const FmCohortSettings *s = &c->settings;
    FmStatus st = fm_h5_attr_write_str(file, "format", FORMAT_NAME, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "format_version", FM_COHORT_FORMAT_VERSION, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "n_stays", c->N, err);
    if (st == FM_OK) st = fm_h5_attr_write_f64(file, "window_h", s->window_h, err);
    if (st == FM_OK) st = fm_h5_attr_write_f64(file, "los_threshold_days", s->los_threshold_days, err);
    if (st == FM_OK) st = fm_h5_attr_write_f64(file, "los_log_offset_days", s->los_log_offset_days, err);
    if (st == FM_OK) st = fm_h5_attr_write_f64(file, "std_floor", s->std_floor, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "has_sentinel", s->has_sentinel, err);
    if (st == FM_OK) st = fm_h5_attr_write_f64(file, "sentinel", s->sentinel, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "seed", (int64_t)s->seed, err);
    if (st == FM_OK) st = fm_h5_attr_write_str(file, "split_spec", s->split_spec ? s->split_spec : "", err);
    if (st == FM_OK) st = fm_h5_attr_write_str(file, "sources", s->sources ? s->sources : "", err);
    if (st == FM_OK)
        st = fm_h5_attr_write_str(file, "duplicate_rule", s->duplicate_rule ? s->duplicate_rule : "", err);
    if (st == FM_OK) st = fm_h5_attr_write_str(file, "created_by", "fusemoe " FM_VERSION, err);
    hsize_t n[1] = {(hsize_t)c->N};
    if (st == FM_OK) st = fm_h5_write(file, "stay_id", FM_H5_I64, 1, n, c->stay_id, 1, err);

    /* labels */
    hid_t g;
    if (st == FM_OK) st = fm_h5_group_create(file, "labels", &g, err);
    if (st == FM_OK) {
        hsize_t nl[2] = {(hsize_t)c->N, (hsize_t)c->n_labels};
        int L = c->n_labels;
        const char **names = fm_calloc((size_t)L + 1, sizeof *names),
                   **kinds = fm_calloc((size_t)L + 1, sizeof *kinds),
                   **tasks = fm_calloc((size_t)L + 1, sizeof *tasks);
        if (!names || !kinds || !tasks) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory writing labels");
        for (int l = 0; st == FM_OK && l < L; l++) {
            names[l] = c->label_info[l].name;
            kinds[l] = label_kind_name(c->label_info[l].kind);
            tasks[l] = c->label_info[l].task;
        }
        if (st == FM_OK) st = fm_h5_write(g, "value", FM_H5_F32, 2, nl, c->label, 1, err);
        if (st == FM_OK) st = fm_h5_write(g, "mask", FM_H5_U8, 2, nl, c->label_mask, 1, err);
        if (st == FM_OK) st = fm_h5_strings_write(g, "name", names, (size_t)L, err);
        if (st == FM_OK) st = fm_h5_strings_write(g, "kind", kinds, (size_t)L, err);
        if (st == FM_OK) st = fm_h5_strings_write(g, "task", tasks, (size_t)L, err);
        fm_free(names);
        fm_free(kinds);
        fm_free(tasks);
        H5Gclose(g);
    }

    /* admission scores */
    if (st == FM_OK && c->saps_i) {
        st = fm_h5_group_create(file, "scores", &g, err);
        if (st == FM_OK) {
            st = fm_h5_write(g, "saps_i", FM_H5_F32, 1, n, c->saps_i, 1, err);
            if (st == FM_OK) st = fm_h5_write(g, "sofa", FM_H5_F32, 1, n, c->sofa, 1, err);
            H5Gclose(g);
        }
    }

    /* modalities */
    if (st == FM_OK) {
        const char **names = fm_calloc((size_t)c->M + 1, sizeof *names);
        if (!names) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory writing modalities");
        for (int m = 0; st == FM_OK && m < c->M; m++)
            names[m] = c->mod[m].name;
        if (st == FM_OK) st = fm_h5_strings_write(file, "modality_names", names, (size_t)c->M, err);
        fm_free(names);
    }
    for (int m = 0; st == FM_OK && m < c->M; m++)
        st = write_modality(file, c, &c->mod[m], err);

    /* splits */
    if (st == FM_OK) st = fm_h5_group_create(file, "splits", &g, err);
    if (st == FM_OK) {
        int S = c->n_splits;
        const char **names = fm_calloc((size_t)S + 1, sizeof *names);
        uint8_t *part = fm_malloc_array((size_t)S * (size_t)c->N + 1, 1);
        if (!names || !part) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory writing splits");
        for (int k = 0; st == FM_OK && k < S; k++) {
            names[k] = c->split[k].name;
            memcpy(part + (size_t)k * (size_t)c->N, c->split[k].part, (size_t)c->N);
        }
        hsize_t sn[2] = {(hsize_t)S, (hsize_t)c->N};
        if (st == FM_OK) st = fm_h5_strings_write(g, "names", names, (size_t)S, err);
        if (st == FM_OK) st = fm_h5_write(g, "part", FM_H5_U8, 2, sn, part, 1, err);
        fm_free(names);
        fm_free(part);
        H5Gclose(g);
        for (int k = 0; st == FM_OK && k < S; k++) {
            char gname[64];
            snprintf(gname, sizeof gname, "splits/norm/%d", k);
            st = fm_norm_write_h5(file, gname, &c->split[k].norm, err);
        }
    }
    return st;
}

FmStatus fm_cohort_save(const FmCohort *c, const char *path, FmError *err) {
    FM_ASSERT(c->loaded == NULL); /* a partly loaded cohort is not the file's content */
    char tmp[FM_PATH_MAX];
    FmStatus st = fm_atomic_temp_path(path, tmp, sizeof tmp, err);
    if (st != FM_OK) return st;
    hid_t file;
    st = fm_h5_create(tmp, &file, err);
    if (st != FM_OK) {
        fm_atomic_abort(tmp);
        return FM_FAIL(err, FM_ERR_IO, path, "cannot create the cohort file");
    }
    st = write_all(file, c, err);
    if (H5Fclose(file) < 0 && st == FM_OK) st = FM_FAIL(err, FM_ERR_IO, path, "cannot close the cohort file");
    if (st != FM_OK) {
        fm_atomic_abort(tmp);
        if (!err || !err->where[0]) {
            if (err) snprintf(err->where, sizeof err->where, "%s", path);
        }
        return st;
    }
    return fm_atomic_commit(tmp, path, err);
}

/* ---- load ---- */

typedef struct {
    hid_t file;
    const char *path;
    FmError *err;
} Loader;

static FmStatus read_ds(Loader *ld, const char *name, FmH5Type type, int rank, hsize_t *dims, void **data) {
    return fm_h5_read(ld->file, ld->path, name, type, rank, dims, data, ld->err);
}

/* "file.h5:/dataset" for messages. */
static const char *ds_where(const Loader *ld, const char *ds, char *buf, size_t cap) {
    snprintf(buf, cap, "%s:/%s", ld->path, ds);
    return buf;
}

#define BAD(ld, ds, ...)                                                                                     \
    FM_FAIL((ld)->err, FM_ERR_FORMAT, ds_where((ld), (ds), where_buf, sizeof where_buf), __VA_ARGS__)

/* Checks rows [0, n) of a modality read into memory (file rows first_row[k] for messages:
 * row k of memory is file row file_row(k)). */
static FmStatus check_rows(Loader *ld, const FmCohort *c, const FmCohortModality *md, const char *g,
                           const int64_t *file_row) {
    char ds[700], where_buf[1400];
    const size_t C = (size_t)md->C;
    snprintf(ds, sizeof ds, "%s/time", g);
    for (int64_t r = 0; r < md->T; r++)
        if (!(md->time[r] >= 0 && md->time[r] <= c->settings.window_h))
            return BAD(ld, ds, "row %lld: time %g h is outside [0, %g]", (long long)(file_row ? file_row[r] : r),
                       (double)md->time[r], c->settings.window_h);
    for (int64_t r = 0; r < md->T; r++) {
        const int64_t fr = file_row ? file_row[r] : r;
        for (size_t j = 0; j < C; j++) {
            const size_t k = (size_t)r * C + j, fk = (size_t)fr * C + j;
            if (md->mask && md->mask[k] > 1) {
                snprintf(ds, sizeof ds, "%s/mask", g);
                return BAD(ld, ds, "entry %zu: mask value %d (expected 0 or 1)", fk, md->mask[k]);
            }
            if ((!md->mask || md->mask[k]) && !isfinite(md->value[k])) {
                snprintf(ds, sizeof ds, "%s/value", g);
                return BAD(ld, ds, "entry %lld is not finite", (long long)fk);
            }
        }
    }
    return FM_OK;
}

static FmStatus read_modality(Loader *ld, FmCohort *c, FmCohortModality *md, int with_rows) {
    char g[600], ds[700], where[1200], where_buf[1400];
    snprintf(g, sizeof g, "modalities/%s", md->name);
    snprintf(where, sizeof where, "%s:/%s", ld->path, g);
    hid_t grp;
    FmStatus st = fm_h5_group_open(ld->file, ld->path, g, &grp, ld->err);
    if (st != FM_OK) return st;
    char *kind = NULL;
    int64_t C = 0, S = 0, stdz = 0, max_L = 0;
    st = fm_h5_attr_read_str(grp, where, "kind", &kind, ld->err);
    if (st == FM_OK && fm_modality_kind_parse(kind, &md->kind) != 0)
        st = FM_FAIL(ld->err, FM_ERR_FORMAT, where, "unknown modality kind '%s'", kind);
    fm_free(kind);
    if (st == FM_OK) st = fm_h5_attr_read_i64(grp, where, "C", &C, ld->err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(grp, where, "image_size", &S, ld->err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(grp, where, "standardise", &stdz, ld->err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(grp, where, "max_L", &max_L, ld->err);
    H5Gclose(grp);
    if (st != FM_OK) return st;
    if (C < 1 || C > (1 << 24))
        return FM_FAIL(ld->err, FM_ERR_FORMAT, where, "invalid channel count %lld", (long long)C);
    if (md->kind == FM_MODALITY_IMAGES && (S < 1 || S * S != C))
        return FM_FAIL(ld->err, FM_ERR_FORMAT, where, "image_size %lld does not match %lld pixels",
                       (long long)S, (long long)C);
    md->C = (int)C;
    md->image_size = md->kind == FM_MODALITY_IMAGES ? (int)S : 0;
    md->standardise = stdz != 0;
    int per_channel = md->kind == FM_MODALITY_SERIES || md->kind == FM_MODALITY_STATIC;
    hsize_t d1[1], d2[2];
    if (per_channel) {
        size_t n;
        snprintf(ds, sizeof ds, "%s/channel", g);
        st = fm_h5_strings_read(ld->file, ld->path, ds, (size_t)C, &md->channel, &n, ld->err);
        if (st != FM_OK) return st;
        d1[0] = (hsize_t)C;
        snprintf(ds, sizeof ds, "%s/range_min", g);
        if ((st = read_ds(ld, ds, FM_H5_F64, 1, d1, (void **)&md->range_min)) != FM_OK) return st;
        snprintf(ds, sizeof ds, "%s/range_max", g);
        if ((st = read_ds(ld, ds, FM_H5_F64, 1, d1, (void **)&md->range_max)) != FM_OK) return st;
    }
    snprintf(ds, sizeof ds, "%s/offset", g);
    d1[0] = (hsize_t)c->N + 1;
    if ((st = read_ds(ld, ds, FM_H5_I64, 1, d1, (void **)&md->offset)) != FM_OK) return st;
    if (md->offset[0] != 0) return BAD(ld, ds, "offset[0] is %lld, expected 0", (long long)md->offset[0]);
    for (int64_t i = 0; i < c->N; i++)
        if (md->offset[i + 1] < md->offset[i])
            return BAD(ld, ds, "offsets decrease at stay %lld (%lld)", (long long)i,
                       (long long)md->offset[i + 1]);
    md->T = md->offset[c->N];
    snprintf(ds, sizeof ds, "%s/count", g);
    d1[0] = (hsize_t)c->N;
    if ((st = read_ds(ld, ds, FM_H5_I32, 1, d1, (void **)&md->count)) != FM_OK) return st;
    snprintf(ds, sizeof ds, "%s/present", g);
    if ((st = read_ds(ld, ds, FM_H5_U8, 1, d1, (void **)&md->present)) != FM_OK) return st;
    int64_t L = 0;
    char ds_count[700], ds_offset[700];
    snprintf(ds_count, sizeof ds_count, "%s/count", g);
    snprintf(ds_offset, sizeof ds_offset, "%s/offset", g);
    for (int64_t i = 0; i < c->N; i++) {
        int64_t cnt = md->offset[i + 1] - md->offset[i];
        if (md->count[i] != cnt)
            return BAD(ld, ds_count, "count of stay %lld disagrees with the offsets (%lld)", (long long)i,
                       (long long)cnt);
        if (md->present[i] != (cnt > 0))
            return BAD(ld, ds, "presence flag of stay %lld disagrees with its %lld rows", (long long)i,
                       (long long)cnt);
        if (md->kind == FM_MODALITY_STATIC && cnt > 1)
            return BAD(ld, ds_offset, "static stay %lld has %lld rows, expected at most 1", (long long)i,
                       (long long)cnt);
        if (cnt > L) L = cnt;
    }
    md->max_L = (int)L;
    if (L != max_L)
        return BAD(ld, g, "max_L attribute is %lld but the largest count is %lld", (long long)max_L,
                   (long long)L);
    if (!with_rows) {
        md->T = 0; /* the offsets stay the file's until fm_cohort_load_rows */
        return FM_OK;
    }
    snprintf(ds, sizeof ds, "%s/time", g);
    d1[0] = (hsize_t)md->T;
    if ((st = read_ds(ld, ds, FM_H5_F32, 1, d1, (void **)&md->time)) != FM_OK) return st;
    snprintf(ds, sizeof ds, "%s/value", g);
    d2[0] = (hsize_t)md->T;
    d2[1] = (hsize_t)C;
    if ((st = read_ds(ld, ds, FM_H5_F32, 2, d2, (void **)&md->value)) != FM_OK) return st;
    if (per_channel) {
        snprintf(ds, sizeof ds, "%s/mask", g);
        d2[0] = (hsize_t)md->T;
        d2[1] = (hsize_t)C;
        if ((st = read_ds(ld, ds, FM_H5_U8, 2, d2, (void **)&md->mask)) != FM_OK) return st;
    }
    return check_rows(ld, c, md, g, NULL);
}

static FmStatus load_all(Loader *ld, FmCohort *c, int with_rows) {
    char where_buf[1400];
    FmError *err = ld->err;
    hid_t f = ld->file;
    char root[1100];
    snprintf(root, sizeof root, "%s", ld->path);
    char *format = NULL;
    int64_t version = 0, n_stays = 0, has_sentinel = 0, seed = 0;
    FmStatus st = fm_h5_attr_read_str(f, root, "format", &format, err);
    if (st == FM_OK && strcmp(format, FORMAT_NAME) != 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, root, "not a cohort file (format '%s')", format);
    fm_free(format);
    if (st == FM_OK) st = fm_h5_attr_read_i64(f, root, "format_version", &version, err);
    if (st == FM_OK && version != FM_COHORT_FORMAT_VERSION)
        st = FM_FAIL(err, FM_ERR_UNSUPPORTED, root, "cohort format version %lld, this build reads version %d",
                     (long long)version, FM_COHORT_FORMAT_VERSION);
    FmCohortSettings *s = &c->settings;
    if (st == FM_OK) st = fm_h5_attr_read_i64(f, root, "n_stays", &n_stays, err);
    if (st == FM_OK) st = fm_h5_attr_read_f64(f, root, "window_h", &s->window_h, err);
    if (st == FM_OK) st = fm_h5_attr_read_f64(f, root, "los_threshold_days", &s->los_threshold_days, err);
    if (st == FM_OK) st = fm_h5_attr_read_f64(f, root, "los_log_offset_days", &s->los_log_offset_days, err);
    if (st == FM_OK) st = fm_h5_attr_read_f64(f, root, "std_floor", &s->std_floor, err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(f, root, "has_sentinel", &has_sentinel, err);
    if (st == FM_OK) st = fm_h5_attr_read_f64(f, root, "sentinel", &s->sentinel, err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(f, root, "seed", &seed, err);
    if (st == FM_OK) st = fm_h5_attr_read_str(f, root, "split_spec", &s->split_spec, err);
    if (st == FM_OK) st = fm_h5_attr_read_str(f, root, "sources", &s->sources, err);
    if (st == FM_OK) st = fm_h5_attr_read_str(f, root, "duplicate_rule", &s->duplicate_rule, err);
    if (st != FM_OK) return st;
    s->has_sentinel = has_sentinel != 0;
    s->seed = (uint64_t)seed;
    if (!(s->window_h > 0 && isfinite(s->window_h)))
        return FM_FAIL(err, FM_ERR_FORMAT, root, "attribute window_h: invalid window %g", s->window_h);

    hsize_t d1[1] = {0}, d2[2];
    if ((st = read_ds(ld, "stay_id", FM_H5_I64, 1, d1, (void **)&c->stay_id)) != FM_OK) return st;
    c->N = (int64_t)d1[0];
    if (c->N != n_stays)
        return BAD(ld, "stay_id", "expected %lld stays (n_stays), got %lld", (long long)n_stays,
                   (long long)c->N);
    {
        FmIdIndex ids;
        fm_id_index_init(&ids);
        for (int64_t i = 0; i < c->N && st == FM_OK; i++) {
            int32_t first;
            st = fm_id_index_put(&ids, c->stay_id[i], (int32_t)i, &first, err);
            if (st == FM_OK && first >= 0)
                st = BAD(ld, "stay_id", "stay %lld appears twice (rows %d and %lld)",
                         (long long)c->stay_id[i], first, (long long)i);
        }
        fm_id_index_free(&ids);
        if (st != FM_OK) return st;
    }

    /* labels */
    size_t n;
    char **names = NULL, **kinds = NULL, **tasks = NULL;
    st = fm_h5_strings_read(f, ld->path, "labels/name", 0, &names, &n, err);
    size_t L = n;
    if (st == FM_OK) st = fm_h5_strings_read(f, ld->path, "labels/kind", L, &kinds, &n, err);
    if (st == FM_OK && n != L)
        st = BAD(ld, "labels/kind", "expected %lld strings, got %lld", (long long)L, (long long)n);
    if (st == FM_OK) st = fm_h5_strings_read(f, ld->path, "labels/task", L, &tasks, &n, err);
    if (st == FM_OK && n != L)
        st = BAD(ld, "labels/task", "expected %lld strings, got %lld", (long long)L, (long long)n);
    if (st == FM_OK) {
        c->label_info = fm_calloc(L + 1, sizeof *c->label_info);
        if (!c->label_info)
            st = FM_FAIL(err, FM_ERR_NOMEM, root, "out of memory");
        else
            c->n_labels = (int)L;
    }
    for (size_t l = 0; st == FM_OK && l < L; l++) {
        FmLabelInfo *li = &c->label_info[l];
        if (strcmp(kinds[l], "binary") == 0)
            li->kind = FM_LABEL_BINARY;
        else if (strcmp(kinds[l], "regression") == 0)
            li->kind = FM_LABEL_REGRESSION;
        else
            st = BAD(ld, "labels/kind", "label %zu has an unknown kind '%s'", l, kinds[l]);
        li->name = names[l];
        li->task = tasks[l];
        names[l] = tasks[l] = NULL;
    }
    fm_h5_strings_free(names, L);
    fm_h5_strings_free(kinds, L);
    fm_h5_strings_free(tasks, L);
    for (size_t l = 0; st == FM_OK && l < L; l++)
        for (size_t k = 0; k < l; k++)
            if (strcmp(c->label_info[l].name, c->label_info[k].name) == 0) {
                st = BAD(ld, "labels/name", "label '%s' appears twice", c->label_info[l].name);
                break;
            }
    if (st != FM_OK) return st;
    d2[0] = (hsize_t)c->N;
    d2[1] = (hsize_t)L;
    /* A zero expected dimension means "any" to fm_h5_read; check the shapes again after. */
    if ((st = read_ds(ld, "labels/value", FM_H5_F32, 2, d2, (void **)&c->label)) != FM_OK) return st;
    if (d2[0] != (hsize_t)c->N || d2[1] != (hsize_t)L)
        return BAD(ld, "labels/value", "expected %lld labels per stay, got %lld", (long long)L,
                   (long long)d2[1]);
    d2[0] = (hsize_t)c->N;
    d2[1] = (hsize_t)L;
    if ((st = read_ds(ld, "labels/mask", FM_H5_U8, 2, d2, (void **)&c->label_mask)) != FM_OK) return st;
    if (d2[0] != (hsize_t)c->N || d2[1] != (hsize_t)L)
        return BAD(ld, "labels/mask", "expected %lld labels per stay, got %lld", (long long)L,
                   (long long)d2[1]);
    for (size_t k = 0; k < (size_t)c->N * L; k++) {
        if (c->label_mask[k] > 1)
            return BAD(ld, "labels/mask", "entry %zu: mask value %d", k, c->label_mask[k]);
        if (c->label_mask[k] && !isfinite(c->label[k]))
            return BAD(ld, "labels/value", "entry %zu is marked known but not finite", k);
    }

    /* admission scores (optional) */
    if (fm_h5_exists(f, "scores")) {
        d1[0] = (hsize_t)c->N;
        if ((st = read_ds(ld, "scores/saps_i", FM_H5_F32, 1, d1, (void **)&c->saps_i)) != FM_OK) return st;
        d1[0] = (hsize_t)c->N;
        if ((st = read_ds(ld, "scores/sofa", FM_H5_F32, 1, d1, (void **)&c->sofa)) != FM_OK) return st;
    }

    /* modalities */
    st = fm_h5_strings_read(f, ld->path, "modality_names", 0, &names, &n, err);
    if (st != FM_OK) return st;
    c->mod = fm_calloc(n + 1, sizeof *c->mod);
    if (!c->mod) {
        fm_h5_strings_free(names, n);
        return FM_FAIL(err, FM_ERR_NOMEM, root, "out of memory");
    }
    c->M = (int)n;
    for (size_t m = 0; m < n; m++) {
        c->mod[m].name = names[m];
        names[m] = NULL;
    }
    fm_h5_strings_free(names, n);
    for (int m = 0; m < c->M; m++)
        for (int k = 0; k < m; k++)
            if (strcmp(c->mod[m].name, c->mod[k].name) == 0)
                return BAD(ld, "modality_names", "modality %d repeats modality %d", m, k);
    for (int m = 0; m < c->M; m++)
        if ((st = read_modality(ld, c, &c->mod[m], with_rows)) != FM_OK) return st;

    /* splits */
    st = fm_h5_strings_read(f, ld->path, "splits/names", 0, &names, &n, err);
    if (st != FM_OK) return st;
    c->split = fm_calloc(n + 1, sizeof *c->split);
    if (!c->split) {
        fm_h5_strings_free(names, n);
        return FM_FAIL(err, FM_ERR_NOMEM, root, "out of memory");
    }
    c->n_splits = (int)n;
    for (size_t k = 0; k < n; k++) {
        c->split[k].name = names[k];
        names[k] = NULL;
    }
    fm_h5_strings_free(names, n);
    uint8_t *part = NULL;
    d2[0] = (hsize_t)c->n_splits;
    d2[1] = (hsize_t)c->N;
    if ((st = read_ds(ld, "splits/part", FM_H5_U8, 2, d2, (void **)&part)) != FM_OK) return st;
    if (d2[0] != (hsize_t)c->n_splits || d2[1] != (hsize_t)c->N) {
        fm_free(part);
        return BAD(ld, "splits/part", "expected %lld splits of the stays, got %lld", (long long)c->n_splits,
                   (long long)d2[0]);
    }
    for (int k = 0; k < c->n_splits && st == FM_OK; k++) {
        c->split[k].part = fm_malloc((size_t)c->N + 1);
        if (!c->split[k].part) {
            st = FM_FAIL(err, FM_ERR_NOMEM, root, "out of memory");
            break;
        }
        memcpy(c->split[k].part, part + (size_t)k * (size_t)c->N, (size_t)c->N);
        for (int64_t i = 0; i < c->N; i++)
            if (c->split[k].part[i] > FM_PART_NONE) {
                st = BAD(ld, "splits/part", "split %d: part code %d (expected 0..3)", k, c->split[k].part[i]);
                break;
            }
    }
    fm_free(part);
    if (st != FM_OK) return st;
    for (int k = 0; k < c->n_splits; k++) {
        char gname[64];
        snprintf(gname, sizeof gname, "splits/norm/%d", k);
        if ((st = fm_norm_read_h5(f, ld->path, gname, &c->split[k].norm, err)) != FM_OK) return st;
    }
    /* Each split's statistics must describe this cohort's modalities and channels. */
    for (int k = 0; k < c->n_splits; k++) {
        FmNorm layout;
        if ((st = fm_cohort_layout_norm(c, &layout, err)) != FM_OK) return st;
        st = fm_norm_check_match(&c->split[k].norm, &layout, "the cohort's modalities", err);
        fm_norm_free(&layout);
        if (st != FM_OK) {
            char where[1200];
            snprintf(where, sizeof where, "%s:/splits/norm/%d", ld->path, k);
            snprintf(err->where, sizeof err->where, "%s", where);
            err->code = FM_ERR_FORMAT;
            return FM_ERR_FORMAT;
        }
    }
    return FM_OK;
}

/* Opens the cohort file and loads it (with its rows, or without them) into *c, which is left
 * empty on failure. */
static FmStatus load_file(const char *path, FmCohort *c, int with_rows, FmError *err) {
    memset(c, 0, sizeof *c);
    hid_t file;
    FmStatus st = fm_h5_open_read(path, &file, err);
    if (st != FM_OK) return st;
    Loader ld = {file, path, err};
    st = load_all(&ld, c, with_rows);
    H5Fclose(file);
    if (st != FM_OK) fm_cohort_free(c);
    return st;
}

FmStatus fm_cohort_load(const char *path, FmCohort *c, FmError *err) {
    FmError local;
    return load_file(path, c, 1, err ? err : &local);
}

FmStatus fm_cohort_load_meta(const char *path, FmCohort *c, FmError *err) {
    FmError local;
    if (!err) err = &local;
    FmStatus st = load_file(path, c, 0, err);
    if (st == FM_OK && !(c->loaded = fm_calloc((size_t)c->N + 1, 1))) {
        st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory");
        fm_cohort_free(c);
    }
    return st;
}

/* Reads rows of dataset `name` (rank 1 or 2, `width` columns, `esize` bytes per value of
 * memory type `mtype`) for the runs [run_lo[k], run_lo[k] + run_len[k]) of file rows, one after
 * the other into `out`. The dataset must have file_T rows. */
static FmStatus read_runs(Loader *ld, const char *name, hid_t mtype, size_t esize, int rank, int64_t width,
                          int64_t file_T, const int64_t *run_lo, const int64_t *run_len, int64_t n_runs, void *out) {
    char where_buf[1400];
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    /* Room for many inflated chunks (256 KiB each, src/h5io.c): runs are read in file order,
     * so each chunk is inflated once. */
    if (dapl >= 0) H5Pset_chunk_cache(dapl, 1009, (size_t)64 << 20, 1.0);
    hid_t ds = H5Dopen2(ld->file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
    if (dapl >= 0) H5Pclose(dapl);
    if (ds < 0) return BAD(ld, name, "missing dataset");
    FmStatus st = FM_OK;
    hid_t fs = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    if (fs < 0 || H5Sget_simple_extent_ndims(fs) != rank) {
        st = BAD(ld, name, "expected rank %d", rank);
    } else {
        H5Sget_simple_extent_dims(fs, dims, NULL);
        if (dims[0] != (hsize_t)file_T || (rank == 2 && dims[1] != (hsize_t)width))
            st = FM_FAIL(ld->err, FM_ERR_MISMATCH, ds_where(ld, name, where_buf, sizeof where_buf),
                         "%llu rows, but the offsets read before give %lld (did the file change?)",
                         (unsigned long long)dims[0], (long long)file_T);
    }
    char *dst = out;
    for (int64_t k = 0; k < n_runs && st == FM_OK; k++) {
        hsize_t start[2] = {(hsize_t)run_lo[k], 0}, count[2] = {(hsize_t)run_len[k], (hsize_t)width};
        hid_t ms = H5Screate_simple(rank, count, NULL);
        herr_t h = ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        if (h >= 0) h = H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, dst);
        if (ms >= 0) H5Sclose(ms);
        if (h < 0) st = FM_FAIL(ld->err, FM_ERR_IO, ds_where(ld, name, where_buf, sizeof where_buf),
                                "cannot read rows %lld to %lld", (long long)run_lo[k],
                                (long long)(run_lo[k] + run_len[k] - 1));
        dst += (size_t)run_len[k] * (size_t)width * esize;
    }
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(ds);
    return st;
}

/* The rows of the wanted stays of one modality; on failure the modality holds no rows and
 * its offsets are unchanged. */
static FmStatus load_modality_rows(Loader *ld, const FmCohort *c, FmCohortModality *md, const uint8_t *want) {
    const int64_t N = c->N, file_T = md->offset[N];
    int64_t T = 0, n_runs = 0;
    for (int64_t i = 0; i < N; i++) {
        if (!want[i] || md->count[i] == 0) continue;
        if (i == 0 || !want[i - 1] || md->count[i - 1] == 0 || md->offset[i] != md->offset[i - 1] + md->count[i - 1])
            n_runs++;
        T += md->count[i];
    }
    int64_t *run_lo = fm_malloc_array((size_t)n_runs + 1, sizeof *run_lo);
    int64_t *run_len = fm_malloc_array((size_t)n_runs + 1, sizeof *run_len);
    int64_t *file_row = fm_malloc_array((size_t)T + 1, sizeof *file_row);
    int64_t *offset = fm_malloc_array((size_t)N + 1, sizeof *offset);
    const size_t C = (size_t)md->C;
    md->time = fm_malloc_array((size_t)T + 1, sizeof *md->time);
    md->value = fm_malloc_array((size_t)T * C + 1, sizeof *md->value);
    int per_channel = md->kind == FM_MODALITY_SERIES || md->kind == FM_MODALITY_STATIC;
    if (per_channel) md->mask = fm_malloc((size_t)T * C + 1);
    FmStatus st = FM_OK;
    if (!run_lo || !run_len || !file_row || !offset || !md->time || !md->value || (per_channel && !md->mask))
        st = FM_FAIL(ld->err, FM_ERR_NOMEM, ld->path, "out of memory for the rows of %s", md->name);
    if (st == FM_OK) {
        int64_t r = 0, k = -1;
        for (int64_t i = 0; i < N; i++) {
            offset[i] = r;
            if (!want[i] || md->count[i] == 0) continue;
            if (k < 0 || run_lo[k] + run_len[k] != md->offset[i]) {
                run_lo[++k] = md->offset[i];
                run_len[k] = 0;
            }
            run_len[k] += md->count[i];
            for (int32_t j = 0; j < md->count[i]; j++) file_row[r++] = md->offset[i] + j;
        }
        offset[N] = r;
        n_runs = k + 1;
        char g[600], name[700];
        snprintf(g, sizeof g, "modalities/%s", md->name);
        snprintf(name, sizeof name, "%s/time", g);
        st = read_runs(ld, name, H5T_NATIVE_FLOAT, sizeof(float), 1, 1, file_T, run_lo, run_len, n_runs, md->time);
        snprintf(name, sizeof name, "%s/value", g);
        if (st == FM_OK)
            st = read_runs(ld, name, H5T_NATIVE_FLOAT, sizeof(float), 2, (int64_t)C, file_T, run_lo, run_len, n_runs,
                           md->value);
        snprintf(name, sizeof name, "%s/mask", g);
        if (st == FM_OK && per_channel)
            st = read_runs(ld, name, H5T_NATIVE_UINT8, 1, 2, (int64_t)C, file_T, run_lo, run_len, n_runs, md->mask);
        md->T = T;
        if (st == FM_OK) st = check_rows(ld, c, md, g, file_row);
    }
    if (st == FM_OK) {
        fm_free(md->offset);
        md->offset = offset;
        offset = NULL;
    } else {
        fm_free(md->time);
        fm_free(md->value);
        fm_free(md->mask);
        md->time = NULL;
        md->value = NULL;
        md->mask = NULL;
        md->T = 0;
    }
    fm_free(run_lo);
    fm_free(run_len);
    fm_free(file_row);
    fm_free(offset);
    return st;
}

FmStatus fm_cohort_load_rows(FmCohort *c, const char *path, const uint8_t *want, FmError *err) {
    FM_ASSERT(c->loaded != NULL); /* after fm_cohort_load_meta, once */
    for (int m = 0; m < c->M; m++) FM_ASSERT(c->mod[m].time == NULL);
    FmError local;
    if (!err) err = &local;
    uint8_t *all = NULL;
    if (!want) {
        if (!(all = fm_malloc((size_t)c->N + 1))) return FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory");
        memset(all, 1, (size_t)c->N + 1);
        want = all;
    }
    hid_t file;
    FmStatus st = fm_h5_open_read(path, &file, err);
    if (st == FM_OK) {
        Loader ld = {file, path, err};
        int m = 0;
        for (; m < c->M && st == FM_OK; m++) st = load_modality_rows(&ld, c, &c->mod[m], want);
        H5Fclose(file);
        if (st != FM_OK) {
            /* Drop what the earlier modalities read; their offsets are in memory numbering now,
             * so the cohort can only be freed (nothing is marked loaded). */
            for (int k = 0; k < m - 1; k++) {
                FmCohortModality *md = &c->mod[k];
                fm_free(md->time);
                fm_free(md->value);
                fm_free(md->mask);
                md->time = NULL;
                md->value = NULL;
                md->mask = NULL;
                md->T = 0;
            }
        }
    }
    if (st == FM_OK)
        for (int64_t i = 0; i < c->N; i++) c->loaded[i] = want[i] != 0;
    fm_free(all);
    return st;
}
