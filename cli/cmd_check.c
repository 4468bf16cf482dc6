/*
 * cmd_check.c - `qcow2fsck check`: open the image read-only with the locks
 * `qemu-img check` takes (doc/locking.md), run the check, print the
 * report, exit with qemu-img check's codes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/escape.h"
#include "cli.h"
#include "report.h"
#include "../scan/policy.h"

int qc_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "deep", no_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "max-mem", required_argument, NULL, 'm' },
		{ "force-share", no_argument, NULL, 'U' },
		{ "fail-on", required_argument, NULL, 'F' },
		{ "allow", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	struct qc_cli_open co = { .command = "check", .lock = QC_LOCK_READ, .out = QC_OUT_HUMAN };
	struct qc_options o = { .deep = false, .mem_cap = qc_default_mem_cap() };
	struct qc_positional pos = { .n = 0 };
	struct qc_policy policy;
	char *bad;
	int c;
	qc_policy_init(&policy);
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-qU", opts, NULL)) != -1) {
		switch (c) {
		case 1:
			qc_add_positional(&pos, optarg);
			break;
		case 'd':
			o.deep = true;
			break;
		case 'o':
			if (!qc_parse_output(optarg, &co.out))
				return qc_usage_error("--output must be human or json, not '%s'", optarg);
			break;
		case 'q':
			co.quiet = true;
			break;
		case 'U':
			co.lock = QC_LOCK_SHARE;
			break;
		case 'm':
			if (!qc_parse_size(optarg, &o.mem_cap) || o.mem_cap == 0)
				return qc_usage_error("invalid --max-mem '%s'", optarg);
			break;
		case 'F':
			if (!qc_policy_parse_fail_on(optarg, &policy.fail_on))
				return qc_usage_error("--fail-on must be corruption, leak or warning, not '%s'",
						      optarg);
			break;
		case 'A':
			if (!qc_policy_allow_list(&policy, optarg, &bad)) {
				int r = qc_usage_error("--allow: unknown problem code '%s' (see --list-problems)",
						       bad ? bad : optarg);
				free(bad);
				return r;
			}
			break;
		default:
			return qc_usage_error("check: unknown option '%s'", argv[optind - 1]);
		}
	}
	qc_rest_positional(&pos, argc, argv);
	if (pos.n != 1 || pos.extra)
		return qc_usage_error("check: expected exactly one IMAGE");
	const char *path = pos.v[0];
	struct qc_io *io;
	struct qc_image *img;
	int code = qc_cli_open_checked(path, &co, &o, &io, &img);
	if (code)
		return code;
	struct qc_verdict verdict;
	qc_policy_judge(&policy, img, path, &verdict);
	struct qc_report_extra x = { .verdict = &verdict };
	code = verdict.exit_code;
	if (!co.quiet) {
		if (co.out == QC_OUT_JSON) {
			qc_print_json(img, path, &x, stdout);
		} else {
			qc_print_human(img, path, &x, stdout);
			qc_print_policy_human(img, &verdict, stdout);
		}
	}
	if (img->aborted)
		qc_esc_line(stderr, "qcow2fsck: check failed: %s", img->abort_reason);
	qc_image_free(img);
	qc_io_close(io);
	return code;
}
