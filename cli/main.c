/*
 * main.c - qcow2fsck's command line: subcommand dispatch, --help (global
 * and per subcommand), --version, --list-problems.  The helpers the
 * subcommands share live in args.c (option values, positional arguments)
 * and open.c (the open that takes QEMU's locks and runs the check).
 */
#include "cli.h"
#include "../core/problems.h"

#include <stdio.h>
#include <string.h>

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
	"  --jobs=N             threads: scan: images checked at once; check: L2 tables and\n"
	"                       refcount blocks read ahead; --deep and digest:\n"
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
	"  --jobs=N             threads: L2 tables and refcount blocks are read (and L2\n"
	"                       entries decoded) ahead on them; --deep and --digest\n"
	"                       decompress and hash on them (default: CPUs)\n"
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
	"  --dry-run            verify the journal, print its summary of the repair's\n"
	"                       writes (guest ranges included) and what would be restored\n"
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
	"  --jobs=N             hashing threads; the check before reads its tables ahead\n"
	"                       on them (default: CPUs)\n"
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
