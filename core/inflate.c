/*
 * inflate.c - raw deflate (RFC 1951) decoded with the answer of QEMU's
 * zlib call: inflateInit2(-12), one inflate(Z_FINISH) into one cluster,
 * readable when the cluster is full (core/decompress.h).  What zlib 1.2.13
 * accepts and rejects, and at which bit it stops when the input or the
 * output runs out, is written down in doc/inflate.md "The exact decoder";
 * this file follows it rule for rule, and tests/dcdiff.c and the inflate
 * fuzz target compare it with zlib on every stream they have.
 *
 * Two decoders share the state: a careful one that reads the stream bit
 * position by bit position and decides every stop and every error, and a
 * fast loop that runs only while the input holds 8 more bytes and the
 * output room for the longest match, and that hands back, before reading
 * it, any symbol it does not decode whole (an end of block, a code longer
 * than its table, an invalid code, a distance before the start of the
 * output).  The fast loop's literal/length table gives two literals in one
 * look-up when both codes fit its 12 index bits.
 *
 * Relies on: nothing but the caller's buffers; all reads are bounded by
 * inlen, all writes by outlen.  The fixed codes' tables are built once,
 * under pthread_once, and shared read-only by all contexts.
 */
#include "inflate.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAXBITS 15
#define LBITS 12 /* literal/length table index bits */
#define LSIZE (1u << LBITS)
#define DBITS 10 /* distance table index bits */
#define DSIZE (1u << DBITS)
/* Output room the fast loop needs for a match: the longest (258) plus the
 * 16-byte chunks it copies in; for a round of literals: four pairs. */
#define FAST_OUT_ROOM 280
#define FAST_LIT_ROOM 8
/* QEMU's window: windowBits 12 (decompress.h). */
#define WINDOW 4096

/*
 * A table entry: bits 0-7 the bits it consumes, 8-11 its kind, 12-15 the
 * extra bits (length, distance) or the first code's length (a literal,
 * single or pair), 16-31 the literal(s), the length base or the distance
 * base.
 */
enum kind { K_LIT, K_LIT2, K_LEN, /* K_LIT, K_LIT2 first: fast_loop */ K_EOB, K_DIST, K_LONG, K_BAD };

static inline uint32_t mk(unsigned nbits, unsigned kind, unsigned aux, unsigned val)
{
	return (uint32_t)nbits | (uint32_t)kind << 8 | (uint32_t)aux << 12 | (uint32_t)val << 16;
}

#define E_NBITS(e) ((unsigned)(e) & 0xffu)
#define E_KIND(e) (((unsigned)(e) >> 8) & 0xfu)
#define E_AUX(e) (((unsigned)(e) >> 12) & 0xfu)
#define E_VAL(e) ((unsigned)((e) >> 16))

/* RFC 1951 3.2.5 and 3.2.7 */
static const uint16_t len_base[29] = { 3,  4,  5,  6,  7,  8,  9,  10, 11,  13,
				       15, 17, 19, 23, 27, 31, 35, 43, 51,  59,
				       67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const uint8_t len_extra[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
				       2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const uint16_t dist_base[30] = { 1,    2,    3,    4,    5,    7,     9,     13,
					17,   25,   33,   49,   65,   97,    129,   193,
					257,  385,  513,  769,  1025, 1537,  2049,  3073,
					4097, 6145, 8193, 12289, 16385, 24577 };
static const uint8_t dist_extra[30] = { 0, 0, 0, 0, 1, 1, 2,  2,  3,  3,  4,  4,  5,  5,  6,
					6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
static const uint8_t cl_order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };

/* A canonical code as its code lengths define it (RFC 1951 3.2.2). */
enum shape { CODE_FULL, CODE_EMPTY, CODE_ONE };
struct code {
	uint16_t count[MAXBITS + 1];
	uint16_t sym[288]; /* symbols by code length, then by value */
	uint8_t shape;     /* CODE_EMPTY: no symbol; CODE_ONE: one code of one bit */
};

struct qc_inflate {
	bool discard; /* the fast loop writes no output (qc_inflate_discard) */
	uint32_t lit[LSIZE], dist[DSIZE]; /* the current dynamic block's */
	uint8_t cnt[LSIZE];               /* its count table, when discard */
	uint32_t clt[1u << 7];            /* the code length code's */
	struct code lc, dc, cl;
	uint8_t lens[320];
};

/* The fixed codes (RFC 1951 3.2.6), built once for every context. */
static struct {
	uint32_t lit[LSIZE], dist[DSIZE];
	uint8_t cnt[LSIZE];
	struct code lc, dc;
} fixed;
static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;

/* The careful decoder's view: the whole input, a bit position in it. */
struct rd {
	const uint8_t *in;
	size_t inlen;
	uint64_t pos, end; /* in bits */
};

static inline bool avail(const struct rd *r, unsigned k)
{
	return r->end - r->pos >= k;
}

/* k <= 24 bits at the position, zeros past the end of the input */
static uint32_t peek(const struct rd *r, unsigned k)
{
	size_t b = (size_t)(r->pos >> 3);
	uint32_t v = 0;
	for (unsigned i = 0; i < 4 && b + i < r->inlen; i++)
		v |= (uint32_t)r->in[b + i] << (8 * i);
	return (v >> (r->pos & 7)) & ((1u << k) - 1);
}

static uint32_t take(struct rd *r, unsigned k)
{
	uint32_t v = peek(r, k);
	r->pos += k;
	return v;
}

/*
 * The code of lens[0..n).  zlib's rules (inftrees.c): an over-subscribed
 * set is refused; an incomplete one too, except a set with no code at all
 * and, for literal/length and distance codes, one code of one bit.
 */
static bool build_code(struct code *c, const uint8_t *lens, unsigned n, bool code_lengths)
{
	uint16_t offs[MAXBITS + 1];
	memset(c->count, 0, sizeof(c->count));
	for (unsigned s = 0; s < n; s++)
		c->count[lens[s]]++;
	unsigned max = MAXBITS;
	while (max > 0 && c->count[max] == 0)
		max--;
	if (max == 0) {
		c->shape = CODE_EMPTY;
		return true;
	}
	int left = 1;
	for (unsigned len = 1; len <= MAXBITS; len++) {
		left = 2 * left - c->count[len];
		if (left < 0)
			return false;
	}
	if (left > 0 && (code_lengths || max != 1))
		return false;
	c->shape = left > 0 ? CODE_ONE : CODE_FULL;
	offs[1] = 0;
	for (unsigned len = 1; len < MAXBITS; len++)
		offs[len + 1] = (uint16_t)(offs[len] + c->count[len]);
	for (unsigned s = 0; s < n; s++)
		if (lens[s])
			c->sym[offs[lens[s]]++] = (uint16_t)s;
	return true;
}

static uint32_t sym_entry(unsigned sym, unsigned len, bool dist)
{
	if (dist)
		return sym < 30 ? mk(len, K_DIST, dist_extra[sym], dist_base[sym]) : mk(len, K_BAD, 0, 0);
	if (sym < 256)
		return mk(len, K_LIT, len, sym); /* aux: pair_literals */
	if (sym == 256)
		return mk(len, K_EOB, 0, 0);
	if (sym < 286)
		return mk(len, K_LEN, len_extra[sym - 257], len_base[sym - 257]);
	return mk(len, K_BAD, 0, 0); /* fixed code's 286, 287 */
}

/* the len low bits of code, reversed (deflate sends codes high bit first) */
static unsigned reverse(unsigned code, unsigned len)
{
	unsigned x = code;
	x = ((x & 0x5555u) << 1) | ((x >> 1) & 0x5555u);
	x = ((x & 0x3333u) << 2) | ((x >> 2) & 0x3333u);
	x = ((x & 0x0f0fu) << 4) | ((x >> 4) & 0x0f0fu);
	x = ((x & 0x00ffu) << 8) | ((x >> 8) & 0x00ffu);
	return x >> (16 - len);
}

/*
 * The look-up table of code c over tbits bits of input: codes up to tbits
 * long are replicated; a longer code's first tbits bits give K_LONG.  The
 * bit patterns of an incomplete code give K_BAD of one bit, as zlib's
 * table does (its invalid entries of an empty or one-code set are 1 bit).
 */
static void fill_table(uint32_t *t, unsigned tbits, const struct code *c, bool dist)
{
	unsigned size = 1u << tbits;
	if (c->shape != CODE_FULL)
		for (unsigned i = 0; i < size; i++)
			t[i] = mk(1, K_BAD, 0, 0);
	unsigned code = 0, k = 0;
	for (unsigned len = 1; len <= MAXBITS; len++) {
		for (unsigned j = 0; j < c->count[len]; j++, k++, code++) {
			unsigned rev = reverse(code, len);
			if (len <= tbits) {
				uint32_t e = sym_entry(c->sym[k], len, dist);
				for (unsigned i = rev; i < size; i += 1u << len)
					t[i] = e;
			} else {
				t[rev & (size - 1)] = mk(tbits, K_LONG, 0, 0);
			}
		}
		code <<= 1;
	}
}

/*
 * Literal pairs: where a literal's code leaves room in the index bits for
 * a whole second literal code, the entry gives both.  For a first literal
 * a of l1 bits, index rev(a) | j << l1 holds the pair when entry j (whose
 * bits past the known 12 - l1 are zeros) is a literal of at most 12 - l1
 * bits.  Entry j < 2^(12 - l1) may already be a pair: its first literal is
 * what counts, and pairing keeps it (a literal entry, single or pair,
 * carries its first code's length in aux).  What entry j adds to a single
 * to make the pair depends only on j and l1, so it is worked out once per
 * code length (row), and each first literal's entries are a single plus
 * row[j]: this runs for every dynamic block.
 */
static void pair_literals(uint32_t *t, const struct code *c)
{
	uint32_t row[1u << (LBITS - 1)];
	unsigned code = 0, k = 0;
	for (unsigned l1 = 1; l1 < LBITS; l1++) {
		unsigned lim = LBITS - l1;
		bool have_row = false;
		for (unsigned n = 0; n < c->count[l1]; n++, k++, code++) {
			unsigned sym = c->sym[k];
			if (sym >= 256)
				continue;
			if (!have_row) {
				for (unsigned j = 0; j < 1u << lim; j++) {
					uint32_t e2 = t[j];
					unsigned l2 = E_AUX(e2);
					/* K_LIT -> K_LIT2, nbits + l2, the second byte */
					row[j] = E_KIND(e2) <= K_LIT2 && l2 <= lim
							 ? (uint32_t)(K_LIT2 - K_LIT) << 8 | l2 |
								   (E_VAL(e2) & 0xffu) << 24
							 : 0;
				}
				have_row = true;
			}
			unsigned rev = reverse(code, l1);
			uint32_t single = mk(l1, K_LIT, l1, sym);
			for (unsigned j = 0; j < 1u << lim; j++)
				t[rev | j << l1] = single + row[j];
		}
		code <<= 1;
	}
}

/*
 * The count table of a literal/length table, for a decode that only
 * counts (qc_inflate_discard): a byte per index, bits 0-5 the bits the
 * entry consumes, bits 6-7 what it is: 0 one literal, 1 two literals, 2
 * anything else (look at the full entry).  4 KiB instead of 16: the two
 * streams' tables of the lockstep loop stay in the first-level cache.
 */
#define CNT_OTHER 128u
static void fill_count(uint8_t *c, const uint32_t *t)
{
	for (unsigned i = 0; i < LSIZE; i++) {
		unsigned k = E_KIND(t[i]);
		c[i] = (uint8_t)(E_NBITS(t[i]) | (k <= K_LIT2 ? k : 2u) << 6);
	}
}

/*
 * A code longer than the table, read bit by bit against the canonical
 * counts: -1 when the input ends inside it.  c is complete (only complete
 * codes have codes longer than one bit), so every bit pattern ends in a
 * symbol; -2 would mean a broken table.
 */
static int long_sym(const struct rd *r, const struct code *c, unsigned *len)
{
	int code = 0, first = 0, index = 0;
	for (unsigned l = 1; l <= MAXBITS; l++) {
		if (!avail(r, l))
			return -1;
		uint64_t p = r->pos + l - 1;
		code |= (r->in[p >> 3] >> (p & 7)) & 1;
		int count = c->count[l];
		if (code - first < count) {
			*len = l;
			return c->sym[index + code - first];
		}
		index += count;
		first = (first + count) << 1;
		code <<= 1;
	}
	return -2;
}

/*
 * The next symbol of code c (table t of tbits bits) as zlib's careful loop
 * reads it: taken only when its whole code lies within the input (false
 * otherwise, nothing consumed).  *ent gets a one-symbol entry.
 */
static bool next_entry(struct rd *r, const struct code *c, const uint32_t *t, unsigned tbits,
		       bool dist, uint32_t *ent)
{
	uint32_t e = t[peek(r, tbits)];
	if (E_KIND(e) == K_LONG) {
		unsigned len = 0;
		int sym = long_sym(r, c, &len);
		if (sym == -1)
			return false;
		e = sym < 0 ? mk(0, K_BAD, 0, 0) : sym_entry((unsigned)sym, len, dist);
	} else if (E_KIND(e) == K_LIT2) {
		e = mk(E_AUX(e), K_LIT, E_AUX(e), E_VAL(e) & 0xffu);
	}
	if (!avail(r, E_NBITS(e)))
		return false;
	r->pos += E_NBITS(e);
	*ent = e;
	return true;
}

/* Where a decode stopped, or how a step went. */
enum stop {
	ST_OK,          /* (a step) go on */
	ST_EOB,         /* (a block) its end-of-block code */
	ST_END,         /* the final block ended */
	ST_NEED_IN,     /* the input ended inside something */
	ST_FULL_LIT,    /* output full with a literal to write */
	ST_FULL_MATCH,  /* output full with a match (pend_dist) to copy */
	ST_FULL_STORED, /* output full inside a stored block */
	ST_ERROR,       /* zlib's Z_DATA_ERROR, msg */
};

/* One stream's decode, resumable between symbols. */
struct dec {
	struct qc_inflate *f; /* its dynamic tables */
	struct rd r;
	uint8_t *out;
	size_t cap, n;
	const char *msg;
	unsigned pend_dist;
	/* inside a Huffman block: its codes and tables; NULL between blocks */
	const struct code *lc, *dc;
	const uint32_t *lt, *dt;
	const uint8_t *ct; /* its count table (fill_count), with discard */
	bool last;     /* the block is the final one */
	enum stop end; /* ST_OK while the decode goes on */
};

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* A match of len bytes from dist back; may write up to 15 bytes past it. */
static inline uint8_t *copy_match(uint8_t *out, unsigned dist, unsigned len)
{
	const uint8_t *src = out - dist;
	uint8_t *end = out + len;
	if (dist >= 16) {
		do {
			memcpy(out, src, 16);
			out += 16;
			src += 16;
		} while (out < end);
	} else if (dist >= 8) {
		do {
			memcpy(out, src, 8);
			out += 8;
			src += 8;
		} while (out < end);
	} else if (dist == 1) {
		memset(out, *src, len);
	} else {
		while (out < end)
			*out++ = *src++;
	}
	return end;
}

/*
 * The fast loop's state: a bit buffer of `left` bits of input read up to
 * `in`; the bits above them are the input's next bits or zeros, so a
 * refill may OR the same bytes in again.  It runs while 8 input bytes and
 * FAST_LIT_ROOM output bytes remain (FAST_OUT_ROOM for a match).
 */
struct fast {
	uint64_t bb;
	unsigned left;
	const uint8_t *in, *in_stop;
	uint8_t *out, *out0, *out_end;
	const uint32_t *lt, *dt;
	const uint8_t *ct;
};

static bool fast_ready(const struct dec *d)
{
	size_t at = (size_t)(d->r.pos >> 3);
	return d->lt && d->r.inlen >= 16 && at <= d->r.inlen - 16 && d->cap - d->n >= FAST_LIT_ROOM;
}

static inline void fast_enter(struct fast *s, const struct dec *d)
{
	const uint8_t *in = d->r.in + (size_t)(d->r.pos >> 3);
	unsigned sh = (unsigned)(d->r.pos & 7);
	s->bb = load64(in) >> sh;
	s->left = 56 - sh;
	s->in = in + 7;
	s->in_stop = d->r.in + d->r.inlen - 8;
	s->out0 = d->out;
	s->out = d->out + d->n;
	s->out_end = d->out + d->cap;
	s->lt = d->lt;
	s->dt = d->dt;
	s->ct = d->ct;
}

static inline void fast_leave(const struct fast *s, struct dec *d)
{
	d->r.pos = (uint64_t)(s->in - d->r.in) * 8 - s->left;
	d->n = (size_t)(s->out - s->out0);
}

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* room for a round of literals (room for a match: fast_match) */
static ALWAYS_INLINE bool fast_room(const struct fast *s)
{
	return s->in <= s->in_stop && (size_t)(s->out_end - s->out) >= FAST_LIT_ROOM;
}

/* at least 56 bits in the buffer */
static ALWAYS_INLINE void fast_refill(struct fast *s)
{
	s->bb |= load64(s->in) << s->left;
	s->in += (63 - s->left) >> 3;
	s->left |= 56;
}

/* A K_LIT or K_LIT2 entry: both kinds store two bytes (a single literal's
 * second is overwritten next) and advance by kind + 1. */
static ALWAYS_INLINE void fast_emit(struct fast *s, uint32_t e, bool keep)
{
	if (keep) {
		uint16_t v = (uint16_t)E_VAL(e);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		v = (uint16_t)(v >> 8 | v << 8);
#endif
		memcpy(s->out, &v, 2);
	}
	s->out += E_KIND(e) + 1;
	s->bb >>= E_NBITS(e);
	s->left -= E_NBITS(e);
}

/*
 * A K_LEN entry e, looked up at the buffer's low bits: the match, when its
 * distance code is in the table and the distance within the output.  The
 * refill first (it only adds bits above the ones e was read from): a
 * match takes up to 40 bits.  False, with nothing consumed, otherwise.
 */
static ALWAYS_INLINE bool fast_match(struct fast *s, uint32_t e, bool keep)
{
	if (E_KIND(e) != K_LEN || s->in > s->in_stop ||
	    (size_t)(s->out_end - s->out) < FAST_OUT_ROOM)
		return false;
	fast_refill(s);
	unsigned used = E_NBITS(e), x = E_AUX(e);
	unsigned len = E_VAL(e) + (unsigned)((s->bb >> used) & ((1u << x) - 1));
	used += x;
	uint32_t de = s->dt[(s->bb >> used) & (DSIZE - 1)];
	if (E_KIND(de) != K_DIST)
		return false;
	used += E_NBITS(de);
	x = E_AUX(de);
	unsigned dist = E_VAL(de) + (unsigned)((s->bb >> used) & ((1u << x) - 1));
	if (dist > (size_t)(s->out - s->out0))
		return false;
	used += x;
	s->bb >>= used;
	s->left -= used;
	s->out = keep ? copy_match(s->out, dist, len) : s->out + len;
	return true;
}

/* One round: a refill, then up to four literal entries (48 bits) or one
 * match.  False, with nothing of it consumed, when the next symbol is one
 * the fast loop leaves to the careful decoder (see the top of the file),
 * or when the buffers no longer have the room. */
static ALWAYS_INLINE bool fast_round(struct fast *s, bool keep)
{
	if (!fast_room(s))
		return false;
	fast_refill(s);
	uint32_t e = s->lt[s->bb & (LSIZE - 1)];
	if (E_KIND(e) > K_LIT2)
		return fast_match(s, e, keep);
	for (int i = 0; i < 4; i++) {
		fast_emit(s, e, keep);
		e = s->lt[s->bb & (LSIZE - 1)];
		if (E_KIND(e) > K_LIT2)
			break;
	}
	return true;
}

static ALWAYS_INLINE void fast_one_as(struct dec *d, bool keep)
{
	struct fast s;
	fast_enter(&s, d);
	while (fast_round(&s, keep))
		;
	fast_leave(&s, d);
}

/* keep is a constant in each call: two loops, no test per symbol */
static void fast_one(struct dec *d)
{
	if (d->f->discard)
		fast_one_as(d, false);
	else
		fast_one_as(d, true);
}

/* a step of the counting lockstep: count-table entry e (fill_count) */
static ALWAYS_INLINE void count_step(struct fast *s, unsigned e)
{
	s->out += (e >> 6) + 1;
	s->bb >>= e & 63;
	s->left -= e & 63;
}

/*
 * Two independent streams: literal entries in lockstep, one of each per
 * step (the branch that ends the lockstep is rarely taken, so the two
 * chains of table look-ups overlap in the processor), then a round of
 * each for whatever else comes.  count: both decodes only count, and the
 * lockstep looks up their count tables (a byte an entry, fill_count):
 * only an entry that is not a literal is looked up in the full table.
 */
static ALWAYS_INLINE void fast_two_as(struct dec *a, struct dec *b, bool count)
{
	struct fast s, t;
	fast_enter(&s, a);
	fast_enter(&t, b);
	while (fast_room(&s) && fast_room(&t)) {
		fast_refill(&s);
		fast_refill(&t);
		uint32_t es, et;
#define LOOK(x) (count ? (x).ct[(x).bb & (LSIZE - 1)] : (x).lt[(x).bb & (LSIZE - 1)])
#define LITERALS(e, f) (count ? ((e) | (f)) < CNT_OTHER : E_KIND(e) <= K_LIT2 && E_KIND(f) <= K_LIT2)
#define OTHER(e) (count ? (e) >= CNT_OTHER : E_KIND(e) > K_LIT2)
		es = LOOK(s);
		et = LOOK(t);
		for (int i = 0; i < 4 && LITERALS(es, et); i++) {
			if (count) {
				count_step(&s, es);
				count_step(&t, et);
			} else {
				fast_emit(&s, es, true);
				fast_emit(&t, et, true);
			}
			es = LOOK(s);
			et = LOOK(t);
		}
		/* what stopped the lockstep: a stream's next symbol is not a
		 * literal (the other one's literal waits for the next round) */
		if (OTHER(es) && !fast_match(&s, count ? s.lt[s.bb & (LSIZE - 1)] : es, !count))
			break;
		if (OTHER(et) && !fast_match(&t, count ? t.lt[t.bb & (LSIZE - 1)] : et, !count))
			break;
#undef LOOK
#undef LITERALS
#undef OTHER
	}
	fast_leave(&s, a);
	fast_leave(&t, b);
}

/* count is a constant in each call: two loops, no test per symbol */
static void fast_two(struct dec *a, struct dec *b)
{
	if (a->ct && b->ct)
		fast_two_as(a, b, true);
	else
		fast_two_as(a, b, false);
}

/* One symbol of the current block, the careful way. */
static enum stop slow_symbol(struct dec *d)
{
	struct rd *r = &d->r;
	uint32_t e;
	if (!next_entry(r, d->lc, d->lt, LBITS, false, &e))
		return ST_NEED_IN;
	unsigned k = E_KIND(e);
	if (k == K_LIT) {
		if (d->n == d->cap)
			return ST_FULL_LIT;
		d->out[d->n++] = (uint8_t)E_VAL(e);
		return ST_OK;
	}
	if (k == K_EOB)
		return ST_EOB;
	if (k != K_LEN) {
		d->msg = "invalid literal/length code";
		return ST_ERROR;
	}
	if (!avail(r, E_AUX(e)))
		return ST_NEED_IN;
	unsigned len = E_VAL(e) + take(r, E_AUX(e));
	uint32_t de;
	if (!next_entry(r, d->dc, d->dt, DBITS, true, &de))
		return ST_NEED_IN;
	if (E_KIND(de) != K_DIST) {
		d->msg = "invalid distance code";
		return ST_ERROR;
	}
	if (!avail(r, E_AUX(de)))
		return ST_NEED_IN;
	unsigned dist = E_VAL(de) + take(r, E_AUX(de));
	d->pend_dist = dist;
	if (d->n == d->cap)
		return ST_FULL_MATCH;
	if (dist > d->n) {
		d->msg = "invalid distance too far back";
		return ST_ERROR;
	}
	size_t c = d->cap - d->n < len ? d->cap - d->n : len;
	for (size_t i = 0; i < c; i++, d->n++)
		d->out[d->n] = d->out[d->n - dist];
	return c < len ? ST_FULL_MATCH : ST_OK;
}

static enum stop run_stored(struct dec *d)
{
	struct rd *r = &d->r;
	r->pos = (r->pos + 7) & ~(uint64_t)7;
	if (!avail(r, 32))
		return ST_NEED_IN;
	uint32_t len = take(r, 16), nlen = take(r, 16);
	if (len != (~nlen & 0xffffu)) {
		d->msg = "invalid stored block lengths";
		return ST_ERROR;
	}
	while (len > 0) {
		if (d->n == d->cap)
			return ST_FULL_STORED;
		size_t at = (size_t)(r->pos >> 3), have = r->inlen - at;
		if (have == 0)
			return ST_NEED_IN;
		size_t c = len;
		if (c > have)
			c = have;
		if (c > d->cap - d->n)
			c = d->cap - d->n;
		memcpy(d->out + d->n, r->in + at, c);
		d->n += c;
		r->pos += (uint64_t)c * 8;
		len -= (uint32_t)c;
	}
	return ST_EOB;
}

static enum stop read_dynamic(struct qc_inflate *f, struct dec *d)
{
	struct rd *r = &d->r;
	if (!avail(r, 14))
		return ST_NEED_IN;
	unsigned nlen = take(r, 5) + 257, ndist = take(r, 5) + 1, ncode = take(r, 4) + 4;
	if (nlen > 286 || ndist > 30) {
		d->msg = "too many length or distance symbols";
		return ST_ERROR;
	}
	uint8_t cl[19] = { 0 };
	for (unsigned i = 0; i < ncode; i++) {
		if (!avail(r, 3))
			return ST_NEED_IN;
		cl[cl_order[i]] = (uint8_t)take(r, 3);
	}
	if (!build_code(&f->cl, cl, 19, true)) {
		d->msg = "invalid code lengths set";
		return ST_ERROR;
	}
	if (f->cl.shape == CODE_FULL)
		fill_table(f->clt, 7, &f->cl, false);
	unsigned have = 0, total = nlen + ndist;
	while (have < total) {
		if (f->cl.shape == CODE_EMPTY) {
			/* zlib's table of an empty set has 1-bit entries whose
			 * value reads as length 0 */
			if (!avail(r, 1))
				return ST_NEED_IN;
			r->pos += 1;
			f->lens[have++] = 0;
			continue;
		}
		uint32_t e;
		if (!next_entry(r, &f->cl, f->clt, 7, false, &e))
			return ST_NEED_IN;
		unsigned sym = E_VAL(e);
		if (sym < 16) {
			f->lens[have++] = (uint8_t)sym;
			continue;
		}
		/* zlib needs the code and its extra bits before it looks at
		 * the repeat; a stop ends the decode, so taking the code
		 * first changes nothing */
		if (!avail(r, sym == 16 ? 2 : sym == 17 ? 3 : 7))
			return ST_NEED_IN;
		uint8_t v = 0;
		unsigned rep;
		if (sym == 16) {
			if (have == 0) {
				d->msg = "invalid bit length repeat";
				return ST_ERROR;
			}
			v = f->lens[have - 1];
			rep = 3 + take(r, 2);
		} else if (sym == 17) {
			rep = 3 + take(r, 3);
		} else {
			rep = 11 + take(r, 7);
		}
		if (have + rep > total) {
			d->msg = "invalid bit length repeat";
			return ST_ERROR;
		}
		while (rep--)
			f->lens[have++] = v;
	}
	if (f->lens[256] == 0) {
		d->msg = "invalid code -- missing end-of-block";
		return ST_ERROR;
	}
	if (!build_code(&f->lc, f->lens, nlen, false)) {
		d->msg = "invalid literal/lengths set";
		return ST_ERROR;
	}
	if (!build_code(&f->dc, f->lens + nlen, ndist, false)) {
		d->msg = "invalid distances set";
		return ST_ERROR;
	}
	fill_table(f->lit, LBITS, &f->lc, false);
	pair_literals(f->lit, &f->lc);
	if (f->discard)
		fill_count(f->cnt, f->lit);
	fill_table(f->dist, DBITS, &f->dc, true);
	return ST_OK;
}

/* A block's header (and all of a stored block). */
static enum stop block_header(struct dec *d)
{
	struct rd *r = &d->r;
	if (!avail(r, 3))
		return ST_NEED_IN;
	d->last = take(r, 1);
	unsigned type = take(r, 2);
	if (type == 0) {
		enum stop st = run_stored(d);
		return st == ST_EOB && d->last ? ST_END : st == ST_EOB ? ST_OK : st;
	}
	if (type == 1) {
		d->lc = &fixed.lc;
		d->dc = &fixed.dc;
		d->lt = fixed.lit;
		d->dt = fixed.dist;
		d->ct = d->f->discard ? fixed.cnt : NULL;
		return ST_OK;
	}
	if (type == 2) {
		enum stop st = read_dynamic(d->f, d);
		if (st != ST_OK)
			return st;
		d->lc = &d->f->lc;
		d->dc = &d->f->dc;
		d->lt = d->f->lit;
		d->dt = d->f->dist;
		d->ct = d->f->discard ? d->f->cnt : NULL;
		return ST_OK;
	}
	d->msg = "invalid block type";
	return ST_ERROR;
}

/* One careful step: a block header or one symbol.  Sets d->end when the
 * decode is over. */
static void slow_step(struct dec *d)
{
	enum stop st;
	if (!d->lt) {
		st = block_header(d);
	} else {
		st = slow_symbol(d);
		if (st == ST_EOB) {
			d->lt = NULL;
			st = d->last ? ST_END : ST_OK;
		}
	}
	if (st != ST_OK)
		d->end = st;
}

static void decode_one(struct dec *d)
{
	while (d->end == ST_OK) {
		if (fast_ready(d))
			fast_one(d);
		slow_step(d);
	}
}

/*
 * Two streams: the fast loop runs both while both can; a stream that
 * cannot (a header, a symbol left to the careful decoder, its tail) takes
 * careful steps until it can again.  Each pass steps every unfinished
 * stream at least once, so both decodes always go forward.
 */
static void decode_two(struct dec *a, struct dec *b)
{
	while (a->end == ST_OK && b->end == ST_OK) {
		bool ra = fast_ready(a), rb = fast_ready(b);
		if (ra && rb)
			fast_two(a, b);
		if (!ra || rb)
			slow_step(a);
		if (!rb || ra)
			slow_step(b);
	}
	decode_one(a);
	decode_one(b);
}

/* decompress.h's classification of where the decode ended */
static enum qc_dc_result verdict(const struct dec *d, size_t *produced, const char **why)
{
	*produced = d->n;
	size_t window = d->cap < WINDOW ? d->cap : WINDOW;
	switch (d->end) {
	case ST_END:
		if (d->n == d->cap)
			return QC_DC_OK;
		*why = "the deflate stream ends early";
		return QC_DC_SHORT;
	case ST_ERROR:
		*why = d->msg;
		return QC_DC_INVALID;
	case ST_NEED_IN:
		if (d->n < d->cap) {
			*why = "the deflate stream needs more input";
			return QC_DC_TRUNCATED;
		}
		*why = "the deflate stream has no end marker within the descriptor";
		return QC_DC_INEXACT;
	case ST_FULL_MATCH:
		/* zlib's second call checks the distance against its 4 KiB
		 * window, which now holds the cluster's last bytes */
		*why = d->pend_dist > window ? "invalid distance too far back"
					     : "the deflate stream continues past the cluster";
		return QC_DC_INEXACT;
	case ST_FULL_STORED:
		*why = d->r.pos < d->r.end ? "the deflate stream continues past the cluster"
					   : "the deflate stream has no end marker within the descriptor";
		return QC_DC_INEXACT;
	case ST_FULL_LIT:
	case ST_OK:
	case ST_EOB:
		break;
	}
	*why = "the deflate stream continues past the cluster";
	return QC_DC_INEXACT;
}

static void build_fixed(void)
{
	uint8_t lens[288];
	for (unsigned s = 0; s < 288; s++)
		lens[s] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
	build_code(&fixed.lc, lens, 288, false);
	memset(lens, 5, 32);
	build_code(&fixed.dc, lens, 32, false);
	fill_table(fixed.lit, LBITS, &fixed.lc, false);
	pair_literals(fixed.lit, &fixed.lc);
	fill_count(fixed.cnt, fixed.lit);
	fill_table(fixed.dist, DBITS, &fixed.dc, true);
}

struct qc_inflate *qc_inflate_new(void)
{
	if (pthread_once(&fixed_once, build_fixed) != 0)
		return NULL;
	struct qc_inflate *f = malloc(sizeof(*f));
	if (f)
		f->discard = false;
	return f;
}

void qc_inflate_discard(struct qc_inflate *f, bool on)
{
	f->discard = on;
}

void qc_inflate_free(struct qc_inflate *f)
{
	free(f);
}

size_t qc_inflate_mem(void)
{
	return sizeof(struct qc_inflate);
}

static void dec_init(struct dec *d, struct qc_inflate *f, const uint8_t *in, size_t inlen,
		     uint8_t *out, size_t outlen)
{
	memset(d, 0, sizeof(*d));
	d->f = f;
	d->r = (struct rd){ in, inlen, 0, (uint64_t)inlen * 8 };
	d->out = out;
	d->cap = outlen;
	d->end = ST_OK;
}

enum qc_dc_result qc_inflate_run(struct qc_inflate *f, const uint8_t *in, size_t inlen,
				 uint8_t *out, size_t outlen, size_t *produced, const char **why)
{
	*why = "";
	*produced = 0;
	if (inlen > UINT32_MAX || outlen > UINT32_MAX) {
		*why = "sizes beyond zlib's range";
		return QC_DC_INVALID;
	}
	struct dec d;
	dec_init(&d, f, in, inlen, out, outlen);
	decode_one(&d);
	return verdict(&d, produced, why);
}

void qc_inflate_run2(struct qc_inflate *f[2], const uint8_t *in[2], const size_t inlen[2],
		     uint8_t *out[2], const size_t outlen[2], enum qc_dc_result res[2],
		     size_t produced[2], const char *why[2])
{
	if (inlen[0] > UINT32_MAX || outlen[0] > UINT32_MAX || inlen[1] > UINT32_MAX ||
	    outlen[1] > UINT32_MAX) {
		for (int i = 0; i < 2; i++)
			res[i] = qc_inflate_run(f[i], in[i], inlen[i], out[i], outlen[i], &produced[i],
						&why[i]);
		return;
	}
	struct dec d[2];
	for (int i = 0; i < 2; i++) {
		why[i] = "";
		dec_init(&d[i], f[i], in[i], inlen[i], out[i], outlen[i]);
	}
	decode_two(&d[0], &d[1]);
	for (int i = 0; i < 2; i++)
		res[i] = verdict(&d[i], &produced[i], &why[i]);
}
