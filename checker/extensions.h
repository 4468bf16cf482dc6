/*
 * extensions.h - header extension walk shared by the header pass (feature
 * names for unknown incompatible bits), the extensions pass and `info`.
 */
#ifndef QC_EXTENSIONS_H
#define QC_EXTENSIONS_H

#include "image.h"

/*
 * Walk the extension area of img->header_cluster and fill img->ext.
 * With report set, every fault is recorded in img->problems; without it the
 * walk is silent (used to find feature names before reporting unknown
 * incompatible bits).  Needs img->cluster_size and img->header_cluster.
 */
void qc_ext_walk(struct qc_image *img, bool report);

/* Name of feature `bit` of `type` (0 incompat, 1 compat, 2 autoclear) from
 * the image's feature-name table, or NULL. */
const char *qc_ext_feature_name(const struct qc_image *img, unsigned type, unsigned bit);

/* Whether name is a block driver QEMU accepts as a backing format. */
bool qc_backing_driver_known(const char *name);

/* Human name of an extension type ("backing format", ..., "unknown"). */
const char *qc_ext_type_name(uint32_t type);

#endif
