/*
 * cmd_info.c - `qcow2fsck info`: the header, features (by name),
 * extensions and snapshots of an image, for people or as JSON.  Runs the
 * same passes as check (read-only) and prints the model, not the verdict.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "cli.h"
#include "report.h"

static const char *const incompat_names[] = {
	"dirty", "corrupt", "external-data-file", "compression-type", "extended-l2",
};
static const char *const compat_names[] = { "lazy-refcounts" };
static const char *const autoclear_names[] = { "bitmaps", "raw-external-data" };

static void feature_list_json(struct qc_json *j, const char *key, uint64_t bits,
			      const char *const *names, unsigned nnames)
{
	qc_json_arr_begin(j, key);
	for (unsigned b = 0; b < 64; b++) {
		if (!(bits & (UINT64_C(1) << b)))
			continue;
		char unk[24];
		snprintf(unk, sizeof(unk), "unknown-bit-%u", b);
		qc_json_str(j, NULL, b < nnames ? names[b] : unk);
	}
	qc_json_arr_end(j);
}

static void feature_list_human(const char *label, uint64_t bits, const char *const *names,
			       unsigned nnames)
{
	printf("%-22s0x%016" PRIx64, label, bits);
	for (unsigned b = 0; b < 64; b++)
		if (bits & (UINT64_C(1) << b)) {
			if (b < nnames)
				printf(" %s", names[b]);
			else
				printf(" unknown-bit-%u", b);
		}
	putchar('\n');
}

static void info_json(const struct qc_image *img, const char *path)
{
	const struct qc_header *h = &img->h;
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
	qc_json_u64(&j, "header-length", h->header_length);
	qc_json_u64(&j, "crypt-method", h->crypt_method);
	qc_json_str(&j, "compression-type", h->compression_type == 1 ? "zstd" : h->compression_type == 0 ? "zlib" : "unknown");
	qc_json_u64(&j, "l1-table-offset", h->l1_table_offset);
	qc_json_u64(&j, "l1-size", h->l1_size);
	qc_json_u64(&j, "refcount-table-offset", h->refcount_table_offset);
	qc_json_u64(&j, "refcount-table-clusters", h->refcount_table_clusters);
	qc_json_u64(&j, "snapshots-offset", h->snapshots_offset);
	qc_json_u64(&j, "nb-snapshots", h->nb_snapshots);
	feature_list_json(&j, "incompatible-features", h->incompatible_features, incompat_names, 5);
	feature_list_json(&j, "compatible-features", h->compatible_features, compat_names, 1);
	feature_list_json(&j, "autoclear-features", h->autoclear_features, autoclear_names, 2);
	if (img->has_backing_file)
		qc_json_str(&j, "backing-file", img->backing_file);
	if (img->ext.has_backing_format)
		qc_json_str(&j, "backing-format", img->ext.backing_format);
	if (img->ext.has_data_file)
		qc_json_str(&j, "data-file", img->ext.data_file);
	if (img->ext.has_bitmaps)
		qc_json_u64(&j, "nb-bitmaps", img->ext.nb_bitmaps);
	if (img->ext.has_crypto) {
		qc_json_u64(&j, "crypto-header-offset", img->ext.crypto_offset);
		qc_json_u64(&j, "crypto-header-length", img->ext.crypto_length);
	}
	qc_json_snapshots(&j, img);
	qc_json_obj_end(&j);
	qc_json_end(&j);
}

static void info_human(const struct qc_image *img, const char *path)
{
	const struct qc_header *h = &img->h;
	printf("%-22s%s\n", "image:", path);
	printf("%-22s%" PRIu64 "\n", "file size:", img->file_size);
	printf("%-22s%u\n", "version:", h->version);
	printf("%-22s%" PRIu64 "\n", "virtual size:", h->size);
	printf("%-22s%" PRIu64 "\n", "cluster size:", img->cluster_size);
	printf("%-22s%u\n", "refcount bits:", img->refcount_bits);
	printf("%-22s%u\n", "header length:", h->header_length);
	printf("%-22s%u\n", "crypt method:", h->crypt_method);
	printf("%-22s%s\n", "compression type:", h->compression_type == 1 ? "zstd" : h->compression_type == 0 ? "zlib" : "unknown");
	printf("%-22s0x%" PRIx64 " (%u entries)\n", "L1 table:", h->l1_table_offset, h->l1_size);
	printf("%-22s0x%" PRIx64 " (%u clusters)\n", "refcount table:", h->refcount_table_offset,
	       h->refcount_table_clusters);
	printf("%-22s0x%" PRIx64 " (%u entries)\n", "snapshot table:", h->snapshots_offset,
	       h->nb_snapshots);
	feature_list_human("incompatible:", h->incompatible_features, incompat_names, 5);
	feature_list_human("compatible:", h->compatible_features, compat_names, 1);
	feature_list_human("autoclear:", h->autoclear_features, autoclear_names, 2);
	if (img->has_backing_file)
		printf("%-22s%s (not opened)\n", "backing file:", img->backing_file);
	if (img->ext.has_backing_format)
		printf("%-22s%s\n", "backing format:", img->ext.backing_format);
	if (img->ext.has_data_file)
		printf("%-22s%s (not opened)\n", "data file:", img->ext.data_file);
	if (img->ext.has_bitmaps)
		printf("%-22s%u\n", "bitmaps:", img->ext.nb_bitmaps);
	if (img->ext.has_crypto)
		printf("%-22s0x%" PRIx64 " (%" PRIu64 " bytes)\n", "LUKS header:",
		       img->ext.crypto_offset, img->ext.crypto_length);
	if (img->nsnapshots) {
		printf("Snapshots:\n  %-4s %-12s %-20s %14s %12s  %s\n", "IDX", "ID", "NAME",
		       "DISK SIZE", "VM STATE", "L1");
		for (uint32_t i = 0; i < img->nsnapshots; i++) {
			const struct qc_snapshot *s = &img->snapshots[i];
			printf("  %-4u %-12s %-20s %14" PRIu64 " %12" PRIu64 "  0x%" PRIx64 " (%u)\n", i,
			       s->id ? s->id : "", s->name ? s->name : "", s->disk_size,
			       s->vm_state_size, s->l1_table_offset, s->l1_size);
		}
	}
}

int qc_cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	enum qc_output out = QC_OUT_HUMAN;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c != 'o')
			return qc_usage_error("info: unknown option '%s'", argv[optind - 1]);
		if (!qc_parse_output(optarg, &out))
			return qc_usage_error("--output must be human or json, not '%s'", optarg);
	}
	if (optind != argc - 1)
		return qc_usage_error("info: expected exactly one IMAGE");
	const char *path = argv[optind];
	struct qc_io *io;
	int r = qc_io_open_file(path, false, &io);
	if (r < 0) {
		fprintf(stderr, "qcow2fsck: cannot open '%s': %s\n", path, strerror(-r));
		return 1;
	}
	struct qc_options o = { .deep = false, .mem_cap = qc_default_mem_cap() };
	struct qc_image *img;
	if (qc_check_run(io, &o, &img) < 0) {
		qc_io_close(io);
		return 1;
	}
	int code = 0;
	if (!img->is_qcow2) {
		fprintf(stderr, "qcow2fsck: '%s' is not a qcow2 image qcow2fsck supports\n", path);
		code = 63;
	} else if (out == QC_OUT_JSON) {
		info_json(img, path);
	} else {
		info_human(img, path);
	}
	qc_image_free(img);
	qc_io_close(io);
	return code;
}
