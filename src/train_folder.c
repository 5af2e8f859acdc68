/* Run folders (src/train_folder.h). */
#include "src/train_folder.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/strbuf.h"

FmStatus fm_train_folder_create(const char *dir, FmError *err) {
    char buf[FM_PATH_MAX];
    if (!dir[0] || snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return FM_FAIL(err, FM_ERR_ARG, dir, "bad folder name");
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return FM_FAIL(err, FM_ERR_IO, buf, "cannot create the folder: %s", strerror(errno));
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return FM_FAIL(err, FM_ERR_IO, buf, "not a folder");
        *p = c;
        if (c == '\0') break;
    }
    return FM_OK;
}

int fm_train_folder_has(const char *dir, const char *name) {
    char buf[FM_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s%s%s", dir, name ? "/" : "", name ? name : "") >= (int)sizeof buf) return 0;
    struct stat st;
    return stat(buf, &st) == 0;
}

FmStatus fm_train_folder_read(const char *path, char **text, FmError *err) {
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return FM_FAIL(err, FM_ERR_IO, path, "cannot open: %s", strerror(errno));
    FmStrBuf b;
    fm_strbuf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) fm_strbuf_append_n(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    *text = fm_strbuf_take(&b);
    if (bad || !*text) {
        fm_free(*text);
        *text = NULL;
        return FM_FAIL(err, bad ? FM_ERR_IO : FM_ERR_NOMEM, path, bad ? "cannot read" : "out of memory");
    }
    return FM_OK;
}
