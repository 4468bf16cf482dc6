/*
 * cmd_info.c - `qcow2fsck info`: the header, features (by name),
 * extensions and snapshots of an image, for people or as JSON.  Runs the
 * same passes as check (read-only) and prints the model, not the verdict.
 * Names from the image and the path are printed through core/escape.h.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../checker/check.h"
#include "../checker/extensions.h"
#include "../core/escape.h"
#include "../core/layout.h"
#include "cli.h"
#include "report.h"

/* Built-in names (QEMU's feature-name table), used when the image has none. */
static const char *const builtin_names[3][5] = {
	{ "dirty bit", "corrupt bit", "external data file", "compression type",
	  "extended L2 entries" },
	{ "lazy refcounts" },
	{ "bitmaps", "raw external data" },
};

/* Name of a feature bit: the image's own table first, then ours. */
static const char *feature_name(const struct qc_image *img, unsigned type, unsigned bit)
{
	const char *n = qc_ext_feature_name(img, type, bit);
	if (n)
		return n;
	if (bit < 5 && builtin_names[type][bit])
		return builtin_names[type][bit];
	return NULL;
}

static void feature_list_json(struct qc_json *j, const struct qc_image *img, const char *key,
			      unsigned type, uint64_t bits)
{
	qc_json_arr_begin(j, key);
	for (unsigned b = 0; b < 64; b++) {
		if (!(bits & (UINT64_C(1) << b)))
			continue;
		const char *n = feature_name(img, type, b);
		qc_json_obj_begin(j, NULL);
		qc_json_u64(j, "bit", b);
		if (n)
			qc_json_str(j, "name", n);
		else
			qc_json_null(j, "name");
		qc_json_bool(j, "known", (type == 0 && b < 5) || (type == 1 && b < 1) ||
					       (type == 2 && b < 2));
		qc_json_obj_end(j);
	}
	qc_json_arr_end(j);
}

static void feature_list_human(const struct qc_image *img, const char *label, unsigned type,
			       uint64_t bits)
{
	printf("%-22s0x%016" PRIx64, label, bits);
	const char *sep = " (";
	for (unsigned b = 0; b < 64; b++)
		if (bits & (UINT64_C(1) << b)) {
			const char *n = feature_name(img, type, b);
			printf("%sbit %u", sep, b);
			if (n) {
				printf(" ");
				qc_esc_human_name(stdout, n);
			} else {
				printf(" unknown");
			}
			sep = ", ";
		}
	if (bits)
		putchar(')');
	putchar('\n');
}

static const char *compression_name(uint8_t t)
{
	return t == QC_COMPRESSION_ZSTD ? "zstd" : t == QC_COMPRESSION_ZLIB ? "zlib" : "unknown";
}

static void info_json(const struct qc_image *img, const char *path, int exit_code)
{
	const struct qc_header *h = &img->h;
	const struct qc_extensions *e = &img->ext;
	struct qc_json j;
	qc_json_init(&j, stdout);
	qc_json_obj_begin(&j, NULL);
	qc_json_u64(&j, "schema", 1);
	qc_json_str(&j, "filename", path);
	qc_json_str(&j, "format", "qcow2");
	qc_json_u64(&j, "file-size", img->file_size);
	qc_json_u64(&j, "version", h->version);
	qc_json_u64(&j, "virtual-size", h->size);
	qc_json_u64(&j, "cluster-size", img->cluster_size);
	qc_json_u64(&j, "cluster-bits", h->cluster_bits);
	qc_json_u64(&j, "refcount-bits", img->refcount_bits);
	qc_json_u64(&j, "refcount-order", h->refcount_order);
	qc_json_u64(&j, "header-length", h->header_length);
	qc_json_u64(&j, "crypt-method", h->crypt_method);
	qc_json_str(&j, "compression-type", compression_name(h->compression_type));
	qc_json_u64(&j, "l1-table-offset", h->l1_table_offset);
	qc_json_u64(&j, "l1-size", h->l1_size);
	qc_json_u64(&j, "refcount-table-offset", h->refcount_table_offset);
	qc_json_u64(&j, "refcount-table-clusters", h->refcount_table_clusters);
	qc_json_u64(&j, "snapshots-offset", h->snapshots_offset);
	qc_json_u64(&j, "nb-snapshots", h->nb_snapshots);
	qc_json_u64(&j, "incompatible-bits", h->incompatible_features);
	qc_json_u64(&j, "compatible-bits", h->compatible_features);
	qc_json_u64(&j, "autoclear-bits", h->autoclear_features);
	feature_list_json(&j, img, "incompatible-features", 0, h->incompatible_features);
	feature_list_json(&j, img, "compatible-features", 1, h->compatible_features);
	feature_list_json(&j, img, "autoclear-features", 2, h->autoclear_features);
	qc_json_arr_begin(&j, "extensions");
	for (unsigned i = 0; i < e->nlist; i++) {
		qc_json_obj_begin(&j, NULL);
		char type[16];
		snprintf(type, sizeof(type), "0x%08x", e->list[i].type);
		qc_json_str(&j, "type", type);
		qc_json_str(&j, "name", qc_ext_type_name(e->list[i].type));
		qc_json_u64(&j, "offset", e->list[i].offset);
		qc_json_u64(&j, "length", e->list[i].length);
		qc_json_obj_end(&j);
	}
	qc_json_arr_end(&j);
	if (e->ntotal > e->nlist)
		qc_json_u64(&j, "extensions-omitted", e->ntotal - e->nlist);
	if (img->has_backing_file)
		qc_json_str(&j, "backing-file", img->backing_file);
	if (e->has_backing_format)
		qc_json_str(&j, "backing-format", e->backing_format);
	if (e->has_data_file)
		qc_json_str(&j, "data-file", e->data_file);
	if (e->has_bitmaps) {
		qc_json_u64(&j, "nb-bitmaps", e->nb_bitmaps);
		qc_json_u64(&j, "bitmap-directory-offset", e->bitmap_dir_offset);
		qc_json_u64(&j, "bitmap-directory-size", e->bitmap_dir_size);
	}
	if (e->has_crypto) {
		qc_json_u64(&j, "crypto-header-offset", e->crypto_offset);
		qc_json_u64(&j, "crypto-header-length", e->crypto_length);
	}
	qc_json_snapshots(&j, img);
	qc_json_bool(&j, "in-use", img->problems.per_code[QC_P_IMAGE_IN_USE] != 0);
	qc_json_i64(&j, "exit-code", exit_code);
	qc_json_obj_end(&j);
	qc_json_end(&j);
}

static void snapshots_human(const struct qc_image *img);

static void info_human(const struct qc_image *img, const char *path)
{
	const struct qc_header *h = &img->h;
	const struct qc_extensions *e = &img->ext;
	qc_esc_line(stdout, "%-22s%s", "image:", path);
	printf("%-22s%" PRIu64 "\n", "file size:", img->file_size);
	printf("%-22s%u\n", "version:", h->version);
	printf("%-22s%" PRIu64 "\n", "virtual size:", h->size);
	printf("%-22s%" PRIu64 " (cluster_bits %u)\n", "cluster size:", img->cluster_size,
	       h->cluster_bits);
	printf("%-22s%u (refcount_order %u)\n", "refcount bits:", img->refcount_bits,
	       h->refcount_order);
	printf("%-22s%u\n", "header length:", h->header_length);
	printf("%-22s%u%s\n", "crypt method:", h->crypt_method,
	       h->crypt_method == 2 ? " (LUKS)" : h->crypt_method == 1 ? " (AES)" : "");
	printf("%-22s%s\n", "compression type:", compression_name(h->compression_type));
	printf("%-22s0x%" PRIx64 " (%u entries)\n", "L1 table:", h->l1_table_offset, h->l1_size);
	printf("%-22s0x%" PRIx64 " (%u clusters)\n", "refcount table:", h->refcount_table_offset,
	       h->refcount_table_clusters);
	printf("%-22s0x%" PRIx64 " (%u entries)\n", "snapshot table:", h->snapshots_offset,
	       h->nb_snapshots);
	feature_list_human(img, "incompatible:", 0, h->incompatible_features);
	feature_list_human(img, "compatible:", 1, h->compatible_features);
	feature_list_human(img, "autoclear:", 2, h->autoclear_features);
	if (img->has_backing_file) {
		printf("%-22s", "backing file:");
		qc_esc_human_name(stdout, img->backing_file);
		printf(" (not opened)\n");
	}
	if (e->has_backing_format) {
		printf("%-22s", "backing format:");
		qc_esc_human_name(stdout, e->backing_format);
		putchar('\n');
	}
	if (e->has_data_file) {
		printf("%-22s", "data file:");
		qc_esc_human_name(stdout, e->data_file);
		printf(" (not opened)\n");
	}
	if (e->has_bitmaps)
		printf("%-22s%u (directory 0x%" PRIx64 ", %" PRIu64 " bytes)\n", "bitmaps:",
		       e->nb_bitmaps, e->bitmap_dir_offset, e->bitmap_dir_size);
	if (e->has_crypto)
		printf("%-22s0x%" PRIx64 " (%" PRIu64 " bytes)\n", "LUKS header:", e->crypto_offset,
		       e->crypto_length);
	if (e->nlist) {
		printf("Extensions:\n");
		for (unsigned i = 0; i < e->nlist; i++)
			printf("  0x%08x  %6u bytes at 0x%-6" PRIx64 "  %s\n", e->list[i].type,
			       e->list[i].length, e->list[i].offset, qc_ext_type_name(e->list[i].type));
		if (e->ntotal > e->nlist)
			printf("  ... and %u more\n", e->ntotal - e->nlist);
	}
	if (img->nsnapshots)
		snapshots_human(img);
}

/* The distinct problem codes recorded against snapshot i, comma separated. */
static void snapshot_codes_human(const struct qc_image *img, uint32_t i)
{
	enum qc_code codes[QC_P_COUNT];
	size_t nc = qc_snapshot_codes(&img->problems, (int32_t)i, codes);
	for (size_t k = 0; k < nc; k++)
		printf("%s%s", k ? ", " : "       problems: ", qc_problem_table[codes[k]].code);
	if (nc)
		putchar('\n');
}

static void snapshots_human(const struct qc_image *img)
{
	printf("Snapshots:\n  %-4s %-19s %14s %12s  %-22s %s\n", "IDX", "DATE (UTC)", "DISK SIZE",
	       "VM STATE", "L1 (entries)", "ID / NAME");
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		char date[32] = "?";
		time_t t = (time_t)s->date_sec;
		struct tm tm;
		if (gmtime_r(&t, &tm))
			strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
		char l1[40];
		snprintf(l1, sizeof(l1), "0x%" PRIx64 " (%u)", s->l1_table_offset, s->l1_size);
		printf("  %-4u %-19s %14" PRIu64 " %12" PRIu64 "  %-22s ", i, date, s->disk_size,
		       s->vm_state_size, l1);
		qc_esc_human_name(stdout, s->id ? s->id : "");
		printf(" / ");
		qc_esc_human_name(stdout, s->name ? s->name : "");
		putchar('\n');
		snapshot_codes_human(img, i);
		if (img->snapfix.decided && s->fix.verdict != QC_SNAP_KEPT)
			qc_esc_line(stdout, "       repair: %s%s%s", qc_snap_verdict_name(s->fix.verdict),
				    s->fix.what[0] ? ": " : "", s->fix.what);
	}
}

int qc_cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	struct qc_cli_open co = { .command = "inspect", .lock = QC_LOCK_READ, .out = QC_OUT_HUMAN };
	struct qc_positional pos = { .n = 0 };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-U", opts, NULL)) != -1) {
		if (c == 1) {
			qc_add_positional(&pos, optarg);
		} else if (c == 'U') {
			co.lock = QC_LOCK_SHARE;
		} else if (c == 'o') {
			if (!qc_parse_output(optarg, &co.out))
				return qc_usage_error("--output must be human or json, not '%s'", optarg);
		} else {
			return qc_usage_error("info: unknown option '%s'", argv[optind - 1]);
		}
	}
	qc_rest_positional(&pos, argc, argv);
	if (pos.n != 1 || pos.extra)
		return qc_usage_error("info: expected exactly one IMAGE");
	const char *path = pos.v[0];
	struct qc_options o = { .deep = false, .mem_cap = qc_default_mem_cap() };
	struct qc_io *io;
	struct qc_image *img;
	int code = qc_cli_open_checked(path, &co, &o, &io, &img);
	if (code)
		return code;
	if (img->aborted && !img->is_qcow2) {
		/* the header could not be read (an I/O error): not "not qcow2" */
		char msg[512];
		snprintf(msg, sizeof(msg), "'%s': %s", path, img->abort_reason);
		code = qc_cli_fail(&co, path, 1, "read-failed", msg);
	} else if (!img->is_qcow2) {
		char msg[512];
		snprintf(msg, sizeof(msg), "'%s' is not a qcow2 image qcow2fsck supports%s%s%s", path,
			 img->not_qcow2 ? " (found: " : "", img->not_qcow2 ? img->not_qcow2 : "",
			 img->not_qcow2 ? ")" : "");
		code = qc_cli_fail(&co, path, 63, "not-qcow2", msg);
	} else {
		/* An unknown incompatible feature: shown, but not supported. */
		if (img->problems.unsupported)
			code = 63;
		/* a read failed past the header: what was read is shown, exit 1 */
		else if (img->aborted)
			code = 1;
		if (co.out == QC_OUT_JSON)
			info_json(img, path, code);
		else
			info_human(img, path);
		if (img->problems.per_code[QC_P_IMAGE_IN_USE])
			qc_esc_line(stderr, "qcow2fsck: warning: %s is in use by another process: what it "
				    "shows may be changing", path);
		if (img->aborted && !img->problems.unsupported)
			qc_esc_line(stderr, "qcow2fsck: %s: incomplete: %s", path, img->abort_reason);
	}
	qc_image_free(img);
	qc_io_close(io);
	return code;
}
