/* Run folders (src/train_folder.h). */
#include "src/train_folder.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "src/atomic_file.h"

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
