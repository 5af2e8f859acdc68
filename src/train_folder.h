/* Run folders: creating them and asking what they hold. */
#ifndef FM_TRAIN_FOLDER_H
#define FM_TRAIN_FOLDER_H

#include "src/error.h"

/* Creates folder `dir` and its missing parents (mkdir -p). FM_ERR_IO naming the folder when
 * one cannot be created or a path component is not a folder. */
FmStatus fm_train_folder_create(const char *dir, FmError *err);

/* 1 when `dir`/`name` exists (name NULL: `dir` itself), else 0. */
int fm_train_folder_has(const char *dir, const char *name);

/* Reads the whole text file `path` into *text (fm_free). FM_ERR_IO naming the file when it
 * cannot be read. */
FmStatus fm_train_folder_read(const char *path, char **text, FmError *err);

#endif
