/*
 * args.c - command-line helpers the subcommands share (cli.h): usage
 * errors, --output and size values, positional arguments wherever they
 * stand among the options, and the default --max-mem.
 */
#include "cli.h"
#include "../core/escape.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

size_t qc_default_mem_cap(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || psz <= 0)
		return (size_t)1 << 31;
	return (size_t)pages * (size_t)psz / 2;
}
