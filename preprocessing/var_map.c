#include "preprocessing/var_map.h"

#include <math.h>
#include <string.h>

#include "preprocessing/csv_stream.h"
#include "src/alloc.h"

/* Reading state: rows are collected into growable arrays, then indexed. */
typedef struct {
    FmVarMap *map;
    FmCsvColumns cols;
    int c_var, c_mod, c_min, c_max, c_transform;
    int header_fields;
    /* current row */
    char var[256], mod[128], transform[32];
    double min, max;
    int cap_entries, cap_mods;
} MapReader;

static unsigned long hash_name(const char *s, size_t len) {
    unsigned long h = 1469598103934665603UL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211UL;
    return h;
}

void fm_var_map_free(FmVarMap *map) {
    if (!map) return;
    for (int i = 0; i < map->n_entries; i++)
        fm_free(map->entries[i].name);
    for (int i = 0; i < map->n_mods; i++) {
        fm_free(map->mods[i].name);
        fm_free(map->mods[i].entry);
    }
    fm_free(map->entries);
    fm_free(map->mods);
    fm_free(map->slot_series);
    fm_free(map->slot_static);
    fm_free(map->slot_name);
    memset(map, 0, sizeof *map);
}

static size_t find_slot(const FmVarMap *map, const char *name, size_t len) {
    size_t s = hash_name(name, len) & (map->slots - 1);
    while (map->slot_name[s] >= 0) {
        const char *e = map->entries[map->slot_name[s]].name;
        if (strncmp(e, name, len) == 0 && e[len] == '\0') return s;
        s = (s + 1) & (map->slots - 1);
    }
    return s;
}

int fm_var_map_lookup(const FmVarMap *map, const char *name, size_t len, int *series_entry,
                      int *static_entry) {
    int se = -1, st = -1;
    if (map->slots) {
        size_t s = find_slot(map, name, len);
        if (map->slot_name[s] >= 0) {
            se = map->slot_series[s];
            st = map->slot_static[s];
        }
    }
    if (series_entry) *series_entry = se;
    if (static_entry) *static_entry = st;
    return se >= 0 || st >= 0;
}

int fm_var_map_modality(const FmVarMap *map, const char *name) {
    for (int i = 0; i < map->n_mods; i++)
        if (strcmp(map->mods[i].name, name) == 0) return i;
    return -1;
}

static int valid_modality_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static FmStatus copy_field(char *dst, size_t cap, const char *s, size_t len, const char *col,
                           const FmCsvPos *pos, FmError *err) {
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        len--;
    if (len >= cap) {
        char where[600];
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "column %s: value too long (%zu bytes)", col, len);
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return FM_OK;
}

static FmStatus on_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    MapReader *r = ctx;
    if (pos->row == 0) return fm_csv_columns_header(&r->cols, pos, s, err);
    int col = pos->col;
    char where[600];
    if (col == r->cols.index[r->c_var])
        return copy_field(r->var, sizeof r->var, s, len, "variable", pos, err);
    if (col == r->cols.index[r->c_mod])
        return copy_field(r->mod, sizeof r->mod, s, len, "modality", pos, err);
    if (col == r->cols.index[r->c_transform])
        return copy_field(r->transform, sizeof r->transform, s, len, "transform", pos, err);
    if (col == r->cols.index[r->c_min] || col == r->cols.index[r->c_max]) {
        int is_min = col == r->cols.index[r->c_min];
        double v;
        int rc = fm_csv_parse_number(s, len, &v);
        if (rc == FM_CSV_NUM_BAD)
            return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                           "column %s: expected a number, got \"%s\"", is_min ? "min" : "max", s);
        if (rc == FM_CSV_NUM_MISSING) v = is_min ? -INFINITY : INFINITY;
        if (is_min)
            r->min = v;
        else
            r->max = v;
    }
    return FM_OK;
}

static FmStatus add_entry(MapReader *r, const FmCsvPos *pos, FmError *err) {
    FmVarMap *m = r->map;
    char where[600];
    fm_csv_where(pos, where, sizeof where);
    if (!r->var[0]) return FM_FAIL(err, FM_ERR_FORMAT, where, "column variable: empty variable name");
    if (!valid_modality_name(r->mod))
        return FM_FAIL(err, FM_ERR_FORMAT, where,
                       "column modality: \"%s\" is not a modality name (letters, digits, '_' or '-')",
                       r->mod);
    if (strcmp(r->mod, FM_MODALITY_NAME_NOTES) == 0 || strcmp(r->mod, FM_MODALITY_NAME_IMAGE_FEATURES) == 0 ||
        strcmp(r->mod, FM_MODALITY_NAME_IMAGES) == 0)
        return FM_FAIL(err, FM_ERR_FORMAT, where,
                       "column modality: \"%s\" is reserved for the note and image inputs", r->mod);
    if (r->min > r->max)
        return FM_FAIL(err, FM_ERR_FORMAT, where, "range of '%s': min %g is above max %g", r->var, r->min,
                       r->max);
    int log1p_transform = strcmp(r->transform, "log1p") == 0;
    if (!log1p_transform && r->transform[0] && strcmp(r->transform, "none") != 0)
        return FM_FAIL(err, FM_ERR_FORMAT, where, "column transform: \"%s\" is not one of log1p, none (or empty)",
                       r->transform);
    if (log1p_transform && !(r->min >= 0))
        return FM_FAIL(err, FM_ERR_FORMAT, where,
                       "transform log1p of '%s' needs a plausible range with min >= 0 (min is %g)", r->var, r->min);
    int mi = fm_var_map_modality(m, r->mod);
    int is_static = strcmp(r->mod, "static") == 0;
    /* A variable may be one series channel and one static channel, not more. */
    for (int i = 0; i < m->n_entries; i++) {
        const FmVarEntry *e = &m->entries[i];
        if (strcmp(e->name, r->var) != 0) continue;
        int e_static = m->mods[e->modality].kind == FM_MODALITY_STATIC;
        if (e_static == is_static)
            return FM_FAIL(err, FM_ERR_FORMAT, where,
                           "variable '%s' is already a channel of modality '%s' (line %ld)", r->var,
                           m->mods[e->modality].name, e->line);
    }
    if (mi < 0) {
        if (m->n_mods == r->cap_mods) {
            int cap = r->cap_mods ? r->cap_mods * 2 : 4;
            FmVarModality *mods = fm_realloc(m->mods, (size_t)cap * sizeof *mods);
            if (!mods) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading the mapping");
            m->mods = mods;
            r->cap_mods = cap;
        }
        FmVarModality *md = &m->mods[m->n_mods];
        memset(md, 0, sizeof *md);
        md->name = fm_strdup(r->mod);
        if (!md->name) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading the mapping");
        md->kind = is_static ? FM_MODALITY_STATIC : FM_MODALITY_SERIES;
        mi = m->n_mods++;
    }
    if (m->n_entries == r->cap_entries) {
        int cap = r->cap_entries ? r->cap_entries * 2 : 32;
        FmVarEntry *entries = fm_realloc(m->entries, (size_t)cap * sizeof *entries);
        if (!entries) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading the mapping");
        m->entries = entries;
        r->cap_entries = cap;
    }
    FmVarModality *md = &m->mods[mi];
    int *ch = fm_realloc(md->entry, (size_t)(md->C + 1) * sizeof *ch);
    if (!ch) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading the mapping");
    md->entry = ch;
    FmVarEntry *e = &m->entries[m->n_entries];
    e->name = fm_strdup(r->var);
    if (!e->name) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading the mapping");
    e->modality = mi;
    e->channel = md->C;
    e->min = r->min;
    e->max = r->max;
    e->log1p = log1p_transform;
    e->line = pos->line;
    md->entry[md->C++] = m->n_entries++;
    return FM_OK;
}

static FmStatus on_row(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err) {
    MapReader *r = ctx;
    char where[600];
    if (pos->row == 0) {
        r->header_fields = n_fields;
        return fm_csv_columns_check(&r->cols, pos, err);
    }
    if (n_fields != r->header_fields)
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "expected %d fields (as in the header), got %d", r->header_fields, n_fields);
    FmStatus st = add_entry(r, pos, err);
    r->var[0] = r->mod[0] = r->transform[0] = '\0';
    r->min = -INFINITY;
    r->max = INFINITY;
    return st;
}

static FmStatus build_lookup(FmVarMap *m, const char *path, FmError *err) {
    size_t slots = 16;
    while (slots < (size_t)m->n_entries * 4)
        slots *= 2;
    m->slot_series = fm_malloc_array(slots, sizeof(int));
    m->slot_static = fm_malloc_array(slots, sizeof(int));
    m->slot_name = fm_malloc_array(slots, sizeof(int));
    if (!m->slot_series || !m->slot_static || !m->slot_name)
        return FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory indexing the mapping");
    m->slots = slots;
    for (size_t s = 0; s < slots; s++)
        m->slot_series[s] = m->slot_static[s] = m->slot_name[s] = -1;
    for (int i = 0; i < m->n_entries; i++) {
        const char *name = m->entries[i].name;
        size_t s = find_slot(m, name, strlen(name));
        m->slot_name[s] = i;
        if (m->mods[m->entries[i].modality].kind == FM_MODALITY_STATIC)
            m->slot_static[s] = i;
        else
            m->slot_series[s] = i;
    }
    return FM_OK;
}

FmStatus fm_var_map_read(const char *path, FmVarMap *map, FmError *err) {
    memset(map, 0, sizeof *map);
    MapReader r;
    memset(&r, 0, sizeof r);
    r.map = map;
    r.min = -INFINITY;
    r.max = INFINITY;
    fm_csv_columns_init(&r.cols);
    r.c_var = fm_csv_columns_want(&r.cols, "variable", 1);
    r.c_mod = fm_csv_columns_want(&r.cols, "modality", 1);
    r.c_min = fm_csv_columns_want(&r.cols, "min", 0);
    r.c_max = fm_csv_columns_want(&r.cols, "max", 0);
    r.c_transform = fm_csv_columns_want(&r.cols, "transform", 0);
    FmCsvReader reader;
    fm_csv_reader_init(&reader);
    FmStatus st = fm_csv_read_file(&reader, path, path, FM_CSV_COMMENTS, on_field, on_row, &r, err);
    fm_csv_reader_free(&reader);
    if (st == FM_OK && map->n_entries == 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, path, "the mapping lists no variable");
    if (st == FM_OK) st = build_lookup(map, path, err);
    if (st != FM_OK) fm_var_map_free(map);
    return st;
}
