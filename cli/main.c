/*
 * main.c - qcow2fsck's command line: subcommand dispatch, --help,
 * --version, and the helpers the subcommands share (DESIGN.md "Command line").
 */
#include "cli.h"
#include "../core/problems.h"
#include "../checker/check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
	"Usage:\n"
	"  qcow2fsck check  [--deep] [--output=human|json] [-q] [--max-mem=SIZE] IMAGE\n"
	"  qcow2fsck repair [--dry-run] [--leaks-only] [--undo-file=PATH] [--salvage-leaks=DIR]\n"
	"                   [--drop-snapshot=ID|NAME] [--output=human|json] [--max-mem=SIZE] IMAGE\n"
	"  qcow2fsck undo   [--dry-run] [--force] UNDO-FILE IMAGE\n"
	"  qcow2fsck info   [--output=human|json] IMAGE\n"
	"  qcow2fsck --help | --version | --list-problems\n"
	"\n"
	"check   verify every qcow2 structure, read-only (the image is opened O_RDONLY)\n"
	"repair  plan, journal and apply fixes, then check again\n"
	"undo    restore an image byte for byte from a repair's undo journal\n"
	"info    print the header, features, extensions and snapshots\n"
	"\n"
	"Options:\n"
	"  --output=human|json  report format (default human)\n"
	"  -q, --quiet          print nothing on stdout; the exit code is the verdict\n"
	"  --deep               also decompress every compressed cluster\n"
	"  --max-mem=SIZE       memory cap for the check (K/M/G suffixes; default half of RAM)\n"
	"  --dry-run            print what would be written, write nothing\n"
	"  --leaks-only         repair only leaked clusters (and nothing that needs a rebuild)\n"
	"  --undo-file=PATH     where the undo journal goes (default IMAGE.qcow2fsck-undo)\n"
	"  --salvage-leaks=DIR  copy non-zero leaked clusters into DIR before freeing them\n"
	"  --drop-snapshot=ID|NAME  repair: also remove that snapshot from the table\n"
	"  --force              undo: also restore regions a crash left half-written\n"
	"\n"
	"Exit codes (as qemu-img check): 0 consistent, 2 corruption, 3 leaks only,\n"
	"1 check could not complete (repair: nothing changed), 63 not qcow2/unsupported,\n"
	"64 usage error.  Names of backing and data files are reported, never opened.\n";

int qc_usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("qcow2fsck: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try --help)\n", stderr);
	return QC_EXIT_USAGE;
}

bool qc_parse_output(const char *v, enum qc_output *out)
{
	if (strcmp(v, "human") == 0)
		*out = QC_OUT_HUMAN;
	else if (strcmp(v, "json") == 0)
		*out = QC_OUT_JSON;
	else
		return false;
	return true;
}

bool qc_parse_size(const char *v, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || v[0] == '-')
		return false;
	unsigned shift = 0;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return false;
	}
	if (*end || (shift && n > (SIZE_MAX >> shift)))
		return false;
	*out = (size_t)(n << shift);
	return true;
}

int qc_cli_open_checked(const char *path, bool writable, const struct qc_options *o,
			struct qc_io **io, struct qc_image **img)
{
	int r = qc_io_open_file(path, writable, io);
	if (r < 0) {
		fprintf(stderr, "qcow2fsck: cannot open '%s'%s: %s\n", path,
			writable ? " for writing" : "", strerror(-r));
		return 1;
	}
	if (qc_check_run(*io, o, img) < 0) {
		fprintf(stderr, "qcow2fsck: out of memory\n");
		qc_io_close(*io);
		*io = NULL;
		return 1;
	}
	return 0;
}

size_t qc_default_mem_cap(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || psz <= 0)
		return (size_t)1 << 31;
	return (size_t)pages * (size_t)psz / 2;
}

/* The problem table as tab-separated lines: code, severity (", unsupported"
 * when the code means exit 63), structure, summary. */
static int qc_list_problems(void)
{
	for (int i = 0; i < QC_P_COUNT; i++)
		printf("%s\t%s%s\t%s\t%s\n", qc_problem_table[i].code,
		       qc_severity_name(qc_problem_table[i].severity),
		       (qc_problem_table[i].flags & QC_PF_UNSUPPORTED) ? ", unsupported" : "",
		       qc_problem_table[i].structure,
		       qc_problem_table[i].summary);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return qc_usage_error("missing command");
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(cmd, "--list-problems") == 0)
		return qc_list_problems();
	if (strcmp(cmd, "--version") == 0) {
		printf("qcow2fsck %s\n", QC_VERSION);
		return 0;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "check", qc_cmd_check },
		{ "info", qc_cmd_info },
		{ "repair", qc_cmd_repair },
		{ "undo", qc_cmd_undo },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmd, cmds[i].name) == 0) {
			for (int k = 2; k < argc; k++) {
				if (strcmp(argv[k], "--help") == 0) {
					fputs(usage_text, stdout);
					return 0;
				}
			}
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	return qc_usage_error("unknown command '%s'", cmd);
}
