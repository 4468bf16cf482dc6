/*
 * salvage.c - --salvage-leaks=DIR: before a repair frees leaked clusters
 * (whose content it leaves in place anyway), copy every non-zero one out
 * to DIR/0x<host offset>, so that lost data survives later allocations.
 * Files are created exclusively (an existing copy is never overwritten)
 * and fsync'd with their directory before the repair writes anything.
 */
#include "repair.h"

#include "../core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

long qc_salvage_leaks(struct qc_image *img, const struct qc_plan *p, const char *dir, char *err,
		      size_t errlen)
{
	size_t cs = (size_t)img->cluster_size;
	uint8_t *buf = malloc(cs);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
		free(buf);
		return -errno;
	}
	long saved = 0;
	int r = 0;
	for (size_t i = 0; i < p->nfreed && r == 0; i++) {
		uint64_t off = p->freed[i] << img->cluster_bits;
		long long got = qc_io_read(img->io, buf, cs, off);
		if (got < 0) {
			r = (int)got;
			snprintf(err, errlen, "cannot read cluster at 0x%" PRIx64 ": %s", off, strerror(-r));
			break;
		}
		if (got == 0 || qc_all_zero(buf, (size_t)got))
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/0x%016" PRIx64, dir, off);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
			break;
		}
		size_t done = 0;
		while (done < (size_t)got) {
			ssize_t n = write(fd, buf + done, (size_t)got - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = -EIO;
				break;
			}
			done += (size_t)n;
		}
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0)
			snprintf(err, errlen, "cannot write '%s': %s", path, strerror(-r));
		else
			saved++;
	}
	if (r == 0) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	free(buf);
	return r < 0 ? r : saved;
}
