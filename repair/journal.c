/*
 * journal.c - writing, verifying and replaying undo journals (format and
 * binding rules in journal.h).  The journal is read back through the
 * bounded reader: it is a file like any other and may be damaged.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/escape.h"
#include "../core/problems.h"
#include "../core/reader.h"

#define HDR_FIXED 40
#define WIT_LEN 48
#define REC_FIXED 56
#define SHA_LEN 32
#define TRAILER_LEN 48
#define REC_MAGIC 0x51435552u
#define SUM_MAGIC 0x51435553u
#define SUM_FIXED 16
#define END_MAGIC "QCUEND01"
#define JOURNAL_MAX (UINT64_C(1) << 36)

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool sha256(const void *data, size_t len, uint8_t out[SHA_LEN])
{
	unsigned int n = 0;
	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == SHA_LEN;
}

/* A parsed region (pointers into the journal buffer). */
struct region {
	uint32_t flags;
	uint64_t offset;
	uint32_t len, old_len;
	const uint8_t *new_sha, *old;
};

/* A growable byte buffer for building the journal. */
struct buf {
	uint8_t *p;
	size_t n, cap;
	bool oom;
	bool stale;  /* the image no longer holds a write's planned old bytes */
};

static uint8_t *buf_grow(struct buf *b, size_t len)
{
	if (b->oom)
		return NULL;
	if (len > SIZE_MAX - b->n) {
		b->oom = true;
		return NULL;
	}
	if (b->n + len > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		while (ncap < b->n + len)
			ncap *= 2;
		uint8_t *np = realloc(b->p, ncap);
		if (!np) {
			b->oom = true;
			return NULL;
		}
		b->p = np;
		b->cap = ncap;
	}
	uint8_t *r = b->p + b->n;
	b->n += len;
	return r;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int sync_dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	free(copy);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/*
 * The old bytes of all regions as disjoint pieces sorted by offset, so
 * that putting them back over a range costs a binary search plus the
 * pieces it touches (not every region for every chunk: undo of a journal
 * of n regions stays O(n log n), SECURITY.md "Bounded time").
 */
struct piece {
	uint64_t off, end;
	const uint8_t *old; /* bytes for [off, end) */
};

struct pieces {
	struct piece *v;
	size_t n;
};

/* Bytes of the image at [at, at+n) in buf: put the old bytes back. */
static void put_back(const struct pieces *ps, uint64_t at, uint8_t *buf, size_t n)
{
	size_t lo = 0, hi = ps->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ps->v[mid].end <= at)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = lo; k < ps->n && ps->v[k].off < at + n; k++) {
		const struct piece *g = &ps->v[k];
		uint64_t s0 = g->off > at ? g->off : at;
		uint64_t e0 = g->end < at + n ? g->end : at + n;
		if (s0 < e0)
			memcpy(buf + (s0 - at), g->old + (s0 - g->off), (size_t)(e0 - s0));
	}
}

/* SHA-256 of image bytes [off, off+len), with the old bytes of the
 * journal's regions put back over them when ps is not NULL. */
static int hash_range(struct qc_io *io, uint64_t off, uint64_t len, const struct pieces *ps,
		      uint8_t out[SHA_LEN])
{
	enum { CHUNK = 1 << 20 };
	uint8_t *buf = malloc(CHUNK);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = (buf && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) ? 0 : -ENOMEM;
	for (uint64_t at = off; r == 0 && at < off + len;) {
		size_t n = off + len - at < CHUNK ? (size_t)(off + len - at) : CHUNK;
		long long got = qc_io_read(io, buf, n, at);
		if (got < 0) {
			r = (int)got;
			break;
		}
		if (ps)
			put_back(ps, at, buf, n);
		if (EVP_DigestUpdate(ctx, buf, n) != 1)
			r = -EIO;
		at += n;
	}
	unsigned int olen = 0;
	if (r == 0 && (EVP_DigestFinal_ex(ctx, out, &olen) != 1 || olen != SHA_LEN))
		r = -EIO;
	EVP_MD_CTX_free(ctx);
	free(buf);
	return r;
}

/* The header and the witnesses' hashes, then the header's checksum. */
static bool build_header(struct buf *b, struct qc_io *io, const struct qc_plan *p,
			 const struct qc_witness *wit, size_t nwit, char *err, size_t errlen)
{
	size_t hlen = HDR_FIXED + nwit * WIT_LEN;
	uint8_t *hdr = buf_grow(b, hlen + SHA_LEN);
	if (!hdr)
		return false;
	memset(hdr, 0, hlen + SHA_LEN);
	memcpy(hdr, QC_JOURNAL_MAGIC, 8);
	qc_put_be32(hdr + 8, QC_JOURNAL_VERSION);
	qc_put_be32(hdr + 12, (uint32_t)nwit);
	qc_put_be64(hdr + 16, io->size);
	qc_put_be64(hdr + 24, p->end_after > io->size ? p->end_after : io->size);
	qc_put_be32(hdr + 32, (uint32_t)p->n);
	for (size_t k = 0; k < nwit; k++) {
		uint8_t *w = hdr + HDR_FIXED + k * WIT_LEN;
		uint64_t off = wit[k].offset, len = wit[k].length;
		/* only bytes inside the old file bind; a range wholly past its end
		 * is recorded as the empty range at the end (undo refuses any
		 * other range outside the image: found by fuzz/fuzz_repair.c, a
		 * refcount table whose last cluster lies past the end of the file) */
		if (off >= io->size) {
			off = io->size;
			len = 0;
		} else if (len > io->size - off) {
			len = io->size - off;
		}
		qc_put_be64(w, off);
		qc_put_be64(w + 8, len);
		if (hash_range(io, off, len, NULL, w + 16) < 0) {
			set_err(err, errlen, "cannot read the image at 0x%" PRIx64, off);
			return false;
		}
	}
	sha256(hdr, hlen, hdr + hlen);
	return true;
}

/* The region record of write w: its old bytes, which must be the ones
 * planned (compare-and-swap, cas.h); its checksum goes to sum. */
static bool build_region(struct buf *b, struct qc_io *io, const struct qc_write *w,
			 uint8_t sum[SHA_LEN], char *err, size_t errlen)
{
	uint64_t old_len = 0;
	if (w->offset < io->size)
		old_len = io->size - w->offset < w->len ? io->size - w->offset : w->len;
	size_t reclen = REC_FIXED + (size_t)old_len + SHA_LEN;
	size_t at = b->n;
	uint8_t *r = buf_grow(b, reclen);
	if (!r)
		return false;
	qc_put_be32(r, REC_MAGIC);
	qc_put_be32(r + 4, w->phase == QC_PH_FINAL ? 1 : 0);
	qc_put_be64(r + 8, w->offset);
	qc_put_be32(r + 16, (uint32_t)w->len);
	qc_put_be32(r + 20, (uint32_t)old_len);
	sha256(w->data, w->len, r + 24);
	if (old_len && qc_io_read_full(io, r + REC_FIXED, (size_t)old_len, w->offset) < 0) {
		set_err(err, errlen, "cannot read old bytes at 0x%" PRIx64, w->offset);
		return false;
	}
	if (!w->old || memcmp(r + REC_FIXED, w->old, (size_t)old_len)) {
		set_err(err, errlen, "the image changed at 0x%" PRIx64 " since the repair was planned", w->offset);
		b->stale = true;
		return false;
	}
	r = b->p + at; /* buf_grow may not move b->p here, but be safe */
	sha256(r, REC_FIXED + (size_t)old_len, r + REC_FIXED + old_len);
	memcpy(sum, r + REC_FIXED + old_len, SHA_LEN);
	return true;
}

/* One summary line of write w into line (at most QC_JOURNAL_MAX_SUMMARY_LINE
 * bytes with its '\n'): the plan's own line (qc_plan_print_human), with
 * every control byte of the summary made '?' so a line is one line. */
static size_t summary_line(const struct qc_write *w, char *line)
{
	char sum[sizeof(w->summary)];
	size_t k = 0;
	for (; k < sizeof(sum) - 1 && w->summary[k]; k++) {
		unsigned char c = (unsigned char)w->summary[k];
		sum[k] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	sum[k] = 0;
	char guest[64] = "";
	if (w->guest_offset != QC_NO_OFFSET)
		snprintf(guest, sizeof(guest), " (guest 0x%" PRIx64 "+0x%" PRIx64 ")", w->guest_offset,
			 w->guest_length);
	int n = snprintf(line, QC_JOURNAL_MAX_SUMMARY_LINE, "[%s] write 0x%" PRIx64 " +%zu  %s: %s%s",
			 qc_phase_name(w->phase), w->offset, w->len, qc_problem_table[w->code].code, sum,
			 guest);
	size_t len = n < 0 ? 0 : (size_t)n;
	if (len > QC_JOURNAL_MAX_SUMMARY_LINE - 2)
		len = QC_JOURNAL_MAX_SUMMARY_LINE - 2;
	line[len++] = '\n';
	return len;
}

/*
 * The summary section (version 2): one line per plan write, in plan order,
 * as long as the text stays within QC_JOURNAL_MAX_SUMMARY; a write with no
 * guest range at stake only within half of it, so the lines that name
 * guest ranges (a dropped pointer, both ranges of a clone) are the last to
 * go.  Writes left out are counted on a last line.  Its checksum goes to
 * sum.
 */
static bool build_summary(struct buf *b, const struct qc_plan *p, uint8_t sum[SHA_LEN])
{
	size_t at = b->n;
	if (!buf_grow(b, SUM_FIXED))
		return false;
	uint32_t lines = 0;
	size_t text = 0, left = 0, left_guest = 0;
	char line[QC_JOURNAL_MAX_SUMMARY_LINE];
	for (size_t i = 0; i < p->n; i++) {
		const struct qc_write *w = &p->w[i];
		bool guest = w->guest_offset != QC_NO_OFFSET;
		size_t n = summary_line(w, line);
		/* room kept for the closing line */
		uint64_t cap = guest ? QC_JOURNAL_MAX_SUMMARY - QC_JOURNAL_MAX_SUMMARY_LINE
				     : QC_JOURNAL_MAX_SUMMARY / 2;
		if (text + n > cap) {
			left++;
			left_guest += guest;
			continue;
		}
		uint8_t *d = buf_grow(b, n);
		if (!d)
			return false;
		memcpy(d, line, n);
		text += n;
		lines++;
	}
	if (left) {
		int n = snprintf(line, sizeof(line), "... %zu more write(s) not summarised (%zu with a guest range at stake): the summary is full\n",
				 left, left_guest);
		size_t len = n < 0 ? 0 : (size_t)n;
		uint8_t *d = buf_grow(b, len);
		if (!d)
			return false;
		memcpy(d, line, len);
		text += len;
		lines++;
	}
	uint8_t *h = b->p + at;
	qc_put_be32(h, SUM_MAGIC);
	qc_put_be32(h + 4, lines);
	qc_put_be32(h + 8, (uint32_t)text);
	qc_put_be32(h + 12, 0);
	uint8_t *d = buf_grow(b, SHA_LEN);
	if (!d)
		return false;
	h = b->p + at;
	sha256(h, SUM_FIXED + text, b->p + b->n - SHA_LEN);
	memcpy(sum, b->p + b->n - SHA_LEN, SHA_LEN);
	return true;
}

static bool build(struct buf *b, struct qc_io *io, const struct qc_plan *p,
		  const struct qc_witness *wit, size_t nwit, char *err, size_t errlen)
{
	if (!build_header(b, io, p, wit, nwit, err, errlen))
		return false;
	/* chain of checksums for the trailer: the header's, then each region's,
	 * then the summary's */
	uint8_t *chain = malloc((p->n + 2) * SHA_LEN);
	if (!chain) {
		b->oom = true;
		return false;
	}
	memcpy(chain, b->p + b->n - SHA_LEN, SHA_LEN);
	for (size_t i = 0; i < p->n; i++) {
		if (!build_region(b, io, &p->w[i], chain + (i + 1) * SHA_LEN, err, errlen)) {
			free(chain);
			return false;
		}
	}
	uint8_t *t = NULL;
	if (build_summary(b, p, chain + (p->n + 1) * SHA_LEN))
		t = buf_grow(b, TRAILER_LEN);
	if (!t) {
		free(chain);
		return false;
	}
	memset(t, 0, TRAILER_LEN);
	memcpy(t, END_MAGIC, 8);
	qc_put_be32(t + 8, (uint32_t)p->n);
	sha256(chain, (p->n + 2) * SHA_LEN, t + 16);
	free(chain);
	return true;
}

int qc_journal_write(const char *path, struct qc_io *io, const struct qc_plan *p,
		     const struct qc_witness *wit, size_t nwit, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->n; i++) {
		if (p->w[i].len > QC_JOURNAL_MAX_REGION) {
			set_err(err, errlen, "a planned write is too large for the journal");
			return -EFBIG;
		}
	}
	if (p->n > UINT32_MAX || nwit > QC_JOURNAL_MAX_WITNESSES) {
		set_err(err, errlen, "plan too large for the journal");
		return -EFBIG;
	}
	struct buf b = { 0 };
	if (!build(&b, io, p, wit, nwit, err, errlen)) {
		if (b.oom)
			set_err(err, errlen, "out of memory building the undo journal");
		free(b.p);
		return b.oom ? -ENOMEM : b.stale ? -ESTALE : -EIO;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		set_err(err, errlen, "cannot create undo journal '%s': %s%s", path, strerror(e),
			e == EEXIST ? " (an existing journal is never overwritten)" : "");
		free(b.p);
		return -e;
	}
	int r = write_all(fd, b.p, b.n);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	free(b.p);
	if (r == 0)
		r = sync_dir_of(path);
	if (r < 0) {
		set_err(err, errlen, "cannot write undo journal '%s': %s", path, strerror(-r));
		unlink(path);
	}
	return r;
}

struct journal {
	uint8_t *raw;
	size_t rawlen;
	uint32_t version;
	uint32_t nwit, n;
	const char *summary;    /* version 2: summary_len bytes of lines */
	uint32_t summary_len, summary_lines;
	uint64_t old_size, new_size;
	const uint8_t *wit;     /* nwit records of WIT_LEN bytes */
	struct region *r;
};

static int read_file(const char *path, uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		set_err(err, errlen, "cannot open undo journal '%s': %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > JOURNAL_MAX) {
		close(fd);
		set_err(err, errlen, "'%s' is not a plausible undo journal", path);
		return -EINVAL;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *p = malloc(len ? len : 1);
	if (!p) {
		close(fd);
		set_err(err, errlen, "out of memory reading the journal");
		return -ENOMEM;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	if (done != len) {
		free(p);
		set_err(err, errlen, "cannot read undo journal '%s'", path);
		return -EIO;
	}
	*out = p;
	*outlen = len;
	return 0;
}

/*
 * The summary section at *at (version 2): bounded text of summary_lines
 * lines, each ending in '\n', at most QC_JOURNAL_MAX_SUMMARY_LINE bytes,
 * with no control byte but the line ends; its checksum into sum.  *at moves
 * past it.  -EINVAL when malformed, -E2BIG past QC_JOURNAL_MAX_SUMMARY.
 */
static int parse_summary(struct journal *j, struct qc_view v, uint64_t *at, uint8_t sum[SHA_LEN])
{
	uint32_t magic, lines, len, pad;
	if (!qc_get_be32(v, *at, &magic) || magic != SUM_MAGIC || !qc_get_be32(v, *at + 4, &lines) ||
	    !qc_get_be32(v, *at + 8, &len) || !qc_get_be32(v, *at + 12, &pad) || pad != 0)
		return -EINVAL;
	if (len > QC_JOURNAL_MAX_SUMMARY)
		return -E2BIG;
	if (!qc_view_has(v, *at, (uint64_t)SUM_FIXED + len + SHA_LEN))
		return -EINVAL;
	const uint8_t *sec = j->raw + *at, *text = sec + SUM_FIXED;
	uint8_t sha[SHA_LEN];
	if (!sha256(sec, SUM_FIXED + (size_t)len, sha) || memcmp(sha, text + len, SHA_LEN) != 0)
		return -EINVAL;
	uint32_t seen = 0;
	size_t start = 0;
	for (size_t k = 0; k < len; k++) {
		uint8_t c = text[k];
		if (c == '\n') {
			if (k + 1 - start > QC_JOURNAL_MAX_SUMMARY_LINE)
				return -EINVAL;
			seen++;
			start = k + 1;
		} else if (c < 0x20 || c == 0x7f) {
			return -EINVAL;
		}
	}
	if (start != len || seen != lines)
		return -EINVAL;
	j->summary = (const char *)text;
	j->summary_len = len;
	j->summary_lines = lines;
	memcpy(sum, text + len, SHA_LEN);
	*at += SUM_FIXED + (uint64_t)len + SHA_LEN;
	return 0;
}

/* Print the summary, one line each, escaped (doc/repair.md "Undo"). */
static void print_summary(const struct journal *j, FILE *log)
{
	if (j->version < 2) {
		fprintf(log, "journal version 1: no summary of the repair's writes\n");
		return;
	}
	fprintf(log, "the repair's writes (%" PRIu32 " line(s)):\n", j->summary_lines);
	/* lines are at most QC_JOURNAL_MAX_SUMMARY_LINE bytes with their '\n'
	 * and hold no NUL (parse_summary) */
	char line[QC_JOURNAL_MAX_SUMMARY_LINE];
	size_t start = 0;
	for (size_t k = 0; k < j->summary_len; k++) {
		if (j->summary[k] != '\n')
			continue;
		memcpy(line, j->summary + start, k - start);
		line[k - start] = 0;
		fputs("  ", log);
		qc_esc_human(log, line);
		fputc('\n', log);
		start = k + 1;
	}
}

static int parse(struct journal *j, char *err, size_t errlen)
{
	struct qc_view v = qc_view_make(j->raw, j->rawlen);
	uint8_t sha[SHA_LEN];
	uint32_t ver;
	if (!qc_view_has(v, 0, HDR_FIXED) || memcmp(j->raw, QC_JOURNAL_MAGIC, 8) != 0) {
		set_err(err, errlen, "not a qcow2fsck undo journal (bad magic)");
		return -EINVAL;
	}
	qc_get_be32(v, 12, &j->nwit);
	uint64_t hlen = HDR_FIXED + (uint64_t)j->nwit * WIT_LEN;
	if (j->nwit > QC_JOURNAL_MAX_WITNESSES || !qc_view_has(v, 0, hlen + SHA_LEN) ||
	    !sha256(j->raw, (size_t)hlen, sha) || memcmp(sha, j->raw + hlen, SHA_LEN) != 0) {
		set_err(err, errlen, "damaged undo journal: header checksum mismatch");
		return -EINVAL;
	}
	qc_get_be32(v, 8, &ver);
	if (ver != 1 && ver != 2) {
		set_err(err, errlen, "undo journal version %" PRIu32 " is not supported", ver);
		return -EINVAL;
	}
	j->version = ver;
	qc_get_be64(v, 16, &j->old_size);
	qc_get_be64(v, 24, &j->new_size);
	qc_get_be32(v, 32, &j->n);
	j->wit = j->raw + HDR_FIXED;
	/* each region needs at least REC_FIXED + SHA_LEN bytes: bound n first */
	if ((uint64_t)j->n > j->rawlen / (REC_FIXED + SHA_LEN)) {
		set_err(err, errlen, "damaged undo journal: region count %" PRIu32 " too large", j->n);
		return -EINVAL;
	}
	j->r = calloc(j->n ? j->n : 1, sizeof(*j->r));
	uint8_t *chain = malloc(((size_t)j->n + 2) * SHA_LEN);
	if (!j->r || !chain) {
		free(chain);
		set_err(err, errlen, "out of memory reading the journal");
		return -ENOMEM;
	}
	memcpy(chain, j->raw + hlen, SHA_LEN);
	uint64_t at = hlen + SHA_LEN;
	for (uint32_t i = 0; i < j->n; i++) {
		struct region *r = &j->r[i];
		uint32_t magic;
		uint64_t reclen;
		if (!qc_get_be32(v, at, &magic) || magic != REC_MAGIC ||
		    !qc_get_be32(v, at + 4, &r->flags) || !qc_get_be64(v, at + 8, &r->offset) ||
		    !qc_get_be32(v, at + 16, &r->len) || !qc_get_be32(v, at + 20, &r->old_len) ||
		    r->old_len > r->len || r->len > QC_JOURNAL_MAX_REGION ||
		    r->offset > (UINT64_MAX >> 1) || r->offset + r->len > (j->new_size > j->old_size ? j->new_size : j->old_size) ||
		    /* the old bytes are those that lay inside the old file */
		    (r->old_len && r->offset + r->old_len > j->old_size) ||
		    !qc_add(REC_FIXED, r->old_len, &reclen) ||
		    !qc_view_has(v, at, reclen + SHA_LEN)) {
			free(chain);
			set_err(err, errlen, "damaged undo journal: region %" PRIu32 " is malformed or cut short", i);
			return -EINVAL;
		}
		const uint8_t *rec = j->raw + at;
		if (!sha256(rec, (size_t)reclen, sha) || memcmp(sha, rec + reclen, SHA_LEN) != 0) {
			free(chain);
			set_err(err, errlen, "damaged undo journal: region %" PRIu32 " checksum mismatch", i);
			return -EINVAL;
		}
		r->new_sha = rec + 24;
		r->old = rec + REC_FIXED;
		memcpy(chain + ((size_t)i + 1) * SHA_LEN, rec + reclen, SHA_LEN);
		at += reclen + SHA_LEN;
	}
	size_t nchain = (size_t)j->n + 1;
	if (j->version >= 2) {
		int r = parse_summary(j, v, &at, chain + nchain * SHA_LEN);
		if (r < 0) {
			free(chain);
			set_err(err, errlen, "damaged undo journal: %s", r == -E2BIG ? "summary too large" : "summary malformed or its checksum mismatch");
			return -EINVAL;
		}
		nchain++;
	}
	uint32_t tn, pad;
	bool ok = qc_view_has(v, at, TRAILER_LEN) && at + TRAILER_LEN == j->rawlen &&
		  memcmp(j->raw + at, END_MAGIC, 8) == 0 && qc_get_be32(v, at + 8, &tn) && tn == j->n &&
		  qc_get_be32(v, at + 12, &pad) && pad == 0 &&
		  sha256(chain, nchain * SHA_LEN, sha) &&
		  memcmp(sha, j->raw + at + 16, SHA_LEN) == 0;
	free(chain);
	if (!ok) {
		set_err(err, errlen, "damaged undo journal: missing or bad trailer (incomplete journal?)");
		return -EINVAL;
	}
	return 0;
}

/* Regions sorted by (offset, length, new-bytes hash): "is there a write
 * to this same range with these new bytes" is one binary search. */
static const struct region *sort_regions;
static int cmp_key(const struct region *x, const struct region *y)
{
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->new_sha, y->new_sha, SHA_LEN);
}

static int cmp_idx(const void *a, const void *b)
{
	const struct region *x = &sort_regions[*(const uint32_t *)a];
	const struct region *y = &sort_regions[*(const uint32_t *)b];
	int c = cmp_key(x, y);
	if (c)
		return c;
	/* ties by index: a stable order for the pieces built from it */
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

/* Region comparisons made by undo's matching, for the complexity test. */
unsigned long long qc_journal_match_steps;

/* Does the image's current content of region r equal its old bytes or the
 * new bytes of some write to the same range? */
static int region_state(struct journal *j, const uint32_t *idx, struct qc_io *io,
			const struct region *r, uint8_t *buf, bool *is_old)
{
	long long got = qc_io_read(io, buf, r->len, r->offset);
	if (got < 0)
		return (int)got;
	*is_old = memcmp(buf, r->old, r->old_len) == 0;
	if (*is_old)
		return 1;
	struct region key = *r;
	uint8_t sha[SHA_LEN];
	if (!sha256(buf, r->len, sha))
		return -EIO;
	key.new_sha = sha;
	size_t lo = 0, hi = j->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		qc_journal_match_steps++;
		int c = cmp_key(&j->r[idx[mid]], &key);
		if (c == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/*
 * The pieces of the regions' old bytes (see struct piece), from the index
 * sorted by offset.  Two regions that overlap must hold the same old bytes
 * where they do (both were read from the image before the repair): if
 * not, the journal is damaged.  The bytes compared are at most each
 * region's own, so this is linear in the journal's size.
 */
static int build_pieces(const struct journal *j, const uint32_t *idx, struct pieces *ps)
{
	ps->n = 0;
	ps->v = malloc(((size_t)j->n + 1) * sizeof(*ps->v));
	if (!ps->v)
		return -ENOMEM;
	uint64_t covered = 0; /* end of the pieces so far */
	for (uint32_t k = 0; k < j->n; k++) {
		const struct region *g = &j->r[idx[k]];
		uint64_t end = g->offset + g->old_len;
		if (g->old_len == 0)
			continue;
		uint64_t from = g->offset;
		if (ps->n && covered > g->offset) {
			/* the overlap [g->offset, min(end, covered)) lies in the
			 * last pieces: compare it, walking back from the end */
			uint64_t ov_end = end < covered ? end : covered;
			size_t t = ps->n;
			while (t > 0 && ps->v[t - 1].end > g->offset)
				t--;
			for (; t < ps->n && ps->v[t].off < ov_end; t++) {
				const struct piece *q = &ps->v[t];
				uint64_t s0 = q->off > g->offset ? q->off : g->offset;
				uint64_t e0 = q->end < ov_end ? q->end : ov_end;
				qc_journal_match_steps++;
				if (s0 < e0 && memcmp(q->old + (s0 - q->off), g->old + (s0 - g->offset),
						      (size_t)(e0 - s0)) != 0)
					return -EINVAL;
			}
			from = covered;
		}
		if (end > from) {
			ps->v[ps->n++] = (struct piece){ from, end, g->old + (from - g->offset) };
			covered = end;
		}
	}
	return 0;
}

static int verify_image(struct journal *j, struct qc_io *io, bool force, FILE *log, char *err,
			size_t errlen)
{
	uint64_t hi = j->new_size > j->old_size ? j->new_size : j->old_size;
	if (io->size < j->old_size || io->size > hi) {
		set_err(err, errlen, "the image is %" PRIu64 " bytes; this journal was written for an image of %" PRIu64 " bytes (%" PRIu64 " after the repair)",
			io->size, j->old_size, j->new_size);
		return -ESTALE;
	}
	uint32_t maxlen = 1;
	for (uint32_t i = 0; i < j->n; i++)
		if (j->r[i].len > maxlen)
			maxlen = j->r[i].len;
	uint8_t *buf = malloc(maxlen);
	uint32_t *idx = malloc(((size_t)j->n + 1) * sizeof(*idx));
	struct pieces ps = { NULL, 0 };
	if (!buf || !idx) {
		free(buf);
		free(idx);
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < j->n; i++)
		idx[i] = i;
	sort_regions = j->r;
	qsort(idx, j->n, sizeof(*idx), cmp_idx);
	int r = 0;
	for (uint32_t i = 0; i < j->n && r == 0; i++) {
		bool is_old;
		int s = region_state(j, idx, io, &j->r[i], buf, &is_old);
		if (s < 0) {
			set_err(err, errlen, "cannot read the image: %s", strerror(-s));
			r = s;
		} else if (s == 0 && force) {
			if (log)
				fprintf(log, "  torn region 0x%" PRIx64 " +%" PRIu32 ": neither the old nor the new bytes (--force: restored anyway)\n",
					j->r[i].offset, j->r[i].len);
		} else if (s == 0) {
			set_err(err, errlen, "the image's bytes at 0x%" PRIx64 " (+%" PRIu32 ") are neither those before nor after this journal's repair: refusing an image the journal was not written for (if the repair itself was cut off mid-write, --force restores them)",
				j->r[i].offset, j->r[i].len);
			r = -ESTALE;
		}
	}
	free(buf);
	if (r == 0) {
		r = build_pieces(j, idx, &ps);
		if (r == -EINVAL)
			set_err(err, errlen, "damaged undo journal: two regions disagree on the old bytes they share");
		else if (r < 0)
			set_err(err, errlen, "out of memory");
	}
	free(idx);
	/* the witness ranges (header cluster, tables), old bytes put back */
	for (uint32_t k = 0; k < j->nwit && r == 0; k++) {
		const uint8_t *w = j->wit + (size_t)k * WIT_LEN;
		uint64_t off = qc_be64_at(w), len = qc_be64_at(w + 8);
		uint8_t sha[SHA_LEN];
		if (len > QC_JOURNAL_MAX_WITNESS || len > j->old_size || off > j->old_size - len) {
			set_err(err, errlen, "damaged undo journal: witness range %" PRIu32 " is outside the image", k);
			r = -EINVAL;
			break;
		}
		int h = hash_range(io, off, len, &ps, sha);
		if (h < 0) {
			set_err(err, errlen, "cannot read the image: %s", strerror(-h));
			r = h;
		} else if (memcmp(sha, w + 16, SHA_LEN) != 0) {
			set_err(err, errlen, "the image's bytes at 0x%" PRIx64 " (+%" PRIu64 "%s) differ from those of the image this journal belongs to: refusing an image it was not written for",
				off, len, k == 0 ? ", the header cluster" : "");
			r = -ESTALE;
		}
	}
	free(ps.v);
	return r;
}

int qc_journal_undo(const char *path, struct qc_io *io, unsigned flags, FILE *log, char *err,
		    size_t errlen)
{
	bool dry_run = (flags & QC_UNDO_DRY_RUN) != 0;
	struct journal j = { 0 };
	int r = read_file(path, &j.raw, &j.rawlen, err, errlen);
	if (r < 0)
		return r;
	r = parse(&j, err, errlen);
	if (r == 0)
		r = verify_image(&j, io, (flags & QC_UNDO_FORCE) != 0, log, err, errlen);
	if (r == 0 && log && dry_run)
		print_summary(&j, log);
	if (r == 0 && log)
		fprintf(log, "%s: %" PRIu32 " region(s), image length %" PRIu64 " -> %" PRIu64 "\n",
			dry_run ? "would restore" : "restoring", j.n, io->size, j.old_size);
	/* restore in reverse order, so the header goes back last-written-first */
	for (uint32_t k = j.n; r == 0 && k-- > 0;) {
		const struct region *g = &j.r[k];
		if (log)
			fprintf(log, "  0x%" PRIx64 " +%" PRIu32 " (%" PRIu32 " old bytes)\n", g->offset,
				g->len, g->old_len);
		if (!dry_run && g->old_len) {
			r = qc_io_write(io, g->old, g->old_len, g->offset);
			if (r < 0)
				set_err(err, errlen, "write failed at 0x%" PRIx64 ": %s", g->offset,
					strerror(-r));
		}
	}
	if (r == 0 && !dry_run && io->size != j.old_size) {
		r = qc_io_truncate(io, j.old_size);
		if (r < 0)
			set_err(err, errlen, "cannot restore the file length: %s", strerror(-r));
	}
	if (r == 0 && !dry_run) {
		r = qc_io_sync(io);
		if (r < 0)
			set_err(err, errlen, "sync failed: %s", strerror(-r));
	}
	free(j.r);
	free(j.raw);
	return r;
}

char *qc_journal_default_path(const char *image)
{
	size_t len = strlen(image) + 32;
	char *p = malloc(len);
	if (!p)
		return NULL;
	for (unsigned i = 0; i < 10000; i++) {
		if (i == 0)
			snprintf(p, len, "%s.qcow2fsck-undo", image);
		else
			snprintf(p, len, "%s.qcow2fsck-undo.%u", image, i);
		struct stat st;
		if (lstat(p, &st) < 0 && errno == ENOENT)
			return p;
	}
	free(p);
	return NULL;
}
