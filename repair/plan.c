/*
 * plan.c - building, ordering and printing a repair plan (see plan.h).
 * Summaries and reasons may quote names from the image: printed through
 * core/escape.h.
 */
#include "plan.h"

#include "../core/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../core/escape.h"

static const char *const phase_names[QC_PH_COUNT] = {
	"new-structures", "switch", "in-place", "header", "final",
};

const char *qc_phase_name(enum qc_phase ph)
{
	return ph < QC_PH_COUNT ? phase_names[ph] : "?";
}

void qc_plan_init(struct qc_plan *p, uint64_t file_size)
{
	memset(p, 0, sizeof(*p));
	p->end_after = file_size;
}

/* Take n bytes of the plan's budget (always, without one). */
static bool take(struct qc_plan *p, uint64_t n)
{
	if (p->reserve && !p->reserve(p->budget_ctx, n)) {
		p->over_cap = p->oom = true;
		return false;
	}
	p->bytes += n;
	return true;
}

/* qc_grow with the budget taken for the new capacity first; NULL (and
 * p->oom) when either fails. */
static void *grow_taken(struct qc_plan *p, void *v, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return v;
	size_t ncap;
	if (!qc_grow_cap(*cap, n, elem, first, &ncap)) {
		p->oom = true;
		return NULL;
	}
	if (!take(p, (uint64_t)(ncap - *cap) * elem))
		return NULL;
	void *nv = qc_grow(v, cap, n, elem, first);
	if (!nv)
		p->oom = true;
	return nv;
}

static void give(struct qc_plan *p, uint64_t n)
{
	n = n < p->bytes ? n : p->bytes;
	p->bytes -= n;
	if (p->release)
		p->release(p->budget_ctx, n);
}

bool qc_plan_set_budget(struct qc_plan *p, bool (*reserve)(void *, uint64_t),
			void (*release)(void *, uint64_t), void *ctx)
{
	p->reserve = reserve;
	p->release = reserve ? release : NULL;
	p->budget_ctx = ctx;
	if (reserve && p->bytes && !reserve(ctx, p->bytes)) {
		p->over_cap = p->oom = true;
		return false;
	}
	return true;
}

void qc_plan_drop_data(struct qc_plan *p, struct qc_write *w)
{
	free(w->data);
	w->data = NULL;
	give(p, w->len);
}

void qc_plan_free(struct qc_plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->w[i].data);
		free(p->w[i].old);
	}
	free(p->w);
	free(p->left);
	free(p->freed);
	give(p, p->bytes);
	memset(p, 0, sizeof(*p));
}

static struct qc_write *vadd(struct qc_plan *p, enum qc_phase ph, uint64_t off, const void *data,
			     size_t len, enum qc_code code, const char *fmt, va_list ap)
{
	if (p->oom)
		return NULL;
	struct qc_write *nw = grow_taken(p, p->w, &p->cap, p->n, sizeof(*nw), 16);
	if (!nw)
		return NULL;
	p->w = nw;
	if (!take(p, len))
		return NULL;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy) {
		give(p, len);
		p->oom = true;
		return NULL;
	}
	memcpy(copy, data, len);
	struct qc_write *w = &p->w[p->n++];
	memset(w, 0, sizeof(*w));
	w->offset = off;
	w->data = copy;
	w->len = len;
	w->phase = ph;
	w->code = code;
	w->guest_offset = UINT64_MAX;
	w->round = p->round;
	vsnprintf(w->summary, sizeof(w->summary), fmt, ap);
	if (off + len > p->end_after)
		p->end_after = off + len;
	return w;
}

struct qc_write *qc_plan_add(struct qc_plan *p, enum qc_phase ph, uint64_t off, const void *data,
			     size_t len, enum qc_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct qc_write *w = vadd(p, ph, off, data, len, code, fmt, ap);
	va_end(ap);
	return w;
}

#define MERGE_GAP 16

int qc_plan_diff(struct qc_plan *p, enum qc_phase ph, uint64_t off, const uint8_t *old,
		 const uint8_t *new, size_t len, enum qc_code code, const char *fmt, ...)
{
	int added = 0;
	size_t i = 0;
	while (i < len) {
		if (old[i] == new[i]) {
			i++;
			continue;
		}
		size_t start = i, last = i;
		for (size_t k = i + 1; k < len && k <= last + MERGE_GAP; k++)
			if (old[k] != new[k])
				last = k;
		va_list ap;
		va_start(ap, fmt);
		struct qc_write *w = vadd(p, ph, off + start, new + start, last - start + 1, code, fmt, ap);
		va_end(ap);
		if (!w)
			return -1;
		added++;
		i = last + 1;
	}
	return added;
}

void qc_plan_cover(struct qc_plan *p, enum qc_code code)
{
	for (size_t k = 0; k < p->ncovered; k++)
		if (p->covered[k] == code)
			return;
	if (p->ncovered < QC_PLAN_MAX_COVERED)
		p->covered[p->ncovered++] = code;
	else
		p->oom = true; /* never: covered codes are the four refcount ones */
}

bool qc_plan_fixes(const struct qc_plan *p, enum qc_code code)
{
	for (size_t k = 0; k < p->ncovered; k++)
		if (p->covered[k] == code)
			return true;
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].code == code)
			return true;
	return false;
}

void qc_plan_freed(struct qc_plan *p, uint64_t cluster)
{
	uint64_t *nf = grow_taken(p, p->freed, &p->freedcap, p->nfreed, sizeof(*nf), 64);
	if (!nf)
		return;
	p->freed = nf;
	p->freed[p->nfreed++] = cluster;
}

void qc_plan_leave(struct qc_plan *p, enum qc_code code, uint64_t off, const char *fmt, ...)
{
	struct qc_left *nl = grow_taken(p, p->left, &p->leftcap, p->nleft, sizeof(*nl), 8);
	if (!nl)
		return;
	p->left = nl;
	struct qc_left *l = &p->left[p->nleft++];
	l->code = code;
	l->offset = off;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->reason, sizeof(l->reason), fmt, ap);
	va_end(ap);
}

/* The order writes are applied in: round, then phase. */
static size_t sort_key(const struct qc_write *w)
{
	unsigned r = w->round < QC_PLAN_MAX_ROUNDS ? w->round : QC_PLAN_MAX_ROUNDS - 1;
	return (size_t)r * QC_PH_COUNT + w->phase;
}

void qc_plan_sort(struct qc_plan *p)
{
	/* stable counting sort by (round, phase): O(n) whatever the order
	 * planners added writes in (a rebuild adds NEW writes after many
	 * INPLACE ones) */
	enum { KEYS = QC_PLAN_MAX_ROUNDS * QC_PH_COUNT };
	size_t count[KEYS + 1] = { 0 };
	bool sorted = true;
	for (size_t i = 0; i < p->n; i++) {
		count[sort_key(&p->w[i]) + 1]++;
		sorted &= i == 0 || sort_key(&p->w[i - 1]) <= sort_key(&p->w[i]);
	}
	if (sorted)
		return;
	if (!take(p, p->n * sizeof(struct qc_write)))
		return;
	struct qc_write *v = malloc(p->n * sizeof(*v));
	if (!v) {
		give(p, p->n * sizeof(struct qc_write));
		p->oom = true;
		return;
	}
	for (int k = 1; k <= KEYS; k++)
		count[k] += count[k - 1];
	for (size_t i = 0; i < p->n; i++)
		v[count[sort_key(&p->w[i])]++] = p->w[i];
	memcpy(p->w, v, p->n * sizeof(*v));
	free(v);
	give(p, p->n * sizeof(struct qc_write));
}

struct span {
	uint64_t off, end;
	enum qc_phase ph;
	size_t w; /* index of the write */
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Writes that may cover one byte at once, at most: beyond that many the
 * plan is refused as a conflict (the check costs n x this at worst). */
#define CONFLICT_LOOKBACK 64

/*
 * May two planned writes share bytes?  The header flag writes (dirty, then
 * the conditional corrupt bit) rewrite the same field on purpose, in two
 * phases; two rounds may rewrite the same range.  Otherwise only when both write the same bytes where they meet:
 * a refcount edit spanning a refblock from its first to its last changed
 * entry may cover an entry another planner set already, to the same value
 * (the snapshot-table rewrite's new table, planned on the model of the
 * rewritten image).  The journal keeps one old copy of such bytes and the
 * compare-and-swap lays the earlier write over the old bytes (cas.c).
 */
static bool may_overlap(const struct qc_plan *p, const struct span *a, const struct span *b)
{
	if ((a->ph == QC_PH_HEADER || a->ph == QC_PH_FINAL) &&
	    (b->ph == QC_PH_HEADER || b->ph == QC_PH_FINAL))
		return true;
	const struct qc_write *x = &p->w[a->w], *y = &p->w[b->w];
	/* a later round rewriting exactly the range an earlier round writes
	 * (an L2 entry whose COPIED flag round 0 clears, given its own copy
	 * in round 1): the journal recognises the range by either write's
	 * bytes (journal.h rule 2), and the compare-and-swap expects the
	 * earlier write's bytes there */
	if (x->round != y->round && x->offset == y->offset && x->len == y->len)
		return true;
	uint64_t s = a->off > b->off ? a->off : b->off;
	uint64_t e = a->end < b->end ? a->end : b->end;
	return !memcmp(x->data + (s - x->offset), y->data + (s - y->offset), (size_t)(e - s));
}

int qc_plan_conflict(const struct qc_plan *p, uint64_t *at)
{
	if (p->n < 2)
		return 0;
	uint64_t need = p->n * sizeof(struct span);
	if (p->reserve && !p->reserve(p->budget_ctx, need))
		return -1;
	struct span *v = malloc(p->n * sizeof(*v));
	if (!v) {
		if (p->release)
			p->release(p->budget_ctx, need);
		return -1;
	}
	for (size_t i = 0; i < p->n; i++)
		v[i] = (struct span){ p->w[i].offset, p->w[i].offset + p->w[i].len, p->w[i].phase, i };
	qsort(v, p->n, sizeof(*v), cmp_span);
	/* sweep in offset order keeping the spans that still reach past the
	 * current offset: each new span meets exactly those */
	size_t active[CONFLICT_LOOKBACK], na = 0;
	int found = 0;
	for (size_t i = 0; i < p->n && !found; i++) {
		size_t keep = 0;
		for (size_t k = 0; k < na; k++)
			if (v[active[k]].end > v[i].off)
				active[keep++] = active[k];
		na = keep;
		for (size_t k = 0; k < na && !found; k++)
			found = !may_overlap(p, &v[active[k]], &v[i]);
		if (!found && na == CONFLICT_LOOKBACK)
			found = 1; /* too many writes over one byte: refuse */
		if (found)
			*at = v[i].off;
		else
			active[na++] = i;
	}
	free(v);
	if (p->release)
		p->release(p->budget_ctx, need);
	return found;
}

/* Would q's writes, beside p's unconditional ones, conflict?  1, 0 or -1. */
static int rounds_conflict(const struct qc_plan *p, const struct qc_plan *q)
{
	struct qc_plan t;
	memset(&t, 0, sizeof(t));
	t.w = malloc((p->n + q->n + 1) * sizeof(*t.w));
	if (!t.w)
		return -1;
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].phase != QC_PH_FINAL)
			t.w[t.n++] = p->w[i];
	for (size_t i = 0; i < q->n; i++)
		t.w[t.n++] = q->w[i];
	uint64_t at;
	int c = qc_plan_conflict(&t, &at);
	free(t.w);
	return c;
}

/* Drop p's conditional writes (a later round plans its own). */
static void drop_final(struct qc_plan *p)
{
	size_t k = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct qc_write *w = &p->w[i];
		if (w->phase != QC_PH_FINAL) {
			p->w[k++] = *w;
			continue;
		}
		qc_plan_drop_data(p, w);
		free(w->old);
	}
	p->n = k;
}

int qc_plan_merge_round(struct qc_plan *p, struct qc_plan *q)
{
	int c = rounds_conflict(p, q);
	if (c)
		return c < 0 ? -ENOMEM : 1;
	uint64_t bytes = 0;
	for (size_t i = 0; i < q->n; i++)
		bytes += q->w[i].len;
	struct qc_write *nw = grow_taken(p, p->w, &p->cap, p->n + q->n, sizeof(*nw), 16);
	if (!nw || !take(p, bytes))
		return -ENOMEM;
	p->w = nw;
	drop_final(p);
	for (size_t i = 0; i < q->n; i++)
		p->w[p->n++] = q->w[i];
	q->n = 0;
	for (size_t i = 0; i < q->nfreed; i++)
		qc_plan_freed(p, q->freed[i]);
	for (size_t k = 0; k < q->ncovered; k++)
		qc_plan_cover(p, q->covered[k]);
	/* the later round's verdicts replace the earlier one's */
	give(p, (uint64_t)p->leftcap * sizeof(*p->left));
	free(p->left);
	p->left = q->left;
	p->nleft = q->nleft;
	p->leftcap = q->leftcap;
	take(p, (uint64_t)p->leftcap * sizeof(*p->left));
	q->left = NULL;
	q->nleft = q->leftcap = 0;
	if (q->end_after > p->end_after)
		p->end_after = q->end_after;
	p->rounds++;
	return p->oom ? -ENOMEM : 0;
}

size_t qc_plan_unconditional(const struct qc_plan *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].phase != QC_PH_FINAL)
			n++;
	return n;
}

/* Human plans fold runs of writes after this many per code. */
#define HUMAN_PER_CODE 20

/* Per-code tallies of the human printer: codes are few (one per problem
 * code at most), so a short list searched linearly keeps the printer
 * O(n x distinct codes) = O(n), not O(n^2) as counting earlier writes did.
 * Fixed size whatever the image (the codes are the program's), so it is
 * not drawn from the budget. */
void qc_plan_print_human(const struct qc_plan *p, FILE *f)
{
	if (!p->n && !p->nleft) {
		fprintf(f, "Repair plan: nothing to write.\n");
		return;
	}
	unsigned last = 0;
	for (size_t i = 0; i < p->n; i++)
		last = p->w[i].round > last ? p->w[i].round : last;
	if (last)
		fprintf(f, "Repair plan: %zu write(s) in %u rounds (each planned on the image as the rounds before leave it):\n",
			p->n, last + 1);
	else
		fprintf(f, "Repair plan: %zu write(s)%s\n", p->n, p->n ? ":" : ".");
	/* writes per code, and those printed so far: one pass each */
	size_t total[QC_P_COUNT] = { 0 }, seen[QC_P_COUNT] = { 0 };
	for (size_t i = 0; i < p->n; i++)
		total[p->w[i].code]++;
	for (size_t i = 0; i < p->n; i++) {
		const struct qc_write *w = &p->w[i];
		if (seen[w->code]++ == HUMAN_PER_CODE)
			fprintf(f, "  ... and %zu more %s write(s)\n", total[w->code] - HUMAN_PER_CODE,
				qc_problem_table[w->code].code);
		if (seen[w->code] > HUMAN_PER_CODE)
			continue;
		fprintf(f, "  [%s] write 0x%" PRIx64 " +%zu  %s: ", qc_phase_name(w->phase),
			w->offset, w->len, qc_problem_table[w->code].code);
		qc_esc_human(f, w->summary);
		if (w->guest_offset != UINT64_MAX)
			fprintf(f, " (guest 0x%" PRIx64 "+0x%" PRIx64 ")", w->guest_offset,
				w->guest_length);
		if (last)
			fprintf(f, " (round %u)", w->round + 1);
		if (w->phase == QC_PH_FINAL)
			fprintf(f, " (only if the re-check is otherwise clean)");
		fputc('\n', f);
	}
	for (size_t i = 0; i < p->nleft; i++) {
		const struct qc_left *l = &p->left[i];
		if (l->offset != UINT64_MAX)
			qc_esc_line(f, "  left: %s at 0x%" PRIx64 ": %s", qc_problem_table[l->code].code,
				    l->offset, l->reason);
		else
			qc_esc_line(f, "  left: %s: %s", qc_problem_table[l->code].code, l->reason);
	}
}

void qc_plan_json(struct qc_json *j, const struct qc_plan *p)
{
	qc_json_arr_begin(j, "plan");
	for (size_t i = 0; i < p->n; i++) {
		const struct qc_write *w = &p->w[i];
		qc_json_obj_begin(j, NULL);
		qc_json_str(j, "phase", qc_phase_name(w->phase));
		qc_json_u64(j, "offset", w->offset);
		qc_json_u64(j, "length", w->len);
		qc_json_str(j, "code", qc_problem_table[w->code].code);
		if (w->guest_offset != UINT64_MAX) {
			qc_json_u64(j, "guest-offset", w->guest_offset);
			qc_json_u64(j, "guest-length", w->guest_length);
		}
		qc_json_str(j, "summary", w->summary);
		qc_json_u64(j, "round", w->round + 1);
		qc_json_bool(j, "conditional", w->phase == QC_PH_FINAL);
		qc_json_bool(j, "applied", w->applied);
		qc_json_obj_end(j);
	}
	qc_json_arr_end(j);
	qc_json_arr_begin(j, "left");
	for (size_t i = 0; i < p->nleft; i++) {
		const struct qc_left *l = &p->left[i];
		qc_json_obj_begin(j, NULL);
		qc_json_str(j, "code", qc_problem_table[l->code].code);
		if (l->offset != UINT64_MAX)
			qc_json_u64(j, "offset", l->offset);
		else
			qc_json_null(j, "offset");
		qc_json_str(j, "reason", l->reason);
		qc_json_obj_end(j);
	}
	qc_json_arr_end(j);
}
