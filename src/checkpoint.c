#include "src/checkpoint.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/h5io.h"
#include "src/params_h5.h"

static const char *const ARENA_GROUPS[3] = {"params", "adam_m", "adam_v"};

static const float *arena_of(const FmParams *p, int i) {
    return i == 0 ? p->data : i == 1 ? p->adam_m : p->adam_v;
}

static FmStatus write_contents(hid_t file, const FmParams *p, const FmTrainProgress *tp, FmError *err) {
    FmStatus st = FM_OK;
    for (int i = 0; i < 3 && st == FM_OK; i++) {
        hid_t g;
        st = fm_h5_group_create(file, ARENA_GROUPS[i], &g, err);
        if (st != FM_OK) break;
        st = fm_params_write_h5(g, p, arena_of(p, i), err);
        H5Gclose(g);
    }
    if (st == FM_OK) st = fm_h5_attr_write_str(file, "format", "fusemoe-checkpoint", err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "format_version", FM_CHECKPOINT_VERSION, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "epochs_done", tp->epochs_done, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "steps_done", tp->steps_done, err);
    if (st == FM_OK) st = fm_h5_attr_write_f64(file, "best_metric", tp->best_metric, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "best_epoch", tp->best_epoch, err);
    if (st == FM_OK) st = fm_h5_attr_write_i64(file, "bad_epochs", tp->bad_epochs, err);
    if (st == FM_OK) st = fm_h5_attr_write_str(file, "config", tp->config_text ? tp->config_text : "", err);
    if (st == FM_OK) st = fm_h5_attr_write_str(file, "log", tp->log_text ? tp->log_text : "", err);
    if (st == FM_OK) st = fm_h5_attr_write_str(file, "state", tp->state_text ? tp->state_text : "", err);
    return st;
}

FmStatus fm_checkpoint_save(const char *path, const FmParams *p, const FmTrainProgress *tp,
                            FmError *err) {
    FM_ASSERT(p->adam_m && p->adam_v);
    char tmp[FM_PATH_MAX];
    FmStatus st = fm_atomic_temp_path(path, tmp, sizeof tmp, err);
    if (st != FM_OK) return st;
    hid_t file;
    st = fm_h5_create(tmp, &file, err);
    if (st != FM_OK) return FM_FAIL(err, FM_ERR_IO, path, "cannot create checkpoint");
    st = write_contents(file, p, tp, err);
    if (H5Fclose(file) < 0 && st == FM_OK) st = FM_FAIL(err, FM_ERR_IO, path, "cannot finish checkpoint");
    if (st != FM_OK) {
        fm_atomic_abort(tmp);
        if (err && !err->where[0]) snprintf(err->where, sizeof err->where, "%s", path);
        return st;
    }
    return fm_atomic_commit(tmp, path, err);
}

static FmStatus read_contents(hid_t file, const char *path, FmParams *p, FmTrainProgress *tp, FmError *err) {
    char *format = NULL;
    FmStatus st = fm_h5_attr_read_str(file, path, "format", &format, err);
    if (st == FM_OK && strcmp(format, "fusemoe-checkpoint") != 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, path, "not a fusemoe checkpoint (format '%s')", format);
    fm_free(format);
    int64_t version = 0, v;
    if (st == FM_OK) st = fm_h5_attr_read_i64(file, path, "format_version", &version, err);
    if (st == FM_OK && version != FM_CHECKPOINT_VERSION)
        st = FM_FAIL(err, FM_ERR_UNSUPPORTED, path, "checkpoint format version %lld, this build reads %d",
                     (long long)version, FM_CHECKPOINT_VERSION);
    float *arenas[3] = {p->data, p->adam_m, p->adam_v};
    for (int i = 0; i < 3 && st == FM_OK; i++) {
        hid_t g;
        st = fm_h5_group_open(file, path, ARENA_GROUPS[i], &g, err);
        if (st != FM_OK) break;
        st = fm_params_read_h5(g, path, p, arenas[i], err);
        H5Gclose(g);
    }
    if (st == FM_OK) st = fm_h5_attr_read_i64(file, path, "epochs_done", &v, err), tp->epochs_done = v;
    if (st == FM_OK) st = fm_h5_attr_read_i64(file, path, "steps_done", &v, err), tp->steps_done = v;
    if (st == FM_OK) st = fm_h5_attr_read_f64(file, path, "best_metric", &tp->best_metric, err);
    if (st == FM_OK) st = fm_h5_attr_read_i64(file, path, "best_epoch", &v, err), tp->best_epoch = v;
    if (st == FM_OK) st = fm_h5_attr_read_i64(file, path, "bad_epochs", &v, err), tp->bad_epochs = v;
    if (st == FM_OK) st = fm_h5_attr_read_str(file, path, "config", &tp->config_text, err);
    if (st == FM_OK) st = fm_h5_attr_read_str(file, path, "log", &tp->log_text, err);
    if (st == FM_OK && H5Aexists(file, "state") > 0) st = fm_h5_attr_read_str(file, path, "state", &tp->state_text, err);
    return st;
}

FmStatus fm_checkpoint_load(const char *path, FmParams *p, FmTrainProgress *tp, FmError *err) {
    FM_ASSERT(p->data && p->adam_m && p->adam_v);
    memset(tp, 0, sizeof *tp);
    tp->best_metric = NAN;
    hid_t file;
    FmStatus st = fm_h5_open_read(path, &file, err);
    if (st != FM_OK) return st;
    st = read_contents(file, path, p, tp, err);
    H5Fclose(file);
    if (st != FM_OK) fm_train_progress_free(tp);
    return st;
}

void fm_train_progress_free(FmTrainProgress *tp) {
    if (!tp) return;
    fm_free(tp->config_text);
    fm_free(tp->log_text);
    fm_free(tp->state_text);
    tp->config_text = tp->log_text = tp->state_text = NULL;
}
