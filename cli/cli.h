/*
 * cli.h - subcommand entry points and shared command-line helpers.
 */
#ifndef QC_CLI_H
#define QC_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/lock.h"

#define QC_VERSION "0.1.0"

/* Exit code for usage errors (EX_USAGE). */
#define QC_EXIT_USAGE 64

enum qc_output { QC_OUT_HUMAN, QC_OUT_JSON };

int qc_cmd_check(int argc, char **argv);
int qc_cmd_info(int argc, char **argv);
int qc_cmd_repair(int argc, char **argv);
int qc_cmd_undo(int argc, char **argv);
int qc_cmd_scan(int argc, char **argv);
int qc_cmd_digest(int argc, char **argv);

/* Print "qcow2fsck: <msg>" on stderr and return QC_EXIT_USAGE. */
int qc_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse --output=VALUE; false on an unknown value. */
bool qc_parse_output(const char *v, enum qc_output *out);
/* Parse a size with an optional K/M/G/T suffix (optionally KiB/MiB/GiB/TiB);
 * false if invalid. */
bool qc_parse_size(const char *v, size_t *out);
/* Positional arguments, collected in order wherever they stand among the
 * options (getopt_long with a leading '-' in optstring). */
#define QC_MAX_POSITIONAL 2
struct qc_positional {
	const char *v[QC_MAX_POSITIONAL];
	int n;
	bool extra; /* more than QC_MAX_POSITIONAL were given */
};
bool qc_add_positional(struct qc_positional *p, const char *arg);
/* After getopt_long: the arguments that followed "--". */
void qc_rest_positional(struct qc_positional *p, int argc, char **argv);

struct qc_io;
struct qc_image;
struct qc_options;

/* How a subcommand opens its image, and how it reports a failure. */
struct qc_cli_open {
	const char *command;     /* "check", "repair"... for messages */
	bool writable;
	enum qc_lock_mode lock;  /* core/lock.h */
	enum qc_output out;
	bool quiet;
};
/*
 * Open IMAGE as co says (QEMU's locks taken) and run the check on it.  On
 * failure prints one line on stderr (and, with --output=json, a JSON object
 * with "error") and returns 1 (the exit code) with nothing left open; on
 * success returns 0 with *io and *img set.  An image opened with -U while
 * another process holds it gets an image-in-use warning.
 */
int qc_cli_open_checked(const char *path, const struct qc_cli_open *co, const struct qc_options *o,
			struct qc_io **io, struct qc_image **img);
/* One line "qcow2fsck: msg" on stderr, and with --output=json (not -q) the
 * JSON object of a run that produced no report; returns exit_code. */
int qc_cli_fail(const struct qc_cli_open *co, const char *path, int exit_code, const char *code,
		const char *msg);
/* The open and check of qc_cli_open_checked, silent and thread-safe (scan):
 * on failure returns 1 with the one-line reason in why and the JSON error
 * code in *code. */
int qc_cli_open_checked_err(const char *path, const struct qc_cli_open *co,
			    const struct qc_options *o, struct qc_io **io, struct qc_image **img,
			    char *why, size_t whylen, const char **code);
struct qc_policy;
/* --fail-on (opt 'F') or --allow (opt 'A') of check and scan into p: 0, or
 * the usage error's exit code (the error is printed). */
int qc_cli_policy_opt(struct qc_policy *p, char opt, const char *arg);
/* Default memory cap: half of physical memory. */
size_t qc_default_mem_cap(void);

/*
 * The options check, digest and scan share, parsed by one loop
 * (qc_parse_args): a command lists the options it accepts in its own
 * getopt_long table, naming a shared one by its QC_OPT_* value and its own
 * by any other value, which goes to its `own` callback.
 */
enum {
	QC_OPT_ARG = 1,       /* a positional argument (shortopts starting with '-') */
	QC_OPT_QUIET = 'q',   /* -q, --quiet */
	QC_OPT_OUTPUT = 0x100, /* --output=human|json */
	QC_OPT_MAX_MEM,       /* --max-mem=SIZE, not 0 */
	QC_OPT_JOBS,          /* --jobs=1..64 */
	QC_OPT_PROGRESS,      /* --progress */
	QC_OPT_DEEP,          /* --deep */
	QC_OPT_FAIL_ON,       /* --fail-on (policy) */
	QC_OPT_ALLOW,         /* --allow (policy) */
};
/* What `own` returns for an option it does not know. */
#define QC_ARGS_UNKNOWN (-1)
struct option;
struct qc_args {
	/* set by the command */
	const char *command;    /* "check"... for "unknown option" */
	const char *shortopts;  /* starting with '-': positionals in order into pos,
				 * wherever they stand; else permuted to argv[next..] */
	const struct option *longopts;
	/* the command's own option c: 0, a usage error's exit code (printed),
	 * or QC_ARGS_UNKNOWN */
	int (*own)(void *ctx, int c, const char *arg);
	void *ctx;
	struct qc_policy *policy; /* for QC_OPT_FAIL_ON and QC_OPT_ALLOW */
	/* results (zero unless given) */
	enum qc_output out;
	bool quiet, progress, deep;
	size_t mem_cap;         /* 0: no --max-mem */
	unsigned jobs;          /* 0: no --jobs */
	struct qc_positional pos;
	int next;               /* first argument getopt left (optind) */
};
/* Parse argv[1..argc) in order: 0, or at the first bad option the exit
 * code of its usage error (printed, "COMMAND: unknown option" for an
 * unknown option or a missing value). */
int qc_parse_args(struct qc_args *a, int argc, char **argv);

#endif
