/*
 * cli.h - subcommand entry points and shared command-line helpers.
 */
#ifndef QC_CLI_H
#define QC_CLI_H

#include <stdbool.h>
#include <stddef.h>

#define QC_VERSION "0.1.0"

/* Exit code for usage errors (EX_USAGE). */
#define QC_EXIT_USAGE 64

enum qc_output { QC_OUT_HUMAN, QC_OUT_JSON };

int qc_cmd_check(int argc, char **argv);
int qc_cmd_info(int argc, char **argv);
int qc_cmd_repair(int argc, char **argv);
int qc_cmd_undo(int argc, char **argv);
int qc_cmd_digest(int argc, char **argv);

/* Print "qcow2fsck: <msg>" on stderr and return QC_EXIT_USAGE. */
int qc_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse --output=VALUE; false on an unknown value. */
bool qc_parse_output(const char *v, enum qc_output *out);
/* Parse a size with an optional K/M/G/T suffix; false if invalid. */
bool qc_parse_size(const char *v, size_t *out);
struct qc_io;
struct qc_image;
struct qc_options;
/*
 * Open IMAGE (read-only unless writable) and run the check on it.  On
 * failure prints one line on stderr and returns 1 (the exit code) with
 * nothing left open; on success returns 0 with *io and *img set.
 */
int qc_cli_open_checked(const char *path, bool writable, const struct qc_options *o,
			struct qc_io **io, struct qc_image **img);
/* Default memory cap: half of physical memory. */
size_t qc_default_mem_cap(void);

#endif
