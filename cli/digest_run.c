/*
 * digest_run.c - which layers a digest covers, reading each snapshot's L1
 * table, running checker/digest.c on each, and the JSON of the results
 * (doc/digest.md).  Relies on the check having run: the snapshot entries
 * it marks l1_usable have a validated L1 offset and size.
 */
#include "digest_run.h"
#include "../checker/digest.h"
#include "../core/reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_JOBS 64

unsigned qc_default_jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_JOBS ? MAX_JOBS : (unsigned)n;
}

bool qc_parse_jobs(const char *v, unsigned *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 1 || n > MAX_JOBS)
		return false;
	*out = (unsigned)n;
	return true;
}

const char *qc_digest_algorithm(const struct qc_dg_run *r)
{
	return r->flat ? "flat-sha256" : "tree-v1";
}

static int32_t find_snapshot(const struct qc_image *img, const char *key)
{
	for (uint32_t i = 0; i < img->nsnapshots; i++)
		if (img->snapshots[i].id && strcmp(img->snapshots[i].id, key) == 0)
			return (int32_t)i;
	for (uint32_t i = 0; i < img->nsnapshots; i++)
		if (img->snapshots[i].name && strcmp(img->snapshots[i].name, key) == 0)
			return (int32_t)i;
	return -2;
}

static uint64_t *read_l1(struct qc_io *io, uint64_t off, uint32_t n)
{
	uint64_t *t = malloc(n ? (size_t)n * 8 : 8);
	if (!t)
		return NULL;
	if (n && qc_io_read(io, t, (size_t)n * 8, off) < 0) {
		free(t);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++)
		t[i] = qc_be64_at((const uint8_t *)&t[i]);
	return t;
}

void qc_digest_run(struct qc_io *io, const struct qc_image *img, struct qc_dg_run *r)
{
	r->rc = 0;
	r->error[0] = 0;
	uint32_t n = 1;
	int32_t only = -1;
	if (img && r->snapshot) {
		only = find_snapshot(img, r->snapshot);
		if (only < 0) {
			r->rc = 1;
			snprintf(r->error, sizeof(r->error), "no snapshot with ID or name '%s'", r->snapshot);
			return;
		}
	} else if (img && r->all) {
		n += img->nsnapshots;
	}
	r->layers = calloc(n, sizeof(*r->layers));
	if (!r->layers) {
		r->rc = 1;
		snprintf(r->error, sizeof(r->error), "out of memory");
		return;
	}
	r->n = n;
	uint64_t total = 0;
	for (uint32_t k = 0; k < n; k++) {
		struct qc_dg_layer *d = &r->layers[k];
		d->snapshot = only >= 0 ? only : (int32_t)k - 1;
		/* a snapshot is read as `qemu-img convert -l snapshot.name=` reads
		 * it: its L1 table at the image's current virtual size
		 * (doc/digest.md "Reading a layer") */
		d->size = img ? img->h.size : io->size;
		total += d->size;
	}
	struct qc_progress pg;
	qc_progress_start(&pg, stderr, r->progress, "digest", total);
	struct qc_digest_opts o = { r->flat, r->force, r->jobs ? r->jobs : 1, &pg, 0, r->observe,
				    r->observe_ctx };
	for (uint32_t k = 0; k < n && !r->rc; k++) {
		struct qc_dg_layer *d = &r->layers[k];
		struct qc_layer L = { io, img, NULL, 0, d->size };
		uint64_t *own = NULL;
		if (img && d->snapshot < 0) {
			L.l1 = img->l1;
			L.l1_size = img->l1 ? img->h.l1_size : 0;
		} else if (img) {
			const struct qc_snapshot *s = &img->snapshots[d->snapshot];
			if (!s->l1_usable) {
				r->rc = 2;
				snprintf(r->error, sizeof(r->error),
					 "snapshot %d: its L1 table cannot be read", (int)d->snapshot);
				break;
			}
			own = read_l1(io, s->l1_table_offset, s->l1_size);
			if (!own) {
				r->rc = 1;
				snprintf(r->error, sizeof(r->error),
					 "cannot read the L1 table of snapshot %d", (int)d->snapshot);
				break;
			}
			L.l1 = own;
			L.l1_size = s->l1_size;
		}
		if (img && !img->l1 && d->snapshot < 0 && img->h.l1_size) {
			r->rc = 2;
			snprintf(r->error, sizeof(r->error), "the active L1 table cannot be read");
			break;
		}
		struct qc_digest_result res;
		r->rc = qc_digest_layer(&L, &o, &res);
		if (r->rc)
			snprintf(r->error, sizeof(r->error), "%s", res.error);
		memcpy(d->md, res.md, 32);
		d->unreadable = res.unreadable_bytes;
		o.progress_base += d->size;
		free(own);
	}
	qc_progress_end(&pg);
}

void qc_digest_run_free(struct qc_dg_run *r)
{
	free(r->layers);
	r->layers = NULL;
	r->n = 0;
}

void qc_digest_json_layers(struct qc_json *j, const char *path, const struct qc_image *img,
			   const struct qc_dg_run *r)
{
	for (uint32_t k = 0; k < r->n && !r->rc; k++) {
		const struct qc_dg_layer *d = &r->layers[k];
		char hex[65];
		qc_digest_hex(d->md, hex);
		qc_json_obj_begin(j, NULL);
		if (d->snapshot < 0) {
			qc_json_str(j, "name", path);
			qc_json_null(j, "snapshot");
		} else {
			const struct qc_snapshot *s = &img->snapshots[d->snapshot];
			size_t pl = strlen(path), nl = strlen(s->name ? s->name : "");
			char *name = malloc(pl + nl + 2);
			if (name) {
				snprintf(name, pl + nl + 2, "%s@%s", path, s->name ? s->name : "");
				qc_json_str(j, "name", name);
				free(name);
			}
			qc_json_obj_begin(j, "snapshot");
			qc_json_u64(j, "index", (uint64_t)d->snapshot);
			qc_json_str(j, "id", s->id ? s->id : "");
			qc_json_str(j, "name", s->name ? s->name : "");
			qc_json_u64(j, "disk-size", s->disk_size);
			qc_json_obj_end(j);
		}
		qc_json_str(j, "algorithm", qc_digest_algorithm(r));
		qc_json_str(j, "digest", hex);
		qc_json_u64(j, "virtual-size", d->size);
		qc_json_u64(j, "unreadable-bytes", d->unreadable);
		qc_json_obj_end(j);
	}
}
