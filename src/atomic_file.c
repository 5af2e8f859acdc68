#include "src/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

FmStatus fm_atomic_temp_path(const char *final_path, char *tmp, size_t cap, FmError *err) {
    const char *slash = strrchr(final_path, '/');
    int dir_len = slash ? (int)(slash - final_path + 1) : 0;
    const char *base = slash ? slash + 1 : final_path;
    if (!*base) return FM_FAIL(err, FM_ERR_ARG, final_path, "output path names a directory");
    int n = snprintf(tmp, cap, "%.*s.%s.tmp.%ld", dir_len, final_path, base, (long)getpid());
    if (n < 0 || (size_t)n >= cap) return FM_FAIL(err, FM_ERR_ARG, final_path, "output path too long");
    return FM_OK;
}

/* fsync on a path; directories are opened read-only, which Linux allows for fsync. */
static int sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

FmStatus fm_atomic_commit(const char *tmp, const char *final_path, FmError *err) {
    if (sync_path(tmp) != 0) {
        int e = errno;
        unlink(tmp);
        return FM_FAIL(err, FM_ERR_IO, final_path, "cannot flush temporary file: %s", strerror(e));
    }
    if (rename(tmp, final_path) != 0) {
        int e = errno;
        unlink(tmp);
        return FM_FAIL(err, FM_ERR_IO, final_path, "cannot rename temporary file into place: %s",
                       strerror(e));
    }
    /* Make the rename itself durable; failure here does not undo a completed rename. */
    char dir[FM_PATH_MAX];
    const char *slash = strrchr(final_path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - final_path) + (slash == final_path), final_path);
    else
        snprintf(dir, sizeof dir, ".");
    (void)sync_path(dir);
    return FM_OK;
}

void fm_atomic_abort(const char *tmp) {
    if (tmp && tmp[0]) unlink(tmp);
}

FmStatus fm_atomic_open(FmAtomicFile *af, const char *path, FmError *err) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return FM_FAIL(err, FM_ERR_ARG, path, "output path too long");
    FmStatus st = fm_atomic_temp_path(path, af->tmp, sizeof af->tmp, err);
    if (st != FM_OK) return st;
    snprintf(af->path, sizeof af->path, "%s", path);
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int e = errno;
        af->tmp[0] = '\0';
        return FM_FAIL(err, FM_ERR_IO, path, "cannot create output file: %s", strerror(e));
    }
    return FM_OK;
}

FmStatus fm_atomic_close(FmAtomicFile *af, FmError *err) {
    FM_ASSERT(af->f != NULL);
    int bad = ferror(af->f);
    int e = errno;
    if (fclose(af->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    af->f = NULL;
    if (bad) {
        fm_atomic_abort(af->tmp);
        af->tmp[0] = '\0';
        return FM_FAIL(err, FM_ERR_IO, af->path, "write failed: %s", strerror(e));
    }
    FmStatus st = fm_atomic_commit(af->tmp, af->path, err);
    af->tmp[0] = '\0';
    return st;
}

void fm_atomic_discard(FmAtomicFile *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    fm_atomic_abort(af->tmp);
    af->tmp[0] = '\0';
}

FmStatus fm_atomic_write_all(const char *path, const void *bytes, size_t len, FmError *err) {
    FmAtomicFile af;
    FmStatus st = fm_atomic_open(&af, path, err);
    if (st != FM_OK) return st;
    if (len && fwrite(bytes, 1, len, af.f) != len) {
        fm_atomic_discard(&af);
        return FM_FAIL(err, FM_ERR_IO, path, "write failed");
    }
    return fm_atomic_close(&af, err);
}
