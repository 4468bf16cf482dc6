/*
 * io.c - file and memory backends behind struct qc_io (see io.h).
 *
 * The file backend uses pread/pwrite on one descriptor; check opens it
 * O_RDONLY so that the checker cannot modify an image even by mistake.
 * Opening an image refuses FIFOs, sockets and character devices before
 * any blocking open, and takes QEMU's image locks (core/lock.h,
 * doc/locking.md) on the descriptor, which hold until qc_io_close().
 */
#include "io.h"
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef QC_FAULT_INJECTION /* the test-only build (Makefile), never production */
#include "../tests/faults/faults.h"
#endif

struct file_io {
	struct qc_io io;
	int fd;
};

static long long file_pread(struct qc_io *io, void *buf, size_t len, uint64_t off)
{
	struct file_io *f = (struct file_io *)io;
	size_t done = 0;
	if (off > (uint64_t)INT64_MAX)
		return 0;
#ifdef QC_FAULT_INJECTION
	if (qc_fault_read_fails(io, off, len))
		return -EIO;
#endif
	while (done < len) {
		ssize_t n = pread(f->fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (long long)done;
}

static int file_pwrite(struct qc_io *io, const void *buf, size_t len, uint64_t off)
{
	struct file_io *f = (struct file_io *)io;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(f->fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	if (off + len > io->size)
		io->size = off + len;
	return 0;
}

static int file_truncate(struct qc_io *io, uint64_t len)
{
	struct file_io *f = (struct file_io *)io;
	if (ftruncate(f->fd, (off_t)len) < 0)
		return -errno;
	io->size = len;
	return 0;
}

static int file_sync(struct qc_io *io)
{
	struct file_io *f = (struct file_io *)io;
	return fsync(f->fd) < 0 ? -errno : 0;
}

static void file_close(struct qc_io *io)
{
	struct file_io *f = (struct file_io *)io;
	close(f->fd);
	free(f);
}

/* SEEK_DATA / SEEK_HOLE; a file system without them (EINVAL) or any
 * other error answers "data here", which is always correct. */
static uint64_t file_next_data(struct qc_io *io, uint64_t off)
{
	struct file_io *f = (struct file_io *)io;
	if (off >= io->size)
		return io->size;
	off_t r = lseek(f->fd, (off_t)off, SEEK_DATA);
	if (r < 0)
		return errno == ENXIO ? io->size : off;
	return (uint64_t)r < off ? off : (uint64_t)r > io->size ? io->size : (uint64_t)r;
}

static uint64_t file_next_hole(struct qc_io *io, uint64_t off)
{
	struct file_io *f = (struct file_io *)io;
	if (off >= io->size)
		return io->size;
	off_t r = lseek(f->fd, (off_t)off, SEEK_HOLE);
	if (r < 0 || (uint64_t)r <= off)
		return io->size;
	return (uint64_t)r > io->size ? io->size : (uint64_t)r;
}

/* from the page below off, populated: MAP_PRIVATE of a read-only view
 * shares the page cache, nothing is copied */
static int file_map(struct qc_io *io, uint64_t off, size_t len, struct qc_io_view *v)
{
	struct file_io *f = (struct file_io *)io;
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t pg = ps > 0 ? (uint64_t)ps : 4096;
	uint64_t a = off - off % pg;
	size_t ml = len + (size_t)(off - a);
	if (off > (uint64_t)INT64_MAX)
		return -ERANGE;
	void *m = mmap(NULL, ml, PROT_READ, MAP_PRIVATE | MAP_POPULATE, f->fd, (off_t)a);
	if (m == MAP_FAILED)
		return -errno;
	v->base = m;
	v->maplen = ml;
	v->p = (const uint8_t *)m + (off - a);
	return 0;
}

static const struct qc_io_ops file_ops = {
	file_pread,	file_pwrite,	file_truncate, file_sync,
	file_close,	file_next_data, file_next_hole, file_map,
};

/* The kind of a file that must not be opened as an image, or NULL. */
static const char *special_kind(mode_t m)
{
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISDIR(m))
		return "a directory";
	if (!S_ISREG(m) && !S_ISBLK(m))
		return "not a regular file or block device";
	return NULL;
}

int qc_io_open_image(const char *path, const struct qc_open_opts *opt, struct qc_io **out,
		     struct qc_open_info *info)
{
	struct stat st, st2;
	memset(info, 0, sizeof(*info));
	/* stat first: opening a FIFO or a tty would block or have effects */
	if (stat(path, &st) < 0)
		return -errno;
	if ((info->special = special_kind(st.st_mode)))
		return -EINVAL;
	/* O_NONBLOCK, then fstat again: the name may have been swapped for a
	 * FIFO between stat and open */
	int fd = open(path, (opt->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int e = 0;
	if (fstat(fd, &st2) < 0)
		e = -errno;
	else if ((info->special = special_kind(st2.st_mode)))
		e = -EINVAL;
	else {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			e = -errno;
	}
	if (e == 0 && opt->lock != QC_LOCK_NONE) {
		unsigned perm, shared;
		qc_lock_perms(opt->lock, &perm, &shared);
		int r = qc_lock_take(fd, perm, shared);
		if (r == -EOPNOTSUPP) {
			info->locks_unsupported = true;
		} else if (r == -EBUSY) {
			info->in_use = true;
			e = -EBUSY;
		} else if (r < 0) {
			e = r;
		} else if (opt->lock == QC_LOCK_SHARE) {
			r = qc_lock_in_use(fd);
			if (r > 0)
				info->in_use = true;
		}
	}
	if (e) {
		close(fd);
		return e;
	}
	struct file_io *f = calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->io.ops = &file_ops;
	const char *nm = getenv("QCOW2FSCK_NO_MMAP");
	f->io.no_map = nm && *nm && strcmp(nm, "0") != 0;
	f->io.writable = opt->writable;
	if (S_ISBLK(st2.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		f->io.size = end > 0 ? (uint64_t)end : 0;
	} else {
		f->io.size = (uint64_t)st2.st_size;
	}
	*out = &f->io;
#ifdef QC_FAULT_INJECTION
	qc_fault_open(&f->io, path);
	if (opt->writable)
		qc_fault_attach(&f->io);
#endif
	return 0;
}

int qc_io_open_file(const char *path, bool writable, struct qc_io **out)
{
	struct qc_open_opts o = { .writable = writable, .lock = QC_LOCK_NONE };
	struct qc_open_info info;
	int r = qc_io_open_image(path, &o, out, &info);
	return r == -EINVAL && info.special && strcmp(info.special, "a directory") == 0 ? -EISDIR : r;
}

struct mem_io {
	struct qc_io io;
	uint8_t *buf;
	size_t cap;
};

/* Memory images are for tests and fuzzing: refuse to grow past 1 GiB. */
#define MEM_IO_MAX (UINT64_C(1) << 30)

static long long mem_pread(struct qc_io *io, void *buf, size_t len, uint64_t off)
{
	struct mem_io *m = (struct mem_io *)io;
	if (off >= io->size)
		return 0;
	size_t n = len;
	if (n > io->size - off)
		n = (size_t)(io->size - off);
	memcpy(buf, m->buf + off, n);
	return (long long)n;
}

static int mem_reserve(struct mem_io *m, uint64_t need)
{
	if (need > MEM_IO_MAX)
		return -EFBIG;
	if (need <= m->cap)
		return 0;
	size_t ncap = m->cap ? m->cap : 4096;
	while (ncap < need)
		ncap *= 2;
	uint8_t *nb = realloc(m->buf, ncap);
	if (!nb)
		return -ENOMEM;
	memset(nb + m->cap, 0, ncap - m->cap);
	m->buf = nb;
	m->cap = ncap;
	return 0;
}

static int mem_pwrite(struct qc_io *io, const void *buf, size_t len, uint64_t off)
{
	struct mem_io *m = (struct mem_io *)io;
	uint64_t end = off + len;
	if (end < off)
		return -EFBIG;
	int r = mem_reserve(m, end);
	if (r < 0)
		return r;
	memcpy(m->buf + off, buf, len);
	if (end > io->size)
		io->size = end;
	return 0;
}

static int mem_truncate(struct qc_io *io, uint64_t len)
{
	struct mem_io *m = (struct mem_io *)io;
	int r = mem_reserve(m, len);
	if (r < 0)
		return r;
	if (len < io->size)
		memset(m->buf + len, 0, io->size - len);
	io->size = len;
	return 0;
}

static int mem_sync(struct qc_io *io)
{
	(void)io;
	return 0;
}

static void mem_close(struct qc_io *io)
{
	struct mem_io *m = (struct mem_io *)io;
	free(m->buf);
	free(m);
}

/* Memory images answer exactly, at MEM_HOLE_GRAIN granularity: a hole is
 * an aligned block of zeros, data a block holding a non-zero byte. */
#define MEM_HOLE_GRAIN 512u

static bool mem_block_zero(const struct mem_io *m, uint64_t b)
{
	static const uint8_t zero[MEM_HOLE_GRAIN];
	uint64_t end = b + MEM_HOLE_GRAIN < m->io.size ? b + MEM_HOLE_GRAIN : m->io.size;
	return memcmp(m->buf + b, zero, (size_t)(end - b)) == 0;
}

static uint64_t mem_next_data(struct qc_io *io, uint64_t off)
{
	struct mem_io *m = (struct mem_io *)io;
	if (off >= io->size)
		return io->size;
	uint64_t b = off - off % MEM_HOLE_GRAIN;
	while (b < io->size && mem_block_zero(m, b))
		b += MEM_HOLE_GRAIN;
	return b < off ? off : b > io->size ? io->size : b;
}

static uint64_t mem_next_hole(struct qc_io *io, uint64_t off)
{
	struct mem_io *m = (struct mem_io *)io;
	if (off >= io->size)
		return io->size;
	uint64_t b = off - off % MEM_HOLE_GRAIN;
	while (b < io->size && !mem_block_zero(m, b))
		b += MEM_HOLE_GRAIN;
	return b <= off ? (b < io->size ? off : io->size) : b > io->size ? io->size : b;
}

static int mem_map(struct qc_io *io, uint64_t off, size_t len, struct qc_io_view *v)
{
	(void)len; /* qc_io_map checked [off, off+len) against the size */
	v->p = ((struct mem_io *)io)->buf + off;
	return 0;
}

static const struct qc_io_ops mem_ops = {
	mem_pread, mem_pwrite, mem_truncate, mem_sync, mem_close, mem_next_data, mem_next_hole, mem_map,
};

struct qc_io *qc_io_open_memory(const void *data, size_t len, bool writable)
{
	struct mem_io *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->io.ops = &mem_ops;
	m->io.writable = writable;
	if (mem_reserve(m, len ? len : 1) < 0) {
		free(m);
		return NULL;
	}
	if (len)
		memcpy(m->buf, data, len);
	m->io.size = len;
	return &m->io;
}

const uint8_t *qc_io_memory_bytes(struct qc_io *io, size_t *len)
{
	if (io->ops != &mem_ops)
		return NULL;
	*len = (size_t)io->size;
	return ((struct mem_io *)io)->buf;
}

long long qc_io_read(struct qc_io *io, void *buf, size_t len, uint64_t off)
{
	long long n = io->ops->pread(io, buf, len, off);
	if (n < 0)
		return n;
	/* atomic: the --jobs helpers (checker/prefetch.c, deep.c) read at once */
	__atomic_fetch_add(&io->bytes_read, (uint64_t)n, __ATOMIC_RELAXED);
	if ((size_t)n < len)
		memset((char *)buf + n, 0, len - (size_t)n);
	return n;
}

int qc_io_map(struct qc_io *io, uint64_t off, size_t len, struct qc_io_view *v)
{
	memset(v, 0, sizeof(*v));
	if (io->no_map || !io->ops->map) /* an overlay (repair/overlay.c) cannot */
		return -ENOTSUP;
	if (len == 0 || off > io->size || len > io->size - off)
		return -ERANGE;
	int r = io->ops->map(io, off, len, v);
	if (r == 0)
		__atomic_fetch_add(&io->bytes_read, (uint64_t)len, __ATOMIC_RELAXED);
#ifdef QC_FAULT_INJECTION
	if (r == 0)
		qc_fault_after_map(io, off, len);
#endif
	return r;
}

void qc_io_unmap(struct qc_io_view *v)
{
	if (v->base)
		munmap(v->base, v->maplen);
	memset(v, 0, sizeof(*v));
}

int qc_io_read_full(struct qc_io *io, void *buf, size_t len, uint64_t off)
{
	long long n = qc_io_read(io, buf, len, off);
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

uint64_t qc_io_next_data(struct qc_io *io, uint64_t off)
{
	return io->ops->next_data(io, off);
}

uint64_t qc_io_next_hole(struct qc_io *io, uint64_t off)
{
	return io->ops->next_hole(io, off);
}

static int inject(struct qc_io *io)
{
	if (io->fail_after_writes && io->writes_done >= io->fail_after_writes)
		return -EIO;
	io->writes_done++;
	return 0;
}

int qc_io_write(struct qc_io *io, const void *buf, size_t len, uint64_t off)
{
	if (!io->writable)
		return -EROFS;
	int r = inject(io);
	if (r == 0)
		r = io->ops->pwrite(io, buf, len, off);
#ifdef QC_FAULT_INJECTION
	if (r == 0)
		qc_fault_after_write(io);
#endif
	return r;
}

int qc_io_truncate(struct qc_io *io, uint64_t len)
{
	if (!io->writable)
		return -EROFS;
	int r = inject(io);
	return r ? r : io->ops->truncate(io, len);
}

int qc_io_sync(struct qc_io *io)
{
	return io->ops->sync(io);
}

void qc_io_close(struct qc_io *io)
{
	if (io)
		io->ops->close(io);
}

int qc_io_extent(struct qc_io *io, uint64_t off, uint64_t *end)
{
	if (io->ops != &file_ops || off > (uint64_t)INT64_MAX)
		return -ENOTSUP;
	struct file_io *f = (struct file_io *)io;
	off_t d = lseek(f->fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno != ENXIO)
			return -ENOTSUP;
		*end = UINT64_MAX; /* no data from off to the end of the file */
		return 1;
	}
	if ((uint64_t)d > off) {
		*end = (uint64_t)d;
		return 1;
	}
	off_t h = lseek(f->fd, (off_t)off, SEEK_HOLE);
	if (h < 0 || (uint64_t)h <= off)
		return -ENOTSUP;
	*end = (uint64_t)h;
	return 0;
}
