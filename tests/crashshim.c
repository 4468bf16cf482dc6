/*
 * crashshim.c - an LD_PRELOAD library for the crash-state tests
 * (doc/crash-states.md).  It watches the writes QEMU's tools make to ONE
 * image file and either kills the process before the Nth of them or logs
 * every write and flush.
 *
 * Environment:
 *   QC_CRASH_IMAGE=PATH  the image to watch (required; compared by the
 *                        resolved path of each descriptor, /proc/self/fd)
 *   QC_CRASH_AT=N        _exit(86) just before the Nth write to the image
 *                        (N >= 1; unset or 0: never)
 *   QC_CRASH_LOG=PATH    append a record of every write and flush
 *
 * A "write" is any call that changes the file: pwrite/pwrite64,
 * pwritev/pwritev2 (and their 64-bit names), write/writev, fallocate,
 * ftruncate.  fdatasync/fsync are flushes (logged, never counted).
 * QEMU's thread pool issues them from worker threads (qemu-img and
 * qemu-io use pwrite64 / pwritev there, strace shows); a mutex
 * serialises the watched calls, so no other thread's write can slip in
 * once the Nth is refused: the kill is exact.
 *
 * Log records, little-endian: 1 byte type, 8 bytes offset, 8 bytes length,
 * then for 'W' the data (length bytes).  Types: 'W' write, 'T' truncate
 * (offset = new length), 'Z' fallocate that zeroes or punches [offset,
 * +length) without changing the size, 'X' one that zeroes and may extend
 * the file, 'A' plain allocation (may extend the file to offset + length),
 * and 'F' a completed flush whose offset field is the number of change
 * records logged before the flush was issued: exactly those are durable
 * once it completes (a write issued while it ran is not).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif

#define CRASH_STATUS 86

static char target[PATH_MAX];
static unsigned long crash_at, count;
static uint64_t logged; /* change records in the log */
static int log_fd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void init(void)
{
	const char *img = getenv("QC_CRASH_IMAGE");
	if (!img || !realpath(img, target))
		target[0] = 0;
	const char *at = getenv("QC_CRASH_AT");
	crash_at = at ? strtoul(at, NULL, 10) : 0;
	const char *lg = getenv("QC_CRASH_LOG");
	if (lg && *lg)
		log_fd = open(lg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static bool watched(int fd)
{
	if (!target[0] || fd < 0 || fd == log_fd)
		return false;
	char p[64], buf[PATH_MAX];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return strcmp(buf, target) == 0;
}

static void *real(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f) {
		static const char msg[] = "crashshim: missing symbol\n";
		(void)!write(2, msg, sizeof(msg) - 1);
		_exit(127);
	}
	return f;
}

/* raw write to the log (the log is not the image, so no recursion) */
static void log_bytes(const void *b, size_t n)
{
	ssize_t (*w)(int, const void *, size_t) = real("write");
	const char *p = b;
	while (n) {
		ssize_t k = w(log_fd, p, n);
		if (k <= 0)
			_exit(125);
		p += k;
		n -= (size_t)k;
	}
}

static void log_rec(char type, uint64_t off, uint64_t len)
{
	unsigned char h[17];
	h[0] = (unsigned char)type;
	if (type != 'F')
		logged++;
	for (int i = 0; i < 8; i++) {
		h[1 + i] = (unsigned char)(off >> (8 * i));
		h[9 + i] = (unsigned char)(len >> (8 * i));
	}
	log_bytes(h, sizeof(h));
}

/* Called with mu held, before a change to the image. */
static void before_write(void)
{
	count++;
	if (crash_at && count >= crash_at)
		_exit(CRASH_STATUS); /* mu stays held: no other write starts */
}

static void log_iov(uint64_t off, const struct iovec *iov, int cnt)
{
	uint64_t len = 0;
	for (int i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	log_rec('W', off, len);
	for (int i = 0; i < cnt; i++)
		log_bytes(iov[i].iov_base, iov[i].iov_len);
}

#define WATCH_BEGIN(fd)                                   \
	bool w_ = watched(fd);                            \
	if (w_) {                                         \
		pthread_mutex_lock(&mu);                  \
		before_write();                           \
	}
#define WATCH_END()                                       \
	if (w_)                                           \
		pthread_mutex_unlock(&mu);

static void log_written(uint64_t off, const void *buf, ssize_t r)
{
	if (log_fd >= 0 && r > 0) {
		log_rec('W', off, (uint64_t)r);
		log_bytes(buf, (size_t)r);
	}
}

static void log_writtenv(uint64_t off, const struct iovec *iov, int cnt, ssize_t r)
{
	if (log_fd < 0 || r <= 0)
		return;
	/* only the bytes that were written */
	struct iovec v[64];
	int n = 0;
	uint64_t left = (uint64_t)r;
	for (int i = 0; i < cnt && left; i++) {
		if (n == 64) {
			log_iov(off, v, n);
			for (int k = 0; k < n; k++)
				off += v[k].iov_len;
			n = 0;
		}
		v[n] = iov[i];
		if (v[n].iov_len > left)
			v[n].iov_len = (size_t)left;
		left -= v[n].iov_len;
		n++;
	}
	if (n)
		log_iov(off, v, n);
}

static uint64_t cur_pos(int fd)
{
	off_t (*ls)(int, off_t, int) = real("lseek");
	off_t p = ls(fd, 0, SEEK_CUR);
	return p < 0 ? 0 : (uint64_t)p;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*f)(int, const void *, size_t, off_t);
	if (!f)
		f = real("pwrite");
	WATCH_BEGIN(fd);
	ssize_t r = f(fd, buf, n, off);
	if (w_)
		log_written((uint64_t)off, buf, r);
	WATCH_END();
	return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*f)(int, const void *, size_t, off_t);
	if (!f)
		f = real("pwrite64");
	WATCH_BEGIN(fd);
	ssize_t r = f(fd, buf, n, off);
	if (w_)
		log_written((uint64_t)off, buf, r);
	WATCH_END();
	return r;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static ssize_t (*f)(int, const void *, size_t);
	if (!f)
		f = real("write");
	WATCH_BEGIN(fd);
	uint64_t pos = w_ ? cur_pos(fd) : 0;
	ssize_t r = f(fd, buf, n);
	if (w_)
		log_written(pos, buf, r);
	WATCH_END();
	return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	static ssize_t (*f)(int, const struct iovec *, int);
	if (!f)
		f = real("writev");
	WATCH_BEGIN(fd);
	uint64_t pos = w_ ? cur_pos(fd) : 0;
	ssize_t r = f(fd, iov, cnt);
	if (w_)
		log_writtenv(pos, iov, cnt, r);
	WATCH_END();
	return r;
}

#define PWRITEV(name)                                                              \
	ssize_t name(int fd, const struct iovec *iov, int cnt, off_t off)          \
	{                                                                          \
		static ssize_t (*f)(int, const struct iovec *, int, off_t);        \
		if (!f)                                                            \
			f = real(#name);                                           \
		WATCH_BEGIN(fd);                                                   \
		ssize_t r = f(fd, iov, cnt, off);                                  \
		if (w_)                                                            \
			log_writtenv((uint64_t)off, iov, cnt, r);                  \
		WATCH_END();                                                       \
		return r;                                                          \
	}
PWRITEV(pwritev)
PWRITEV(pwritev64)

#define PWRITEV2(name)                                                               \
	ssize_t name(int fd, const struct iovec *iov, int cnt, off_t off, int flags) \
	{                                                                            \
		static ssize_t (*f)(int, const struct iovec *, int, off_t, int);     \
		if (!f)                                                              \
			f = real(#name);                                             \
		WATCH_BEGIN(fd);                                                     \
		uint64_t pos = off == -1 && w_ ? cur_pos(fd) : (uint64_t)off;        \
		ssize_t r = f(fd, iov, cnt, off, flags);                             \
		if (w_)                                                              \
			log_writtenv(pos, iov, cnt, r);                              \
		WATCH_END();                                                         \
		return r;                                                            \
	}
PWRITEV2(pwritev2)
PWRITEV2(pwritev64v2)

#define FALLOCATE(name)                                                          \
	int name(int fd, int mode, off_t off, off_t len)                         \
	{                                                                        \
		static int (*f)(int, int, off_t, off_t);                         \
		if (!f)                                                          \
			f = real(#name);                                         \
		WATCH_BEGIN(fd);                                                 \
		int r = f(fd, mode, off, len);                                   \
		if (w_ && r == 0 && log_fd >= 0)                                 \
			log_rec(mode == 0 ? 'A' : (mode & FALLOC_FL_KEEP_SIZE) ? 'Z' : 'X', \
				(uint64_t)off, (uint64_t)len);                   \
		WATCH_END();                                                     \
		return r;                                                        \
	}
FALLOCATE(fallocate)
FALLOCATE(fallocate64)

#define FTRUNCATE(name)                                        \
	int name(int fd, off_t len)                            \
	{                                                      \
		static int (*f)(int, off_t);                   \
		if (!f)                                        \
			f = real(#name);                       \
		WATCH_BEGIN(fd);                               \
		int r = f(fd, len);                            \
		if (w_ && r == 0 && log_fd >= 0)               \
			log_rec('T', (uint64_t)len, 0);        \
		WATCH_END();                                   \
		return r;                                      \
	}
FTRUNCATE(ftruncate)
FTRUNCATE(ftruncate64)

#define FLUSH(name)                                          \
	int name(int fd)                                     \
	{                                                    \
		static int (*f)(int);                        \
		if (!f)                                      \
			f = real(#name);                     \
		bool w_ = watched(fd);                       \
		uint64_t before = 0;                         \
		if (w_) {                                    \
			pthread_mutex_lock(&mu);             \
			before = logged;                     \
			pthread_mutex_unlock(&mu);           \
		}                                            \
		int r = f(fd);                               \
		if (w_ && r == 0 && log_fd >= 0) {           \
			pthread_mutex_lock(&mu);             \
			log_rec('F', before, 0);             \
			pthread_mutex_unlock(&mu);           \
		}                                            \
		return r;                                    \
	}
FLUSH(fdatasync)
FLUSH(fsync)
