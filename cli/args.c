/*
 * args.c - command-line helpers the subcommands share (cli.h): usage
 * errors, --output and size values, positional arguments wherever they
 * stand among the options, the default --max-mem, and the one loop that
 * parses the options check, digest and scan share (qc_parse_args).
 */
#include "cli.h"
#include "digest_run.h"
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

int qc_parse_args(struct qc_args *a, int argc, char **argv)
{
	int c, r;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, a->shortopts, a->longopts, NULL)) != -1) {
		switch (c) {
		case QC_OPT_ARG:
			qc_add_positional(&a->pos, optarg);
			break;
		case QC_OPT_QUIET:
			a->quiet = true;
			break;
		case QC_OPT_PROGRESS:
			a->progress = true;
			break;
		case QC_OPT_DEEP:
			a->deep = true;
			break;
		case QC_OPT_OUTPUT:
			if (!qc_parse_output(optarg, &a->out))
				return qc_usage_error("--output must be human or json, not '%s'", optarg);
			break;
		case QC_OPT_MAX_MEM:
			if (!qc_parse_size(optarg, &a->mem_cap) || a->mem_cap == 0)
				return qc_usage_error("invalid --max-mem '%s'", optarg);
			break;
		case QC_OPT_JOBS:
			if (!qc_parse_jobs(optarg, &a->jobs))
				return qc_usage_error("--jobs must be a number from 1 to 64, not '%s'", optarg);
			break;
		case QC_OPT_FAIL_ON:
		case QC_OPT_ALLOW:
			if ((r = qc_cli_policy_opt(a->policy, c == QC_OPT_FAIL_ON ? 'F' : 'A', optarg)))
				return r;
			break;
		default:
			/* '?': an unknown option or a missing value */
			r = c == '?' || !a->own ? QC_ARGS_UNKNOWN : a->own(a->ctx, c, optarg);
			if (r == QC_ARGS_UNKNOWN)
				return qc_usage_error("%s: unknown option '%s'", a->command, argv[optind - 1]);
			if (r)
				return r;
		}
	}
	if (a->shortopts[0] == '-')
		qc_rest_positional(&a->pos, argc, argv);
	a->next = optind;
	return 0;
}
