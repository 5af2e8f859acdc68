/* Parameter tensors to and from HDF5: one dataset per named tensor, with its shape.
 *
 * Used by the model file (parameters) and by training checkpoints (parameters and Adam state,
 * each arena under its own group). Reading checks that every tensor the table declares is there
 * with the same shape, and that the group holds nothing the table does not declare. */
#ifndef FM_PARAMS_H5_H
#define FM_PARAMS_H5_H

#include <hdf5.h>

#include "src/error.h"
#include "src/params.h"

/* Writes every tensor of `p`, taking values from `arena` (p->data, p->grad, p->adam_m or
 * p->adam_v: any buffer with the table's layout), as datasets named by the tensor names under
 * `group`. Small tensors are stored contiguous, large ones chunked and compressed. */
FmStatus fm_params_write_h5(hid_t group, const FmParams *p, const float *arena, FmError *err);

/* Reads every tensor of `p` from `group` into `arena`. A missing tensor, a shape that differs
 * from the table's, or a dataset the table does not know is an FM_ERR_MISMATCH naming the file
 * (`path`), the group and the tensor, e.g.
 *   model.h5: parameter fusion.0.moe.router.0.centre: expected shape (16, 128), got (8, 128) */
FmStatus fm_params_read_h5(hid_t group, const char *path, const FmParams *p, float *arena,
                           FmError *err);

#endif
