/*
 * stats.c - the counters qemu-img check prints (doc/format.md
 * §9.2): total clusters of the virtual disk, and the image end
 * offset when refcounts.c could not compute it.  tables.c accumulates the
 * allocated / fragmented / compressed counts of the active L1 with
 * qemu-img's rules.
 */
#include "check.h"

void qc_pass_stats(struct qc_image *img)
{
	if (!img->geometry_ok)
		return;
	/* qemu-img: size_to_clusters(total_sectors * 512), total_sectors = size / 512 */
	uint64_t bytes = img->h.size / 512 * 512;
	img->stats.total_clusters =
		(bytes >> img->cluster_bits) + ((bytes & (img->cluster_size - 1)) != 0);
	if (!img->stats.image_end_offset) {
		uint64_t end = qc_cm_end(&img->cmap);
		img->stats.image_end_offset = (end ? end : 1) << img->cluster_bits;
	}
}
