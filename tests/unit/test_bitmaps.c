/*
 * test_bitmaps.c - the bitmaps pass (checker/bitmaps.c) on crafted memory
 * images: a valid directory/table/data layout and its claims, then
 * directories whose sizes and fields are hostile (cut fixed parts, names
 * and extra data running past the end, counts that disagree) - the pass
 * must report, never read out of bounds, never allocate from them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../checker/check.h"
#include "../../core/layout.h"
#include "../../core/reader.h"

#define CB 16
#define CS (1u << CB)
#define NCL 8
#define DIR_OFF (2u * CS)
#define TBL_OFF (3u * CS)
#define DATA_OFF (4u * CS)
#define TBL1_OFF (5u * CS)

static uint8_t file[NCL * CS];

/* One entry "b0": table at TBL_OFF (1 entry -> DATA_OFF), 64 KiB granularity. */
static size_t put_entry(uint8_t *p, uint64_t tbl, uint32_t tsize, uint32_t flags, uint8_t gran,
			const char *name)
{
	size_t n = strlen(name);
	qc_put_be64(p, tbl);
	qc_put_be32(p + 8, tsize);
	qc_put_be32(p + 12, flags);
	p[16] = 1;
	p[17] = gran;
	qc_put_be16(p + 18, (uint16_t)n);
	qc_put_be32(p + 20, 0);
	memcpy(p + 24, name, n);
	return (24 + n + 7) & ~(size_t)7;
}

static struct qc_image *setup(uint32_t nb, uint64_t dir_size)
{
	struct qc_image *img = calloc(1, sizeof(*img));
	assert_non_null(img);
	img->io = qc_io_open_memory(file, sizeof(file), false);
	img->file_size = sizeof(file);
	qc_problems_init(&img->problems);
	img->is_qcow2 = img->geometry_ok = true;
	img->cluster_bits = CB;
	img->cluster_size = CS;
	img->h.size = 64u << 20;
	img->h.autoclear_features = QC_AUTOCLEAR_BITMAPS;
	img->ext.has_bitmaps = img->ext.bitmaps_valid = true;
	img->ext.nb_bitmaps = nb;
	img->ext.bitmap_dir_size = dir_size;
	img->ext.bitmap_dir_offset = DIR_OFF;
	assert_int_equal(qc_cm_init(&img->cmap, NCL + 2, 0), 0);
	return img;
}

static void done(struct qc_image *img)
{
	qc_io_close(img->io);
	img->io = NULL;
	qc_image_free(img);
}

static size_t valid_layout(void)
{
	memset(file, 0, sizeof(file));
	size_t n = put_entry(file + DIR_OFF, TBL_OFF, 1, QC_BME_FLAG_AUTO, 16, "b0");
	n += put_entry(file + DIR_OFF + n, TBL1_OFF, 1, 0, 12, "b1");
	qc_put_be64(file + TBL_OFF, DATA_OFF);
	qc_put_be64(file + TBL1_OFF, 1); /* all ones, no cluster */
	file[DATA_OFF] = 0xff;
	return n;
}

static void valid(void **state)
{
	(void)state;
	size_t n = valid_layout();
	struct qc_image *img = setup(2, n);
	qc_pass_bitmaps(img);
	for (size_t i = 0; i < img->problems.n; i++)
		print_message("unexpected: %s\n", img->problems.v[i].message);
	assert_int_equal(img->problems.n, 0);
	assert_int_equal(qc_cm_owner(&img->cmap, 2), QC_OWN_BITMAP_DIR);
	assert_int_equal(qc_cm_owner(&img->cmap, 3), QC_OWN_BITMAP_TABLE);
	assert_int_equal(qc_cm_count(&img->cmap, 3), 1);
	assert_int_equal(qc_cm_owner(&img->cmap, 5), QC_OWN_BITMAP_TABLE);
	assert_int_equal(qc_cm_owner(&img->cmap, 4), QC_OWN_BITMAP_DATA);
	assert_int_equal(qc_cm_count(&img->cmap, 4), 1);
	done(img);
}

static void ignored_without_autoclear(void **state)
{
	(void)state;
	size_t n = valid_layout();
	struct qc_image *img = setup(2, n);
	img->h.autoclear_features = 0;
	qc_pass_bitmaps(img);
	assert_int_equal(img->problems.n, 0);
	assert_int_equal(qc_cm_owner(&img->cmap, 2), QC_OWN_FREE);
	done(img);
}

static bool has(struct qc_image *img, enum qc_code c)
{
	return img->problems.per_code[c] > 0;
}

static void hostile_dirs(void **state)
{
	(void)state;
	size_t n = valid_layout();
	/* every directory size from 1 to n + 40: never a crash, broken when not exact */
	for (uint64_t sz = 1; sz <= n + 40; sz++) {
		struct qc_image *img = setup(2, sz);
		qc_pass_bitmaps(img);
		if (sz != n)
			assert_true(has(img, QC_P_BITMAP_DIR_BROKEN) ||
				    has(img, QC_P_BITMAP_DIR_COUNT_MISMATCH));
		else
			assert_int_equal(img->problems.n, 0);
		done(img);
	}
	/* a name size running far past the directory */
	valid_layout();
	qc_put_be16(file + DIR_OFF + 18, 0xffff);
	struct qc_image *img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_DIR_BROKEN));
	done(img);
	/* extra_data_size 0xffffffff */
	valid_layout();
	qc_put_be32(file + DIR_OFF + 20, 0xffffffffu);
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_DIR_BROKEN));
	done(img);
	/* the header extension promises more or fewer bitmaps */
	valid_layout();
	img = setup(3, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_DIR_COUNT_MISMATCH));
	done(img);
	img = setup(1, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_DIR_COUNT_MISMATCH));
	done(img);
	/* the largest legal directory, past the end of this small file: left
	 * to the extension pass, nothing read or claimed here */
	img = setup(2, QC_MAX_BITMAP_DIR_SIZE);
	qc_pass_bitmaps(img);
	assert_int_equal(img->problems.n, 0);
	assert_int_equal(qc_cm_owner(&img->cmap, 2), QC_OWN_FREE);
	done(img);
}

static void hostile_entries(void **state)
{
	(void)state;
	size_t n = valid_layout();
	/* table size at the limit: 8192 x 64 KiB = 512 MiB is legal (a 64 KiB
	 * table of zero entries here); one more is not */
	qc_put_be32(file + DIR_OFF + 8, 0x2000);
	struct qc_image *img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_false(has(img, QC_P_BITMAP_TABLE_SIZE_INVALID));
	done(img);
	qc_put_be32(file + DIR_OFF + 8, 0x2001);
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_TABLE_SIZE_INVALID));
	done(img);
	/* a table past the end of the file */
	valid_layout();
	qc_put_be64(file + DIR_OFF, 64 * CS);
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_TABLE_PAST_EOF));
	done(img);
	valid_layout();
	qc_put_be32(file + DIR_OFF + 8, 0xffffffffu);
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_TABLE_SIZE_INVALID));
	done(img);
	/* granularity 31 with a tiny table is fine for 64 MiB; 9 is too small */
	valid_layout();
	file[DIR_OFF + 17] = 31; /* one bit for 64 MiB: 0xff sets 7 tail bits */
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_int_equal(img->problems.n, 1);
	assert_true(has(img, QC_P_BITMAP_TAIL_BITS));
	done(img);
	file[DATA_OFF] = 0x01;
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_int_equal(img->problems.n, 0);
	done(img);
	file[DATA_OFF] = 0xff;
	file[DIR_OFF + 17] = 9; /* 131072 bits = 16 KiB: still one 64 KiB cluster */
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_int_equal(img->problems.n, 0);
	done(img);
	img = setup(2, n);
	img->h.size = UINT64_C(1) << 40; /* 1 TiB at 512 B granularity needs 4096 entries */
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_TABLE_TOO_SMALL));
	done(img);
	/* table entries */
	valid_layout();
	qc_put_be64(file + TBL_OFF, DATA_OFF | 1);
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_ENTRY_FLAG_INVALID));
	done(img);
	qc_put_be64(file + TBL_OFF, UINT64_C(0x00fffffffffe0000));
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_ENTRY_PAST_EOF));
	done(img);
	/* tail bits: 64 MiB / 64 KiB = 1024 bits; bit 1024 is past the disk */
	valid_layout();
	file[DATA_OFF + 128] = 1;
	img = setup(2, n);
	qc_pass_bitmaps(img);
	assert_true(has(img, QC_P_BITMAP_TAIL_BITS));
	done(img);
}

static void duplicate_names(void **state)
{
	(void)state;
	memset(file, 0, sizeof(file));
	size_t n = 0;
	const char *names[] = { "a", "dup", "b", "dup", "dup", "c" };
	for (int i = 0; i < 6; i++)
		n += put_entry(file + DIR_OFF + n, TBL_OFF + (uint64_t)(i % 2 ? 3 : 0) * CS, 1, 0,
			       16, names[i]);
	struct qc_image *img = setup(6, n);
	qc_pass_bitmaps(img);
	assert_int_equal(img->problems.per_code[QC_P_BITMAP_NAME_DUPLICATE], 2);
	done(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid),
		cmocka_unit_test(ignored_without_autoclear),
		cmocka_unit_test(hostile_dirs),
		cmocka_unit_test(hostile_entries),
		cmocka_unit_test(duplicate_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
