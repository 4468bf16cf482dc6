/*
 * main.c - qcow2fsck's command line: subcommand dispatch, --help (global
 * and per subcommand), --version, and the helpers the subcommands share:
 * option values, positional arguments, and the open that takes QEMU's
 * image locks (doc/locking.md) and reports failures (doc/contracts.md §1).
 */
#include "cli.h"
#include "../core/escape.h"
#include "../core/io.h"
#include "../core/problems.h"
#include "../checker/check.h"
#include "report.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE_CHECK \
	"  qcow2fsck check  [--deep] [--digest] [-U|--force-share] [--fail-on=CLASS]\n" \
	"                   [--allow=CODE,...] [--output=human|json] [-q] [--max-mem=SIZE]\n" \
	"                   [--jobs=N] [--progress] IMAGE\n"
#define USAGE_REPAIR \
	"  qcow2fsck repair [--dry-run] [--leaks-only] [--undo-file=PATH] [--salvage-leaks=DIR]\n" \
	"                   [--drop-snapshot=ID|NAME] [--output=human|json] [-q] [--max-mem=SIZE] IMAGE\n"
#define USAGE_UNDO "  qcow2fsck undo   [--dry-run] [--force] UNDO-FILE IMAGE\n"
#define USAGE_INFO "  qcow2fsck info   [-U|--force-share] [--output=human|json] IMAGE\n"
#define USAGE_DIGEST \
	"  qcow2fsck digest [--snapshot=ID|NAME | --all] [--flat] [--force] [--output=human|json]\n" \
	"                   [--jobs=N] [--progress] IMAGE\n" \
	"  qcow2fsck digest --raw [--flat] [--output=human|json] [--jobs=N] [--progress] FILE\n"
#define USAGE_SCAN \
	"  qcow2fsck scan   [--jobs=N] [--output=human|jsonl|junit] [--report=FILE] [--fail-on=CLASS]\n" \
	"                   [--allow=CODE,...] [--baseline=FILE] [--shard=I/N] [--files-from=FILE|-]\n" \
	"                   [--deep] [--max-mem=SIZE] [--progress] [-q] PATH...\n" \
	"  qcow2fsck scan   --summarize FILE.jsonl...\n"

#define EXIT_CODES \
	"Exit codes (as qemu-img check): 0 consistent, 2 corruption, 3 leaks only,\n" \
	"1 could not run (open failed, image in use, I/O error, memory cap; repair:\n" \
	"nothing changed), 63 not qcow2/unsupported, 64 usage error.  repair exits\n" \
	"with the state after the repair; refused or unfixable problems leave 2 (or 3).\n"

#define OPT_OUTPUT "  --output=human|json  report format (default human); JSON is one object, always\n"
#define OPT_QUIET "  -q, --quiet          print nothing on stdout; the exit code is the verdict\n"
#define OPT_MAXMEM "  --max-mem=SIZE       memory cap (K/M/G/T or KiB/MiB/GiB/TiB; default half of RAM)\n"
#define OPT_POLICY \
	"  --fail-on=CLASS      lowest class that fails: corruption (default; leaks exit 3),\n" \
	"                       leak (leaks exit 2) or warning (leaks and warnings exit 2)\n" \
	"  --allow=CODE,...     accept these problem codes (reported, not counted)\n"
#define OPT_SHARE \
	"  -U, --force-share    open an image another process holds (as qemu-img -U); the\n" \
	"                       report then carries an image-in-use warning\n"

static const char usage_text[] =
	"Usage:\n" USAGE_CHECK USAGE_REPAIR USAGE_UNDO USAGE_INFO USAGE_SCAN USAGE_DIGEST
	"  qcow2fsck --help | --version | --list-problems\n"
	"  qcow2fsck COMMAND --help\n"
	"\n"
	"check   verify every qcow2 structure, read-only (the image is opened O_RDONLY)\n"
	"repair  plan, journal and apply fixes, then check again\n"
	"undo    restore an image byte for byte from a repair's undo journal\n"
	"info    print the header, features, extensions and snapshots\n"
	"scan    check every image under PATHs in parallel; summary, JSON Lines or JUnit\n"
	"digest  check, then print the SHA-256 tree digest of the guest view (doc/digest.md):\n"
	"        equal for an image, its qemu-img convert copies and a raw copy\n"
	"\n"
	"Options (they may also follow IMAGE):\n"
	"  --output=FORMAT      human or json (scan: human, jsonl or junit); default human\n"
	OPT_QUIET
	"  --deep               also decompress every compressed cluster (on --jobs threads);\n"
	"                       the report counts the clusters verified per algorithm\n"
	"  --digest             check: also print the digest of every layer (implies --deep)\n"
	OPT_SHARE OPT_MAXMEM
	"  --snapshot=ID|NAME   digest: that snapshot only (NAME@SNAPSHOT)\n"
	"  --all                digest: the active layer and every snapshot\n"
	"  --flat               digest: plain SHA-256 of the raw byte stream (= qemu-img\n"
	"                       convert -O raw | sha256sum); one thread, cost = virtual size\n"
	"  --raw                digest: FILE is a raw disk image\n"
	"  --dry-run            print what would be written, write nothing\n"
	"  --leaks-only         repair only leaked clusters (and nothing that needs a rebuild)\n"
	"  --undo-file=PATH     where the undo journal goes (default IMAGE.qcow2fsck-undo)\n"
	"  --salvage-leaks=DIR  copy non-zero leaked clusters into DIR before freeing them\n"
	"  --drop-snapshot=ID|NAME  repair: also remove that snapshot from the table\n"
	"  --force              undo: also restore regions a crash left half-written;\n"
	"                       digest: digest an image with corruption (marked, exit 2)\n"
	"  --fail-on=CLASS      lowest class that fails: corruption (default; leaks exit 3),\n"
	"                       leak (leaks exit 2) or warning (leaks and warnings exit 2)\n"
	"  --allow=CODE,...     accept these problem codes (reported, not counted)\n"
	"  --jobs=N             threads: scan: images checked at once; --deep and digest:\n"
	"                       decompressing and hashing threads (default: CPUs)\n"
	"  --report=FILE        scan: machine format to FILE, human summary on stdout\n"
	"  --baseline=FILE      scan: accept \"PATH CODE\" / \"* CODE\" lines or an old jsonl\n"
	"  --shard=I/N          scan: only part I of N, balanced by size, same on every runner\n"
	"  --files-from=FILE|-  scan: also the names listed in FILE, one per line\n"
	"  --progress           progress on stderr even without a terminal (on a terminal\n"
	"                       scan, --deep and digest always show it)\n"
	"  --summarize          scan: summary and exit status of JSON Lines reports\n"
	"\n"
	"Images in use: every command takes QEMU's image locks; an image a running QEMU\n"
	"holds for writing is refused (exit 1).  check and info accept -U; repair and\n"
	"undo never write to an image in use.\n"
	"\n" EXIT_CODES
	"scan exits with the worst (2, 1, 63, 3, 0); non-qcow2 files do not count.\n"
	"Names of backing and data files are reported, never opened.\n";

static const char check_usage[] =
	"Usage:\n" USAGE_CHECK
	"\n"
	"Verify every qcow2 structure of IMAGE; never writes (the image is opened\n"
	"O_RDONLY and locked as `qemu-img check` locks it).\n"
	"\n"
	"Options (they may also follow IMAGE):\n"
	"  --deep               also decompress every compressed cluster\n"
	"  --digest             also print the digest of every layer (implies --deep)\n"
	"  --jobs=N             threads for --deep and --digest (default: CPUs)\n"
	"  --progress           progress on stderr even without a terminal\n"
	OPT_SHARE OPT_POLICY OPT_OUTPUT OPT_QUIET OPT_MAXMEM
	"\n" EXIT_CODES;

static const char repair_usage[] =
	"Usage:\n" USAGE_REPAIR
	"\n"
	"Check IMAGE, plan the fixes, write an undo journal, apply the plan and check\n"
	"again.  Takes QEMU's write locks: an image in use is refused, nothing changed.\n"
	"\n"
	"Options (they may also follow IMAGE):\n"
	"  --dry-run            print what would be written, write nothing\n"
	"  --leaks-only         repair only leaked clusters (and nothing that needs a rebuild)\n"
	"  --undo-file=PATH     where the undo journal goes (default IMAGE.qcow2fsck-undo)\n"
	"  --salvage-leaks=DIR  copy non-zero leaked clusters into DIR before freeing them\n"
	"  --drop-snapshot=ID|NAME  also remove that snapshot from the table (its clusters\n"
	"                       become leaks, freed by the same repair)\n"
	OPT_OUTPUT OPT_QUIET OPT_MAXMEM
	"\n" EXIT_CODES;

static const char undo_usage[] =
	"Usage:\n" USAGE_UNDO
	"\n"
	"Restore IMAGE byte for byte from the undo journal a repair wrote.  Refuses an\n"
	"image the journal was not written for, and an image in use (QEMU's locks).\n"
	"\n"
	"Options (they may also follow the file names):\n"
	"  --dry-run            verify the journal and say what would be restored\n"
	"  --force              also restore regions a crash left half-written\n"
	"\n"
	"Exit codes: 0 restored (or would be), 1 refused or failed, 64 usage error.\n";

static const char info_usage[] =
	"Usage:\n" USAGE_INFO
	"\n"
	"Print the header, features, extensions and snapshots of IMAGE (read-only,\n"
	"locked as `qemu-img info` locks it).\n"
	"\n"
	"Options (they may also follow IMAGE):\n"
	OPT_SHARE OPT_OUTPUT
	"\n"
	"Exit codes: 0 shown, 1 could not open (or in use), 63 not a qcow2 image\n"
	"qcow2fsck supports, 64 usage error.\n";

static const char digest_usage[] =
	"Usage:\n" USAGE_DIGEST
	"\n"
	"Check IMAGE, then print the SHA-256 digest of each layer's guest view, as\n"
	"sha256sum prints it (NAME@SNAPSHOT for snapshots).  The tree digest (default,\n"
	"doc/digest.md) is the same for an image, its qemu-img convert copies and a raw\n"
	"copy (--raw), and costs what the image stores.  Never writes; locks as check.\n"
	"\n"
	"Options (they may also follow IMAGE):\n"
	"  --snapshot=ID|NAME   that snapshot only\n"
	"  --all                the active layer and every snapshot\n"
	"  --flat               plain SHA-256 of the raw byte stream (= qemu-img convert -O raw\n"
	"                       | sha256sum); one thread, cost = virtual size\n"
	"  --force              digest an image with corruption (marked, exit 2)\n"
	"  --raw                FILE is a raw disk image\n"
	"  --jobs=N             hashing threads (default: CPUs)\n"
	"  --progress           progress on stderr even without a terminal\n"
	OPT_OUTPUT
	"\n"
	"Exit codes: 0 digests printed, 2 corruption (refused, or forced), 1 could not\n"
	"read (encrypted, external data file, I/O), 63 not qcow2, 64 usage error.\n";

static const char scan_usage[] =
	"Usage:\n" USAGE_SCAN
	"\n"
	"Check every qcow2 image under PATHs (directories are searched recursively;\n"
	"symlinks inside them are not followed) in parallel, in one process; never\n"
	"writes.  Files that are not qcow2 are listed and counted, not failed.\n"
	"\n"
	"Options (they may also follow the PATHs):\n"
	"  --jobs=N             images checked at once (default: CPUs)\n"
	"  --output=FORMAT      human (default), jsonl (one record per image) or junit\n"
	"  --report=FILE        machine format to FILE, human summary on stdout\n"
	OPT_POLICY
	"  --baseline=FILE      accept \"PATH CODE\" / \"* CODE\" lines or an old jsonl\n"
	"  --shard=I/N          only part I of N, balanced by size, same on every runner\n"
	"  --files-from=FILE|-  also the names listed in FILE, one per line\n"
	"  --deep               also decompress every compressed cluster\n"
	"  --progress           progress on stderr even without a terminal\n"
	"  --summarize          summary and exit status of JSON Lines reports\n"
	OPT_QUIET OPT_MAXMEM
	"\n"
	"Exit code: the worst verdict over all images under the policy (2, 1, 63, 3, 0),\n"
	"in check's codes; 64 usage error.\n";

int qc_usage_error(const char *fmt, ...)
{
	va_list ap;
	char msg[512];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	qc_esc_line(stderr, "qcow2fsck: %s (try --help)", msg);
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
	if (errno || end == v || v[0] == '-' || v[0] == '+' || v[0] == ' ')
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
	/* K, KiB: binary units either way */
	if (shift && strcmp(end, "iB") == 0)
		end += 2;
	if (*end || (shift && n > (SIZE_MAX >> shift)))
		return false;
	*out = (size_t)(n << shift);
	return true;
}

bool qc_add_positional(struct qc_positional *p, const char *arg)
{
	if (p->n >= QC_MAX_POSITIONAL) {
		p->extra = true;
		return false;
	}
	p->v[p->n++] = arg;
	return true;
}

void qc_rest_positional(struct qc_positional *p, int argc, char **argv)
{
	while (optind < argc)
		qc_add_positional(p, argv[optind++]);
}

/* The one-line message and the JSON "error" code of a failed open. */
static void open_failure(const char *path, int r, const struct qc_open_info *info,
			 const struct qc_cli_open *co, char *msg, size_t len, const char **code)
{
	char err[160];
	if (r == -EBUSY && co->lock == QC_LOCK_WRITE) {
		snprintf(msg, len, "%s: in use by another process (%s never writes to an image in use; "
			 "nothing changed)", path, co->command);
		*code = "image-in-use";
	} else if (r == -EBUSY && co->lock == QC_LOCK_SHARE) {
		/* even -U needs consistent reads: QEMU refuses this case too */
		snprintf(msg, len, "%s: in use by another process that does not let others read "
			 "it consistently (refused even with -U, as qemu-img refuses it)", path);
		*code = "image-in-use";
	} else if (r == -EBUSY) {
		snprintf(msg, len, "%s: in use by another process (use -U to %s it anyway)", path,
			 co->command);
		*code = "image-in-use";
	} else if (r == -EINVAL && info->special) {
		snprintf(msg, len, "%s: %s, not an image file: refused without opening it", path,
			 info->special);
		*code = "not-a-file";
	} else {
		snprintf(msg, len, "cannot open '%s'%s: %s", path, co->writable ? " for writing" : "",
			 strerror_r(-r, err, sizeof(err)));
		*code = "open-failed";
	}
}

int qc_cli_open_checked_err(const char *path, const struct qc_cli_open *co,
			    const struct qc_options *o, struct qc_io **io, struct qc_image **img,
			    char *why, size_t whylen, const char **code)
{
	struct qc_open_opts oo = { .writable = co->writable, .lock = co->lock };
	struct qc_open_info info;
	*io = NULL;
	*img = NULL;
	*code = NULL;
	int r = qc_io_open_image(path, &oo, io, &info);
	if (r < 0) {
		open_failure(path, r, &info, co, why, whylen, code);
		return 1;
	}
	if (info.locks_unsupported && co->lock == QC_LOCK_WRITE && !co->quiet)
		qc_esc_line(stderr, "qcow2fsck: warning: %s: the file system has no OFD locks; "
			    "QEMU's image locks cannot be checked", path);
	if (qc_check_run(*io, o, img) < 0) {
		qc_io_close(*io);
		*io = NULL;
		snprintf(why, whylen, "out of memory");
		*code = "out-of-memory";
		return 1;
	}
	if (info.in_use)
		qc_report(&(*img)->problems, QC_P_IMAGE_IN_USE, QC_LOC(QC_NO_OFFSET), 1,
			  "another process holds the image (QEMU's locks); opened with -U, so what it "
			  "writes meanwhile may show as problems that are not on disk");
	return 0;
}

int qc_cli_open_checked(const char *path, const struct qc_cli_open *co, const struct qc_options *o,
			struct qc_io **io, struct qc_image **img)
{
	char why[PATH_MAX + 256];
	const char *code = NULL;
	int r = qc_cli_open_checked_err(path, co, o, io, img, why, sizeof(why), &code);
	return r ? qc_cli_fail(co, path, 1, code, why) : 0;
}

int qc_cli_fail(const struct qc_cli_open *co, const char *path, int exit_code, const char *code,
		const char *msg)
{
	qc_esc_line(stderr, "qcow2fsck: %s", msg);
	if (co->out == QC_OUT_JSON && !co->quiet)
		qc_print_json_failure(path, exit_code, code, msg, stdout);
	return exit_code;
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
		const char *usage;
	} cmds[] = {
		{ "check", qc_cmd_check, check_usage },
		{ "info", qc_cmd_info, info_usage },
		{ "repair", qc_cmd_repair, repair_usage },
		{ "undo", qc_cmd_undo, undo_usage },
		{ "scan", qc_cmd_scan, scan_usage },
		{ "digest", qc_cmd_digest, digest_usage },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmd, cmds[i].name) == 0) {
			for (int k = 2; k < argc && strcmp(argv[k], "--") != 0; k++) {
				if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
					fputs(cmds[i].usage, stdout);
					return 0;
				}
			}
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	return qc_usage_error("unknown command '%s'", cmd);
}
