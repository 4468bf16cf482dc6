/*
 * discover.c - file discovery and sharding for `scan` (discover.h).
 *
 * Directory walk: entries are examined with lstat; a symlink met inside a
 * directory is never followed (counted as skipped), so no walk leaves the
 * tree and no link loop exists; a directory whose (dev, inode) is already
 * on the walk's path (a bind mount of an ancestor) is skipped.  Only
 * regular files are taken from directories.  An operand is examined with
 * stat, so a name the user gives (a symlink or a block device) is honoured.
 */
#include "discover.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <linux/fs.h>

#define WALK_MAX_DEPTH 256

struct dirstack {
	dev_t dev[WALK_MAX_DEPTH];
	ino_t ino[WALK_MAX_DEPTH];
	int n;
};

static int push(struct qc_scan_list *l, const char *path, const struct stat *st, int err,
		bool dir_error)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 256;
		struct qc_scan_file *nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	struct qc_scan_file *f = &l->v[l->n];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (!f->path)
		return -ENOMEM;
	f->err = err;
	f->dir_error = dir_error;
	if (st) {
		f->dev = st->st_dev;
		f->ino = st->st_ino;
		f->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
	}
	l->n++;
	return 0;
}

static uint64_t blockdev_size(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t sz = 0;
	if (fd >= 0) {
		if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
			sz = 0;
		close(fd);
	}
	return sz;
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	bool slash = a > 0 && dir[a - 1] == '/';
	char *p = malloc(a + b + 2);
	if (!p)
		return NULL;
	memcpy(p, dir, a);
	if (!slash)
		p[a++] = '/';
	memcpy(p + a, name, b + 1);
	return p;
}

static int walk(struct qc_scan_list *l, const char *dir, struct dirstack *ds)
{
	DIR *d = opendir(dir);
	if (!d)
		return push(l, dir, NULL, errno, true);
	int rc = 0;
	struct dirent *e;
	while (rc == 0) {
		errno = 0;
		e = readdir(d);
		if (!e) {
			if (errno)
				rc = push(l, dir, NULL, errno, true);
			break;
		}
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = join(dir, e->d_name);
		if (!p) {
			rc = -ENOMEM;
			break;
		}
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = push(l, p, NULL, errno, false);
		} else if (S_ISLNK(st.st_mode)) {
			l->links_skipped++;
		} else if (S_ISREG(st.st_mode)) {
			rc = push(l, p, &st, 0, false);
		} else if (S_ISDIR(st.st_mode)) {
			bool loop = false;
			for (int i = 0; i < ds->n && !loop; i++)
				loop = ds->dev[i] == st.st_dev && ds->ino[i] == st.st_ino;
			if (loop || ds->n == WALK_MAX_DEPTH) {
				l->loops_skipped++;
			} else {
				ds->dev[ds->n] = st.st_dev;
				ds->ino[ds->n] = st.st_ino;
				ds->n++;
				rc = walk(l, p, ds);
				ds->n--;
			}
		} else {
			l->special_skipped++;
		}
		free(p);
	}
	closedir(d);
	return rc;
}

int qc_discover_add(struct qc_scan_list *l, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return push(l, path, NULL, errno, false);
	if (S_ISDIR(st.st_mode)) {
		struct dirstack *ds = calloc(1, sizeof(*ds));
		if (!ds)
			return -ENOMEM;
		ds->dev[0] = st.st_dev;
		ds->ino[0] = st.st_ino;
		ds->n = 1;
		int rc = walk(l, path, ds);
		free(ds);
		return rc;
	}
	if (S_ISBLK(st.st_mode)) {
		int rc = push(l, path, &st, 0, false);
		if (rc == 0)
			l->v[l->n - 1].size = blockdev_size(path);
		return rc;
	}
	if (S_ISREG(st.st_mode))
		return push(l, path, &st, 0, false);
	/* A FIFO or socket would block or fail the open: refuse it by name. */
	return push(l, path, NULL, EINVAL, false);
}

int qc_discover_files_from(struct qc_scan_list *l, const char *file, char *err, size_t errlen)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open --files-from '%s': %s", file, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (len == 0)
			continue;
		if (qc_discover_add(l, line) < 0) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "cannot read --files-from '%s'", file);
		rc = -1;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static int cmp_path(const void *a, const void *b)
{
	const struct qc_scan_file *x = a, *y = b;
	return strcmp(x->path, y->path);
}

/* Order of indices by (dev, ino, index) for finding later names of a file. */
struct idx {
	dev_t dev;
	ino_t ino;
	size_t i;
};

static int cmp_idx(const void *a, const void *b)
{
	const struct idx *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

void qc_discover_finish(struct qc_scan_list *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_path);
	/* Exact duplicate names (an error entry named twice too). */
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (k && strcmp(l->v[k - 1].path, l->v[i].path) == 0) {
			free(l->v[i].path);
			l->duplicates++;
			continue;
		}
		l->v[k++] = l->v[i];
	}
	l->n = k;
	/* Other names of one file (hard links, a file named directly and
	 * through its directory): keep the first in path order. */
	struct idx *ix = malloc((l->n ? l->n : 1) * sizeof(*ix));
	if (!ix)
		return; /* keeping duplicates is harmless, only slower */
	size_t m = 0;
	for (size_t i = 0; i < l->n; i++)
		if (!l->v[i].err)
			ix[m++] = (struct idx){ l->v[i].dev, l->v[i].ino, i };
	qsort(ix, m, sizeof(*ix), cmp_idx);
	bool *drop = calloc(l->n ? l->n : 1, sizeof(*drop));
	if (drop) {
		for (size_t i = 1; i < m; i++)
			if (ix[i].dev == ix[i - 1].dev && ix[i].ino == ix[i - 1].ino)
				drop[ix[i].i] = true;
		k = 0;
		for (size_t i = 0; i < l->n; i++) {
			if (drop[i]) {
				free(l->v[i].path);
				l->duplicates++;
				continue;
			}
			l->v[k++] = l->v[i];
		}
		l->n = k;
		free(drop);
	}
	free(ix);
}

void qc_discover_free(struct qc_scan_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

#define SHARD_FILE_WEIGHT (64u << 10) /* per-file cost, so empty files spread too */

struct wsort {
	uint64_t w;
	const char *path;
	size_t i;
};

static int cmp_w(const void *a, const void *b)
{
	const struct wsort *x = a, *y = b;
	if (x->w != y->w)
		return x->w > y->w ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Min-heap of shards by (load, index): the lightest shard, lowest index on ties. */
struct shard_heap {
	uint64_t *load;
	unsigned *h; /* shard indices */
	unsigned n;
};

static bool lighter(const struct shard_heap *sh, unsigned a, unsigned b)
{
	return sh->load[a] != sh->load[b] ? sh->load[a] < sh->load[b] : a < b;
}

static void sift_down(struct shard_heap *sh, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		if (l < sh->n && lighter(sh, sh->h[l], sh->h[m]))
			m = l;
		if (r < sh->n && lighter(sh, sh->h[r], sh->h[m]))
			m = r;
		if (m == i)
			return;
		unsigned t = sh->h[i];
		sh->h[i] = sh->h[m];
		sh->h[m] = t;
		i = m;
	}
}

bool qc_shard_assign(const struct qc_scan_file *v, size_t n, unsigned nshards, unsigned *out)
{
	if (nshards == 0)
		return false;
	struct wsort *ws = malloc((n ? n : 1) * sizeof(*ws));
	struct shard_heap sh = { calloc(nshards, sizeof(uint64_t)), malloc(nshards * sizeof(unsigned)),
				 nshards };
	bool ok = ws && sh.load && sh.h;
	if (ok) {
		/* All loads are 0: the identity order is a valid heap. */
		for (unsigned s = 0; s < nshards; s++)
			sh.h[s] = s;
		for (size_t i = 0; i < n; i++) {
			uint64_t w = v[i].size + SHARD_FILE_WEIGHT;
			ws[i] = (struct wsort){ w < v[i].size ? UINT64_MAX : w, v[i].path, i };
		}
		qsort(ws, n, sizeof(*ws), cmp_w);
		for (size_t k = 0; k < n; k++) {
			unsigned best = sh.h[0];
			out[ws[k].i] = best;
			uint64_t nl = sh.load[best] + ws[k].w;
			sh.load[best] = nl < sh.load[best] ? UINT64_MAX : nl;
			sift_down(&sh, 0);
		}
	}
	free(ws);
	free(sh.load);
	free(sh.h);
	return ok;
}
